// moe-data: build and look into the indexed token datasets the trainer reads (docs/data.md).
//   moe-data prepare --input corpus/ --tokenizer byte --output corpora/mine [--jsonl-key text]
//   moe-data inspect corpora/mine [--samples 3] [--tokenizer byte] [--check-vocab]
//   moe-data train-tokenizer ... (data/train_tokenizer_command.h)
// Each subcommand runs as its CLI11 callback, so the whole parse sits in one try block: every
// error reaches the user as one "error: ..." line on stderr and exit status 1 (usage errors get
// CLI11's message and its non-zero status).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <bit>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/log.h"
#include "data/indexed_dataset.h"
#include "data/prepare_dataset.h"
#include "data/tokenizer.h"
#include "data/train_tokenizer_command.h"

namespace moe {
namespace {

std::vector<std::string> read_list(const std::string& path) {
  std::ifstream in(path);
  MOE_CHECK(in.is_open(), "cannot open --files-from list '", path, "'");
  std::vector<std::string> paths;
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) paths.push_back(line);
  return paths;
}

void run_prepare(PrepareOptions options, const std::string& files_from) {
  if (!files_from.empty()) {
    const std::vector<std::string> listed = read_list(files_from);
    options.inputs.insert(options.inputs.end(), listed.begin(), listed.end());
  }
  MOE_CHECK(!options.inputs.empty(), "prepare needs at least one --input (or --files-from)");
  const std::filesystem::path parent = std::filesystem::path(options.output).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent);
  const PrepareSummary s = prepare_dataset(options);
  std::printf(
      "wrote %s.bin and %s.idx: %lld documents, %lld tokens; read %.1f MB in %.1f s (%.1f MB/s)",
      options.output.c_str(), options.output.c_str(), static_cast<long long>(s.documents),
      static_cast<long long>(s.tokens), s.bytes / 1e6, s.seconds,
      s.bytes / 1e6 / std::max(s.seconds, 1e-9));
  if (s.empty_documents > 0)
    std::printf("; skipped %lld empty documents", static_cast<long long>(s.empty_documents));
  std::printf("\n");
}

// Sequence lengths in log2 buckets: [0, 1), [1, 2), [2, 4), ...
void print_length_histogram(const IndexedDataset& data) {
  std::vector<int64_t> buckets(34, 0);
  for (int64_t s = 0; s < data.num_sequences(); ++s) {
    const auto length = static_cast<uint64_t>(data.sequence_length(s));
    ++buckets[length == 0 ? 0 : std::bit_width(length)];
  }
  const auto used = [](int64_t count) { return count > 0; };
  const auto first = std::find_if(buckets.begin(), buckets.end(), used) - buckets.begin();
  const auto last = buckets.rend() - std::find_if(buckets.rbegin(), buckets.rend(), used) - 1;
  const int64_t most = *std::max_element(buckets.begin(), buckets.end());
  std::printf("sequence lengths in tokens (log2 buckets):\n");
  for (auto b = first; b <= last; ++b) {
    const long long low = b == 0 ? 0 : 1LL << (b - 1), high = b == 0 ? 1 : 1LL << b;
    const int bar = most > 0 ? static_cast<int>((40 * buckets[b] + most - 1) / most) : 0;
    std::printf("  [%10lld, %10lld) %10lld %s\n", low, high, static_cast<long long>(buckets[b]),
                std::string(bar, '#').c_str());
  }
}

