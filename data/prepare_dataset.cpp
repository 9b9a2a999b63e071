#include "data/prepare_dataset.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <exception>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "data/indexed_dataset.h"
#include "data/tokenizer.h"

namespace moe {
namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kBatchBytes = size_t{8} << 20;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string clock_text(double seconds) {
  const auto s = static_cast<long long>(seconds + 0.5);
  char text[32];
  if (s >= 3600)
    std::snprintf(text, sizeof text, "%lld:%02lld:%02lld", s / 3600, s / 60 % 60, s % 60);
  else
    std::snprintf(text, sizeof text, "%02lld:%02lld", s / 60, s % 60);
  return text;
}

// The progress line on stderr; see the header for how often it prints.
class Progress {
 public:
  explicit Progress(uint64_t total_bytes)
      : total_(total_bytes), tty_(::isatty(STDERR_FILENO) == 1), start_(Clock::now()) {}

  void update(uint64_t bytes, int64_t documents) {
    const double elapsed = seconds_since(start_);
    if (elapsed - last_ < (tty_ ? 0.25 : 10.0)) return;
    last_ = elapsed;
    const double mb = bytes / 1e6, rate = mb / elapsed;
    const double eta = rate > 0 ? (total_ / 1e6 - mb) / rate : 0;
    std::fprintf(stderr,
                 "%sprepare: %.1f of %.1f MB read (%.0f%%), %.1f MB/s, %lld documents, ETA %s%s",
                 tty_ ? "\r" : "", mb, total_ / 1e6, total_ ? 100.0 * bytes / total_ : 100.0, rate,
                 static_cast<long long>(documents), clock_text(eta).c_str(), tty_ ? "" : "\n");
    printed_ = true;
  }
  ~Progress() {
    if (tty_ && printed_) std::fputc('\n', stderr);
  }

 private:
  uint64_t total_;
  bool tty_;
  bool printed_ = false;
  Clock::time_point start_;
  double last_ = 0;
};

// tokens[i] = encode(documents[i]) + EOD, on `threads` threads.
void tokenize_batch(const Tokenizer& tokenizer, const std::vector<std::string>& documents,
                    std::vector<std::vector<int32_t>>& tokens, int threads) {
  tokens.resize(documents.size());
  std::atomic<size_t> next{0};
  std::exception_ptr failure;
  std::mutex failure_mutex;
  auto work = [&] {
    try {
      for (size_t i; (i = next++) < documents.size();) {
        tokens[i] = tokenizer.encode(documents[i]);
        tokens[i].push_back(tokenizer.eod_id());
      }
    } catch (...) {
      const std::lock_guard lock(failure_mutex);
      if (!failure) failure = std::current_exception();
      next = documents.size();
    }
  };
  const int helpers = std::min<int>(threads, static_cast<int>(documents.size())) - 1;
  std::vector<std::thread> pool;
  for (int t = 0; t < helpers; ++t) pool.emplace_back(work);
  work();
  for (auto& thread : pool) thread.join();
  if (failure) std::rethrow_exception(failure);
}

}  // namespace

PrepareSummary prepare_dataset(const PrepareOptions& options) {
  const auto start = Clock::now();
  const std::unique_ptr<Tokenizer> tokenizer = make_tokenizer(options.tokenizer);
  DocumentReader reader(list_input_files(options.inputs, options.glob), options.reader);
  IndexedDatasetWriter writer(options.output, token_dtype_for(tokenizer->vocab_size()));
  const int threads = options.threads > 0
                          ? options.threads
                          : std::max(1, static_cast<int>(std::thread::hardware_concurrency()));

  PrepareSummary summary;
  Progress progress(reader.total_bytes());
  std::vector<std::string> documents;
  std::vector<std::vector<int32_t>> tokens;
  while (reader.next_batch(documents, kBatchBytes)) {
    tokenize_batch(*tokenizer, documents, tokens, threads);
    for (const auto& document : tokens) {
      writer.add_document(document);
      summary.tokens += static_cast<int64_t>(document.size());
    }
    summary.documents += static_cast<int64_t>(documents.size());
    progress.update(reader.bytes_read(), summary.documents);
  }
  MOE_CHECK(summary.documents > 0, "the inputs hold no document to write (",
            reader.empty_documents(), " empty ones skipped)");
  writer.finish();
  summary.empty_documents = reader.empty_documents();
  summary.bytes = reader.bytes_read();
  summary.seconds = seconds_since(start);
  return summary;
}

}  // namespace moe
