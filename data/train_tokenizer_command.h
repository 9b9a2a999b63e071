// The train-tokenizer subcommand (of moe-data): trains byte-level BPE (data/bpe_trainer.h) on text
// files or directories and writes a Hugging Face tokenizer.json.
//   moe-data train-tokenizer --input corpus.txt more/ --vocab-size 32000 --output
//   tok/tokenizer.json
// Directories contribute every regular file below them, in path order, so a run is reproducible.
// Errors (missing input, bad size, unwritable output) are InputError thrown out of CLI parsing.
// Compiled into the moe-data executable (and bpe_tokenizer_tests), not the moe_data library, so
// that the library and everything linking it stay free of CLI11.
#pragma once

namespace CLI {
class App;
}

namespace moe {

void register_train_tokenizer_command(CLI::App& app);

}  // namespace moe