void run_inspect(const std::string& prefix, int samples, int sample_tokens,
                 const std::string& tokenizer_spec, bool check_vocab) {
  const IndexedDataset data(prefix);
  std::error_code error;
  std::printf("dataset    %s (.bin %llu bytes, .idx %llu bytes)\n", prefix.c_str(),
              static_cast<unsigned long long>(std::filesystem::file_size(prefix + ".bin", error)),
              static_cast<unsigned long long>(std::filesystem::file_size(prefix + ".idx", error)));
  std::printf("dtype      %s (Megatron code %d)\n", token_dtype_name(data.dtype()),
              static_cast<int>(data.dtype()));
  std::printf("sequences  %lld\ndocuments  %lld\ntokens     %lld\n",
              static_cast<long long>(data.num_sequences()),
              static_cast<long long>(data.num_documents()),
              static_cast<long long>(data.num_tokens()));
  if (data.num_sequences() > 0) print_length_histogram(data);

  const std::unique_ptr<Tokenizer> tokenizer = make_tokenizer(tokenizer_spec);
  if (check_vocab) {
    data.check_vocab(tokenizer->vocab_size());
    std::printf("every token id is below the vocabulary size %d of %s\n", tokenizer->vocab_size(),
                tokenizer->name().c_str());
  }
  const int64_t shown = std::min<int64_t>(samples, data.num_sequences());
  const auto documents = data.document_indices();
  std::vector<int32_t> tokens;
  for (int64_t i = 0; i < shown; ++i) {
    const int64_t s = i * data.num_sequences() / shown;  // evenly spaced, first one first
    const int64_t document =
        std::upper_bound(documents.begin(), documents.end(), s) - documents.begin() - 1;
    const int64_t length = data.sequence_length(s);
    tokens.resize(static_cast<size_t>(std::min<int64_t>(length, sample_tokens)));
    data.read(s, 0, static_cast<int64_t>(tokens.size()), tokens.data());
    std::printf(
        "--- sample %lld of %lld: sequence %lld (document %lld), %lld tokens, decoded by %s\n",
        static_cast<long long>(i + 1), static_cast<long long>(shown), static_cast<long long>(s),
        static_cast<long long>(document), static_cast<long long>(length),
        tokenizer->name().c_str());
    std::printf("%s\n", tokenizer->decode(tokens).c_str());
    if (length > static_cast<int64_t>(tokens.size()))
      std::printf("[... %lld more tokens]\n", static_cast<long long>(length - tokens.size()));
  }
}

}  // namespace
}  // namespace moe

int main(int argc, char** argv) {
  CLI::App app{"Prepare and inspect indexed token datasets (Megatron-LM .bin/.idx)."};
  app.require_subcommand(1);

  moe::PrepareOptions prepare;
  std::string files_from;
  CLI::App* prepare_command = app.add_subcommand(
      "prepare", "tokenize documents into PREFIX.bin/.idx (one sequence per document, EOD last)");
  prepare_command->add_option("--input", prepare.inputs,
                              "a text file (one document), a .jsonl file (one per line) or a "
                              "directory (its files, recursively, sorted); repeatable");
  prepare_command->add_option("--files-from", files_from, "a file listing inputs, one per line");
  prepare_command->add_option("--tokenizer", prepare.tokenizer, "byte, or a tokenizer path")
      ->capture_default_str();
  prepare_command->add_option("--output", prepare.output, "output prefix")->required();
  prepare_command->add_option("--jsonl-key", prepare.reader.jsonl_key, "the text key of .jsonl")
      ->capture_default_str();
  prepare_command->add_flag("--split-lines", prepare.reader.split_lines,
                            "plain text: one document per line instead of per file");
  prepare_command->add_option("--glob", prepare.glob,
                              "only files of directories whose name matches, e.g. '*.py'");
  prepare_command->add_option("--threads", prepare.threads, "tokenizer threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  prepare_command->callback([&] { moe::run_prepare(prepare, files_from); });

  std::string prefix, inspect_tokenizer = "byte";
  int samples = 3, sample_tokens = 200;
  bool check_vocab = false;
  CLI::App* inspect_command =
      app.add_subcommand("inspect", "counts, a length histogram and decoded samples of a dataset");
  inspect_command->add_option("prefix", prefix, "dataset prefix (PREFIX.bin, PREFIX.idx)")
      ->required();
  inspect_command->add_option("--samples", samples, "sequences to decode, evenly spaced")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  inspect_command->add_option("--sample-tokens", sample_tokens, "tokens decoded per sample")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  inspect_command->add_option("--tokenizer", inspect_tokenizer, "decodes the samples")
      ->capture_default_str();
  inspect_command->add_flag("--check-vocab", check_vocab,
                            "scan every token id against the tokenizer's vocabulary");
  inspect_command->callback(
      [&] { moe::run_inspect(prefix, samples, sample_tokens, inspect_tokenizer, check_vocab); });

  moe::register_train_tokenizer_command(app);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    MOE_LOG_ERROR(e.what());
    return 1;
  }
  return 0;
}
