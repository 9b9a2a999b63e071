// `moe-data prepare`: documents -> token ids -> an indexed dataset (PREFIX.bin/.idx).
//
// Decisions:
// - Each document becomes one sequence: its tokens followed by the tokenizer's EOD, as Megatron's
//   preprocess_data.py --append-eod writes them. The dtype is the narrowest for the vocabulary.
// - Documents are read in batches of about 8 MB; the threads tokenize a batch together (each takes
//   the next untaken document) and the batch is written in input order, so the output does not
//   depend on the thread count.
// - Progress goes to stderr (MB read, MB/s, documents, ETA): rewritten in place at most 4 times a
//   second on a terminal, one line every 10 s otherwise (logs).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/document_reader.h"

namespace moe {

struct PrepareOptions {
  std::vector<std::string> inputs;  // files and directories, see list_input_files()
  std::string glob;                 // filters the files of directories by name
  DocumentReaderOptions reader;
  std::string tokenizer = "byte";  // make_tokenizer() spec
  std::string output;              // dataset prefix
  int threads = 0;                 // 0: one per hardware thread
};

struct PrepareSummary {
  int64_t documents = 0;
  int64_t empty_documents = 0;  // skipped
  int64_t tokens = 0;           // EODs included
  uint64_t bytes = 0;           // of input read
  double seconds = 0;
};

// InputError when the inputs hold no non-empty document; nothing is written then.
PrepareSummary prepare_dataset(const PrepareOptions& options);

}  // namespace moe
