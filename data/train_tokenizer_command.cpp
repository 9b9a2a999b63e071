#include "data/train_tokenizer_command.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>

#include "core/error.h"
#include "core/log.h"
#include "data/bpe_trainer.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

struct TrainTokenizerArgs {
  std::vector<std::string> inputs;
  int vocab_size = 0;
  std::string output;
};

std::vector<std::string> input_files(const std::vector<std::string>& inputs) {
  std::vector<std::string> files;
  for (const std::string& input : inputs) {
    if (fs::is_directory(input)) {
      std::vector<std::string> below;
      for (const auto& entry : fs::recursive_directory_iterator(input)) {
        if (entry.is_regular_file()) below.push_back(entry.path().string());
      }
      MOE_CHECK(!below.empty(), "training input directory '", input, "' holds no files");
      std::sort(below.begin(), below.end());
      files.insert(files.end(), below.begin(), below.end());
    } else {
      MOE_CHECK(fs::is_regular_file(input), "training input '", input,
                "' is neither a file nor a directory");
      files.push_back(input);
    }
  }
  return files;
}

// Written beside the target, then renamed: an interrupted run never leaves half a file.
void write_file(const std::string& path, const std::string& text) {
  const fs::path target(path);
  if (target.has_parent_path()) fs::create_directories(target.parent_path());
  const std::string partial = path + ".partial";
  std::ofstream(partial, std::ios::binary) << text;
  std::error_code error;
  MOE_CHECK(fs::file_size(partial, error) == text.size(), "cannot write '", path, "'");
  fs::rename(partial, target);
}

void train_tokenizer(const TrainTokenizerArgs& args) {
  const auto start = std::chrono::steady_clock::now();
  const std::vector<std::string> files = input_files(args.inputs);
  MOE_LOG_INFO("training byte-level BPE, vocabulary ", args.vocab_size, ", on ", files.size(),
               " file(s)");
  BpeTrainerOptions options;
  options.vocab_size = args.vocab_size;
  options.progress = [](const std::string& line) { MOE_LOG_INFO(line); };
  const BpeDefinition definition = train_bpe(files, options);
  write_file(args.output, to_tokenizer_json(definition));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  MOE_LOG_INFO("wrote ", args.output, ": ", definition.vocab.size(), " tokens (256 bytes, ",
               definition.merges.size(), " merges, EOD ", definition.added_tokens[0].content, " = ",
               definition.added_tokens[0].id, ") in ", seconds, " s");
}

}  // namespace

void register_train_tokenizer_command(CLI::App& app) {
  auto args = std::make_shared<TrainTokenizerArgs>();
  CLI::App* command = app.add_subcommand(
      "train-tokenizer", "Train a byte-level BPE tokenizer and save it as tokenizer.json");
  command->add_option("--input", args->inputs, "text files or directories (repeatable)")
      ->required();
  command->add_option("--vocab-size", args->vocab_size, "tokens, the bytes and EOD included")
      ->required()
      ->check(CLI::Range(257, 1 << 30));
  command->add_option("--output", args->output, "the tokenizer.json to write")->required();
  command->callback([args] { train_tokenizer(*args); });
}

}  // namespace moe
