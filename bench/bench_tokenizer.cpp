// Tokenizer throughput: encoding real text with a tokenizer.json (data/bpe_tokenizer.h), in MB/s of
// UTF-8 input, on one thread and on several (documents handed out to std::threads, the way
// moe-data prepare encodes). Before timing it prints the token count and an FNV-1a checksum of
// the ids, which bench/bench_tokenizer.sh compares with Hugging Face tokenizers on the same text.
// Run: build/bench/bench_tokenizer --tokenizer tok.json --text corpus.txt [--threads 16]
//      [--doc-bytes 4096] [Google Benchmark flags]
// Documents are runs of whole lines of at least --doc-bytes bytes.
#include <benchmark/benchmark.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "data/tokenizer.h"

namespace moe {
namespace {

struct Options {
  std::string tokenizer, text;
  int threads = static_cast<int>(std::thread::hardware_concurrency());
  size_t doc_bytes = 4096;
};

Options parse_options(int argc, char** argv) {
  Options options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    MOE_CHECK(i + 1 < argc, "bench_tokenizer: ", flag, " needs a value");
    const std::string value = argv[++i];
    if (flag == "--tokenizer") {
      options.tokenizer = value;
    } else if (flag == "--text") {
      options.text = value;
    } else if (flag == "--threads") {
      options.threads = std::stoi(value);
    } else if (flag == "--doc-bytes") {
      options.doc_bytes = std::stoul(value);
    } else {
      MOE_THROW(InputError, "bench_tokenizer: unknown option ", flag);
    }
  }
  MOE_CHECK(!options.tokenizer.empty() && !options.text.empty(),
            "usage: bench_tokenizer --tokenizer PATH --text FILE [--threads N] [--doc-bytes B]");
  return options;
}

std::vector<std::string> read_documents(const std::string& path, size_t doc_bytes) {
  std::ifstream in(path, std::ios::binary);
  MOE_CHECK(in, "cannot open '", path, "': ", std::strerror(errno));
  std::vector<std::string> documents(1);
  std::string line;
  while (std::getline(in, line)) {
    if (!in.eof()) line += '\n';
    documents.back() += line;
    if (documents.back().size() >= doc_bytes) documents.emplace_back();
  }
  if (documents.back().empty()) documents.pop_back();
  return documents;
}

// FNV-1a over every id, with a marker after each document.
uint64_t checksum(const std::vector<std::vector<int32_t>>& ids) {
  uint64_t hash = 14695981039346656037ull;
  const auto mix = [&](uint64_t value) { hash = (hash ^ value) * 1099511628211ull; };
  for (const auto& document : ids) {
    for (const int32_t id : document) mix(static_cast<uint32_t>(id));
    mix(0xFFFFFFFFull);
  }
  return hash;
}

// Encodes every document with `threads` threads taking documents in turn from a shared counter.
std::vector<std::vector<int32_t>> encode_all(const Tokenizer& tokenizer,
                                             const std::vector<std::string>& documents,
                                             int threads) {
  std::vector<std::vector<int32_t>> ids(documents.size());
  std::atomic<size_t> next{0};
  const auto work = [&] {
    for (size_t d = next++; d < documents.size(); d = next++)
      ids[d] = tokenizer.encode(documents[d]);
  };
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) pool.emplace_back(work);
  work();
  for (std::thread& thread : pool) thread.join();
  return ids;
}

}  // namespace
}  // namespace moe

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  try {
    const moe::Options options = moe::parse_options(argc, argv);
    const std::unique_ptr<moe::Tokenizer> tokenizer = moe::make_tokenizer(options.tokenizer);
    const std::vector<std::string> documents = moe::read_documents(options.text, options.doc_bytes);
    size_t bytes = 0;
    for (const std::string& document : documents) bytes += document.size();
    const auto ids = moe::encode_all(*tokenizer, documents, options.threads);
    size_t tokens = 0;
    for (const auto& document : ids) tokens += document.size();
    std::printf("%s on %s: %zu documents, %zu bytes, %zu tokens, checksum %016llx\n",
                tokenizer->name().c_str(), options.text.c_str(), documents.size(), bytes, tokens,
                static_cast<unsigned long long>(moe::checksum(ids)));
    std::fflush(stdout);

    for (const int threads : {1, options.threads}) {
      benchmark::RegisterBenchmark(
          "encode",
          [&, threads](benchmark::State& state) {
            for (auto _ : state)
              benchmark::DoNotOptimize(moe::encode_all(*tokenizer, documents, threads));
            state.counters["MB"] = benchmark::Counter(
                static_cast<double>(bytes) / 1e6, benchmark::Counter::kIsIterationInvariantRate);
            state.counters["threads"] = threads;
          })
          ->UseRealTime()
          ->Unit(benchmark::kMillisecond);
      if (options.threads == 1) break;
    }
    benchmark::RunSpecifiedBenchmarks();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  benchmark::Shutdown();
  return 0;
}
