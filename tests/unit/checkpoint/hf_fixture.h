// What the Hugging Face interop tests do with the fixtures of tests/fixtures/hf (tiny models that
// transformers built and scored, see its README): copy one with edits, import it and run the
// reference input, compare an export with the original tensors.
#pragma once

#include <map>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "core/tensor.h"

namespace moe::testing {

// MOE_HF_FIXTURES, the fixture directory.
const std::string& hf_fixtures();

// An empty temporary directory's path (removed if it exists).
std::string temp_dir(const std::string& name);

// Every tensor of the model in HF directory `source` is in `exported`, bit for bit, and no other.
void expect_same_tensors(const std::string& source, const std::string& exported);

// A tensor written in place of a fixture's: F32 values of a shape.
struct NewTensor {
  std::vector<int64_t> shape;
  std::vector<float> values;
};

// A copy of fixture `name` in a temporary directory, its config.json with `from` replaced by `to`
// (from "": unchanged), its model.safetensors without the tensors whose names end in `drop` (none
// when empty) and with `replaced` tensors in place of the originals.
std::string edited_fixture(const std::string& name, const std::string& from, const std::string& to,
                           const std::string& drop,
                           const std::map<std::string, NewTensor>& replaced = {});

// The logits MoEForge computes for the reference input of fixture `name` after importing the HF
// directory `source`, and the logits transformers computed.
struct Logits {
  Tensor got, expected;
};
Logits imported_logits(const std::string& source, const std::string& name);

// Both sides compute in fp32 with different summation orders (BLAS blocking, the attention
// kernel's online softmax, the MoE combine), so logits agree to a few float roundings of their
// magnitude (a few units here). A transposed, swapped or missing tensor (or a wrong norm, RoPE or
// routing convention) changes them by far more.
::testing::AssertionResult matches_reference(const Logits& logits);

// The multi-token prediction loss (ModelOutput::mtp_loss) MoEForge computes for the reference
// input of fixture `name`, its targets the next tokens, after importing the HF directory `source`,
// and the one transformers computed (reference.safetensors: mtp_loss).
struct MtpLoss {
  double got, expected;
};
MtpLoss imported_mtp_loss(const std::string& source, const std::string& name);

}  // namespace moe::testing
