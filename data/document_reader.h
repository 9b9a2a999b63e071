// The documents `moe-data prepare` tokenizes, read in one fixed order from files, directories and
// JSON Lines.
//
// Decisions:
// - An input is a file or a directory; a directory stands for every regular file under it,
//   recursively, sorted by path (bytewise, so the order does not depend on the file system) and
//   filtered by a glob on the file name when one is given. Symlinks to files count; symlinked
//   directories are not followed (no cycles).
// - A file whose name ends in .jsonl is JSON Lines, as in Megatron-LM's preprocess_data.py: each
//   non-blank line is one JSON object, and its string under the key ("text" by default) is one
//   document. Any other file is plain text: the whole file is one document (a book, a source file),
//   or each line one with split_lines (the '\n' is dropped).
// - Empty documents are skipped and counted: an EOD alone teaches nothing.
// - Reading streams: only the documents of the current batch are in memory (and a whole plain file
//   when it is one document).
#pragma once

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace moe {

struct DocumentReaderOptions {
  std::string jsonl_key = "text";
  bool split_lines = false;  // plain text: one document per line instead of per file
};

// The files the inputs stand for, in reading order. InputError when an input does not exist or a
// directory holds no file that matches `glob` (fnmatch(3) on the file name; "" matches all).
std::vector<std::filesystem::path> list_input_files(const std::vector<std::string>& inputs,
                                                    const std::string& glob);

class DocumentReader {
 public:
  DocumentReader(std::vector<std::filesystem::path> files, DocumentReaderOptions options);

  // Replaces `documents` with the next ones: at least one, and fewer once their text passes
  // max_bytes. False when no document is left.
  bool next_batch(std::vector<std::string>& documents, size_t max_bytes);

  uint64_t bytes_read() const { return bytes_read_; }  // of the input files, so far
  uint64_t total_bytes() const { return total_bytes_; }
  int64_t empty_documents() const { return empty_documents_; }

 private:
  // The next document of the open file into `document`; false at the end of the file.
  bool next_in_file(std::string& document);
  bool open_next_file();

  std::vector<std::filesystem::path> files_;
  std::vector<uint64_t> sizes_;  // of files_, in bytes
  DocumentReaderOptions options_;
  size_t next_file_ = 0;
  std::ifstream in_;
  bool in_open_ = false;
  bool jsonl_ = false;
  int64_t line_ = 0;
  uint64_t bytes_read_ = 0, bytes_before_file_ = 0, total_bytes_ = 0;
  int64_t empty_documents_ = 0;
};

}  // namespace moe
