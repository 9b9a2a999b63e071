// moe-convert: Hugging Face safetensors models <-> MoEForge checkpoints (docs/interop.md).
//   moe-convert hf-to-moeforge --input HF_DIR --output DIR
//   moe-convert moeforge-to-hf --input STEP_DIR --output HF_DIR [--dtype bf16|f16|f32]
//                              [--model-type TYPE] [--max-shard-bytes N]
// The conversions are in hf_convert.h; errors are one "error: ..." line and exit status 1.
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <cstdio>
#include <exception>

#include "checkpoint/hf_convert.h"

int main(int argc, char** argv) {
  CLI::App app{"Convert between Hugging Face safetensors models and MoEForge checkpoints."};
  app.require_subcommand(1);
  std::string input, output, dtype = "f32", type;
  int64_t max_shard_bytes = int64_t{2} << 30;
  CLI::App* in = app.add_subcommand("hf-to-moeforge", "HF model directory -> MoEForge checkpoint");
  in->add_option("--input", input, "HF model directory (config.json, safetensors)")->required();
  in->add_option("--output", output, "checkpoint root to write step_00000000 into")->required();
  CLI::App* out = app.add_subcommand("moeforge-to-hf", "MoEForge checkpoint -> HF model directory");
  out->add_option("--input", input, "a committed step directory")->required();
  out->add_option("--output", output, "HF model directory to write")->required();
  out->add_option("--dtype", dtype, "f32, bf16 or f16")
      ->check(CLI::IsMember({"f32", "bf16", "f16"}));
  out->add_option("--model-type", type, "HF model_type (default: chosen from the model)");
  out->add_option("--max-shard-bytes", max_shard_bytes, "split the weights above this size")
      ->check(CLI::PositiveNumber);
  CLI11_PARSE(app, argc, argv);
  MPI_Init(&argc, &argv);  // parallel HDF5 is linked; one process
  int status = 0;
  try {
    if (in->parsed())
      moe::hf_to_moeforge(input, output);
    else
      moe::moeforge_to_hf(input, output, type, dtype, max_shard_bytes);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    status = 1;
  }
  MPI_Finalize();
  return status;
}
