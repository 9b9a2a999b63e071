#include "data/document_reader.h"

#include <fnmatch.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <system_error>

#include "core/error.h"
#include "data/json_field.h"

namespace moe {

namespace fs = std::filesystem;

std::vector<fs::path> list_input_files(const std::vector<std::string>& inputs,
                                       const std::string& glob) {
  std::vector<fs::path> files;
  for (const std::string& input : inputs) {
    std::error_code error;
    const fs::file_status status = fs::status(input, error);
    MOE_CHECK(fs::exists(status), "input '", input, "' does not exist",
              error ? " (" + error.message() + ")" : "");
    if (fs::is_regular_file(status)) {
      files.emplace_back(input);
      continue;
    }
    MOE_CHECK(fs::is_directory(status), "input '", input,
              "' is neither a regular file nor a directory");
    std::vector<fs::path> found;
    for (fs::recursive_directory_iterator it(input, error), end; !error && it != end;
         it.increment(error)) {
      if (it->is_regular_file(error) &&
          (glob.empty() || ::fnmatch(glob.c_str(), it->path().filename().c_str(), 0) == 0))
        found.push_back(it->path());
    }
    MOE_CHECK(!error, "cannot list directory '", input, "': ", error.message());
    MOE_CHECK(!found.empty(), "directory '", input, "' holds no regular file",
              glob.empty() ? "" : " whose name matches --glob '" + glob + "'");
    std::sort(found.begin(), found.end(),
              [](const fs::path& a, const fs::path& b) { return a.native() < b.native(); });
    files.insert(files.end(), found.begin(), found.end());
  }
  return files;
}

DocumentReader::DocumentReader(std::vector<fs::path> files, DocumentReaderOptions options)
    : files_(std::move(files)), options_(std::move(options)) {
  for (const fs::path& file : files_) {
    std::error_code error;
    const uintmax_t size = fs::file_size(file, error);
    MOE_CHECK(!error, "cannot read the size of '", file.string(), "': ", error.message());
    sizes_.push_back(size);
    total_bytes_ += size;
  }
}

bool DocumentReader::open_next_file() {
  if (next_file_ == files_.size()) return false;
  const fs::path& file = files_[next_file_++];
  in_ = std::ifstream(file, std::ios::binary);
  MOE_CHECK(in_.is_open(), "cannot open '", file.string(), "': ", std::strerror(errno));
  in_open_ = true;
  jsonl_ = file.extension() == ".jsonl";
  line_ = 0;
  return true;
}

bool DocumentReader::next_in_file(std::string& document) {
  const fs::path& file = files_[next_file_ - 1];
  if (!jsonl_ && !options_.split_lines) {  // the whole file, once
    if (line_++ > 0) return false;
    document.resize(sizes_[next_file_ - 1]);
    in_.read(document.data(), static_cast<std::streamsize>(document.size()));
    MOE_CHECK(in_.gcount() == static_cast<std::streamsize>(document.size()), "cannot read '",
              file.string(), "': ", in_.bad() ? std::strerror(errno) : "it shrank while read");
    return true;
  }
  std::string line;
  while (std::getline(in_, line)) {
    ++line_;
    bytes_read_ += line.size() + 1;
    if (!jsonl_) {
      document = std::move(line);
      return true;
    }
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // a blank line
    document =
        json_string_field(line, options_.jsonl_key, file.string() + ":" + std::to_string(line_));
    return true;
  }
  MOE_CHECK(!in_.bad(), "cannot read '", file.string(), "' after line ", line_, ": ",
            std::strerror(errno));
  return false;
}

bool DocumentReader::next_batch(std::vector<std::string>& documents, size_t max_bytes) {
  documents.clear();
  size_t bytes = 0;
  std::string document;
  while (documents.empty() || bytes < max_bytes) {
    if (!in_open_ && !open_next_file()) break;
    if (!next_in_file(document)) {
      in_.close();
      in_open_ = false;
      bytes_before_file_ += sizes_[next_file_ - 1];
      bytes_read_ = bytes_before_file_;
      continue;
    }
    if (document.empty()) {
      ++empty_documents_;
      continue;
    }
    bytes += document.size();
    documents.push_back(std::move(document));
  }
  return !documents.empty();
}

}  // namespace moe
