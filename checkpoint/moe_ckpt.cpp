// moe-ckpt: look into, check and compare checkpoints (the format is in docs/checkpoints.md).
//   moe-ckpt ls STEP_DIR        the metadata and one line per tensor
//   moe-ckpt verify STEP_DIR    COMMIT, the moments and every checksum; exit 1 on a problem
//   moe-ckpt diff A B           the max |a - b| of every tensor both have; a report, exit 0
// Decisions:
// - One process, serial HDF5 (open_file with MPI_COMM_NULL), whole tensors read one at a time
//   (two for diff). MPI is initialized only because the HDF5 linked in is the parallel one.
// - verify does not stop at the first problem: each is one line naming the tensor (or COMMIT,
//   state.h5, an attribute), and an exception while reading a tensor (a truncated or damaged file)
//   becomes such a line. It recomputes checksums with block_checksum over the whole tensor in its
//   own dtype, so the tool and the trainer share one definition.
// - diff reads both sides as f64 (HDF5 converts f32), so tensors of different dtypes compare too.
// Errors that stop a command (no such directory, an unreadable file) are one "error: ..." line on
// stderr and exit 1; usage errors get CLI11's message, but for an unknown subcommand, which
// CLI11 reports as a missing one. A run directory given for a step directory names its newest step.
#include <mpi.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <set>
#include <tuple>

#include "checkpoint/checkpoint.h"
#include "checkpoint/h5.h"

namespace moe {
namespace {

namespace fs = std::filesystem;

constexpr const char* kStateFile = "state.h5";
constexpr const char* kMomentGroups[] = {"optimizer/exp_avg/", "optimizer/exp_avg_sq/"};
constexpr const char* kIntAttributes[] = {
    "format_version", "step",      "consumed_samples", "consumed_tokens",  "seed",
    "layout_tp",      "layout_dp", "layout_ep",        "layout_expert_tp", "layout_zero"};

bool starts_with(const std::string& text, const std::string& prefix) {
  return text.rfind(prefix, 0) == 0;
}

void require_directory(const std::string& step_dir) {
  MOE_CHECK(fs::is_directory(step_dir), "'", step_dir,
            "' is not a directory; give a step directory such as ckpt/step_00001000");
}

// A directory with neither state.h5 nor COMMIT is no step directory, damaged or not: usually the
// run directory above the steps, and the error names the step to give instead.
void require_step_directory(const std::string& step_dir) {
  require_directory(step_dir);
  if (fs::exists(fs::path(step_dir) / kStateFile) || is_committed(step_dir)) return;
  const std::string newest = latest_checkpoint(step_dir);
  MOE_CHECK(!newest.empty(), "'", step_dir, "' has no ", kStateFile,
            " and no committed step directory (step_XXXXXXXX) under it; give a step directory "
            "such as ckpt/step_00001000");
  MOE_THROW(InputError, "'", step_dir, "' has no ", kStateFile,
            ": it is a run directory, not a step directory; its newest committed step is ", newest);
}

// Opens STEP_DIR/state.h5 for reading; `path` receives the file's path.
h5::Handle open_state(const std::string& step_dir, std::string& path) {
  require_step_directory(step_dir);
  path = (fs::path(step_dir) / kStateFile).string();
  MOE_CHECK(fs::is_regular_file(path), "'", step_dir, "' has no ", kStateFile);
  return h5::open_file(path, MPI_COMM_NULL);
}

Tensor read_whole(hid_t dataset, const std::string& name, DType dtype) {
  Tensor tensor = Tensor::empty(h5::dataset_shape(dataset, name), dtype);
  h5::read_block(dataset, name, tensor, std::vector<int64_t>(tensor.ndim(), 0));
  return tensor;
}

// A root attribute as text, "?" when it is missing.
std::string attribute_text(hid_t file, const char* name, const std::string& path) {
  if (!h5::has_attribute(file, name)) return "?";
  return std::to_string(h5::read_int_attribute(file, name, path));
}

// Prints rows as left-aligned columns two spaces apart.
void print_table(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    widths.resize(std::max(widths.size(), row.size()), 0);
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c)
      line +=
          c + 1 == row.size() ? row[c] : row[c] + std::string(widths[c] - row[c].size() + 2, ' ');
    std::printf("%s\n", line.c_str());
  }
}

int run_ls(const std::string& step_dir) {
  std::string path;
  h5::Handle file = open_state(step_dir, path);
  const auto attr = [&](const char* name) { return attribute_text(file.get(), name, path); };
  std::printf("%s: step %s, %s samples / %s tokens consumed, seed %s\n", step_dir.c_str(),
              attr("step").c_str(), attr("consumed_samples").c_str(),
              attr("consumed_tokens").c_str(), attr("seed").c_str());
  std::printf("saved under tp %s, dp %s, ep %s, expert_tp %s, zero %s\n", attr("layout_tp").c_str(),
              attr("layout_dp").c_str(), attr("layout_ep").c_str(),
              attr("layout_expert_tp").c_str(), attr("layout_zero").c_str());
  std::printf("format version %s, %s\n\n", attr("format_version").c_str(),
              is_committed(step_dir) ? "committed"
                                     : "NOT committed (no COMMIT marker: it is never loaded)");

  struct Total {
    std::string group;
    int64_t tensors = 0, elements = 0, bytes = 0;
  };
  std::vector<Total> totals = {{"model"}, {"optimizer"}, {"buffers"}, {"other"}, {"all"}};
  std::vector<std::vector<std::string>> rows = {{"tensor", "shape", "dtype", "bytes"}};
  for (const std::string& name : h5::dataset_names(file.get())) {
    h5::Handle dataset = h5::open_dataset(file.get(), name, path);
    const Shape shape = h5::dataset_shape(dataset.get(), name);
    const DType dtype = h5::dtype_of_dataset(dataset.get(), name);
    const auto bytes = static_cast<int64_t>(shape.numel() * dtype_size(dtype));
    rows.push_back({name, shape.str(), dtype_name(dtype), std::to_string(bytes)});
    Total* group = &totals[3];
    for (Total& t : totals)
      if (starts_with(name, t.group + "/")) group = &t;
    for (Total* t : {group, &totals.back()}) {
      t->tensors += 1;
      t->elements += shape.numel();
      t->bytes += bytes;
    }
  }
  print_table(rows);
  std::printf("\n");
  for (const Total& t : totals)
    if (t.tensors > 0 || t.group == "all")
      std::printf("total %s: %lld tensors, %lld elements, %lld bytes\n", t.group.c_str(),
                  static_cast<long long>(t.tensors), static_cast<long long>(t.elements),
                  static_cast<long long>(t.bytes));
  return 0;
}

// verify's checks, each problem printed as one line "<what>: <text>" as it is found.
class Verifier {
 public:
  explicit Verifier(std::string step_dir) : step_dir_(std::move(step_dir)) {}

  int run() {
    require_step_directory(step_dir_);
    if (!is_committed(step_dir_))
      problem("COMMIT", "missing: the save did not finish, so the trainer never loads it");
    path_ = (fs::path(step_dir_) / kStateFile).string();
    h5::Handle file;
    std::vector<std::string> names;
    try {
      file = h5::open_file(path_, MPI_COMM_NULL);
      names = h5::dataset_names(file.get());
    } catch (const std::exception& e) {
      problem(kStateFile, e.what());
      return finish();
    }
    check_attributes(file.get());
    check_moments(file.get(), names);
    for (const std::string& name : names) check_tensor(file.get(), name);
    return finish();
  }

 private:
  void problem(const std::string& what, const std::string& text) {
    std::printf("%s: %s\n", what.c_str(), text.c_str());
    ++problems_;
  }

  int finish() {
    if (problems_ == 0) {
      std::printf("ok: %lld tensors verified\n", static_cast<long long>(verified_));
      return 0;
    }
    std::printf("%lld problem(s) in %s\n", static_cast<long long>(problems_), step_dir_.c_str());
    return 1;
  }

  void check_attributes(hid_t file) {
    try {
      for (const char* name : kIntAttributes)
        if (!h5::has_attribute(file, name)) problem(std::string("attribute ") + name, "missing");
      if (!h5::has_attribute(file, "config")) problem("attribute config", "missing");
      if (h5::has_attribute(file, "format_version")) {
        const int64_t version = h5::read_int_attribute(file, "format_version", path_);
        if (version != kCheckpointFormat)
          problem("attribute format_version", std::to_string(version) + ", but this build knows " +
                                                  std::to_string(kCheckpointFormat));
      }
    } catch (const std::exception& e) {
      problem("attributes", e.what());
    }
  }

  // Every parameter has both moments of the same shape, and every moment has its parameter (when
  // the checkpoint holds optimizer state at all).
  void check_moments(hid_t file, const std::vector<std::string>& names) {
    const std::set<std::string> all(names.begin(), names.end());
    bool has_optimizer = false;
    for (const std::string& name : names) has_optimizer |= starts_with(name, "optimizer/");
    for (const std::string& name : names) {
      if (starts_with(name, "model/")) {
        if (!has_optimizer) continue;
        for (const char* group : kMomentGroups) {
          const std::string moment = group + name.substr(6);
          if (!all.count(moment))
            problem(name, "has no " + moment);
          else
            check_same_shape(file, name, moment);
        }
      } else if (starts_with(name, "optimizer/")) {
        const char* const* group =
            std::find_if(std::begin(kMomentGroups), std::end(kMomentGroups),
                         [&](const char* g) { return starts_with(name, g); });
        if (group == std::end(kMomentGroups))
          problem(name, "is neither under optimizer/exp_avg/ nor under optimizer/exp_avg_sq/");
        else if (!all.count("model/" + name.substr(std::string(*group).size())))
          problem(name, "has no parameter model/" + name.substr(std::string(*group).size()));
      } else if (!starts_with(name, "buffers/")) {
        problem(name, "is outside /model, /optimizer and /buffers");
      }
    }
  }

  void check_same_shape(hid_t file, const std::string& parameter, const std::string& moment) {
    try {
      h5::Handle p = h5::open_dataset(file, parameter, path_);
      h5::Handle m = h5::open_dataset(file, moment, path_);
      const Shape p_shape = h5::dataset_shape(p.get(), parameter);
      const Shape m_shape = h5::dataset_shape(m.get(), moment);
      if (!(p_shape == m_shape))
        problem(moment,
                "has shape " + m_shape.str() + " but " + parameter + " has " + p_shape.str());
    } catch (const std::exception& e) {
      problem(moment, e.what());
    }
  }

  void check_tensor(hid_t file, const std::string& name) {
    try {
      h5::Handle dataset = h5::open_dataset(file, name, path_);
      if (!h5::has_attribute(dataset.get(), "checksum")) {
        problem(name, "has no checksum attribute");
        return;
      }
      const uint64_t stored = h5::read_uint_attribute(dataset.get(), "checksum", path_);
      const Tensor tensor =
          read_whole(dataset.get(), name, h5::dtype_of_dataset(dataset.get(), name));
      const uint64_t computed =
          block_checksum(tensor, tensor.shape(), std::vector<int64_t>(tensor.ndim(), 0));
      if (computed != stored) {
        char text[128];
        std::snprintf(text, sizeof(text),
                      "checksum mismatch (stored %016llx, data gives %016llx): the data is damaged",
                      static_cast<unsigned long long>(stored),
                      static_cast<unsigned long long>(computed));
        problem(name, text);
        return;
      }
      ++verified_;
    } catch (const std::exception& e) {
      problem(name, std::string("cannot be read: ") + e.what());
    }
  }

  std::string step_dir_, path_;
  int64_t problems_ = 0, verified_ = 0;
};

// max |a - b| over the elements; NaN when one side is NaN where the other is not.
double max_abs_difference(const Tensor& a, const Tensor& b) {
  const double* x = a.data<double>();
  const double* y = b.data<double>();
  double worst = 0;
  for (int64_t i = 0; i < a.numel(); ++i) {
    if (x[i] == y[i] || (std::isnan(x[i]) && std::isnan(y[i]))) continue;
    const double d = std::fabs(x[i] - y[i]);
    if (std::isnan(d)) return std::numeric_limits<double>::quiet_NaN();
    worst = std::max(worst, d);
  }
  return worst;
}

int run_diff(const std::string& a_dir, const std::string& b_dir) {
  std::string a_path, b_path;
  h5::Handle a = open_state(a_dir, a_path);
  h5::Handle b = open_state(b_dir, b_path);
  std::printf("A: %s (step %s)\nB: %s (step %s)\n\n", a_dir.c_str(),
              attribute_text(a.get(), "step", a_path).c_str(), b_dir.c_str(),
              attribute_text(b.get(), "step", b_path).c_str());
  const std::vector<std::string> a_names = h5::dataset_names(a.get());
  const std::vector<std::string> b_names = h5::dataset_names(b.get());
  const std::set<std::string> a_set(a_names.begin(), a_names.end());
  const std::set<std::string> b_set(b_names.begin(), b_names.end());

  std::vector<std::vector<std::string>> rows = {{"tensor", "shape", "max |a-b|"}};
  int64_t compared = 0, differing = 0;
  for (const std::string& name : a_names) {
    if (!b_set.count(name)) continue;
    h5::Handle a_data = h5::open_dataset(a.get(), name, a_path);
    h5::Handle b_data = h5::open_dataset(b.get(), name, b_path);
    const Shape a_shape = h5::dataset_shape(a_data.get(), name);
    const Shape b_shape = h5::dataset_shape(b_data.get(), name);
    ++compared;
    if (!(a_shape == b_shape)) {
      rows.push_back({name, a_shape.str() + " vs " + b_shape.str(), "shapes differ"});
      ++differing;
      continue;
    }
    const double d = max_abs_difference(read_whole(a_data.get(), name, DType::f64),
                                        read_whole(b_data.get(), name, DType::f64));
    char text[32];
    std::snprintf(text, sizeof(text), "%.6g", d);
    rows.push_back({name, a_shape.str(), text});
    if (d != 0) ++differing;
  }
  print_table(rows);
  for (const auto& [names, other, side] :
       {std::tuple{&a_names, &b_set, "A"}, std::tuple{&b_names, &a_set, "B"}})
    for (const std::string& name : *names)
      if (!other->count(name)) std::printf("only in %s: %s\n", side, name.c_str());
  std::printf("\n%lld tensors in both, %lld of them differ\n", static_cast<long long>(compared),
              static_cast<long long>(differing));
  return 0;
}

}  // namespace
}  // namespace moe

int main(int argc, char** argv) {
  CLI::App app{"Look into, verify and compare MoEForge checkpoints (docs/checkpoints.md)."};
  app.require_subcommand(1);
  std::string ls_dir, verify_dir, diff_a, diff_b;
  CLI::App* ls = app.add_subcommand("ls", "the metadata and every tensor's shape, dtype and bytes");
  ls->add_option("STEP_DIR", ls_dir, "a step directory, e.g. ckpt/step_00001000")->required();
  CLI::App* verify = app.add_subcommand(
      "verify", "check COMMIT, the optimizer moments and every tensor's checksum (exit 1 if bad)");
  verify->add_option("STEP_DIR", verify_dir, "a step directory")->required();
  CLI::App* diff = app.add_subcommand("diff", "the max |a - b| of every tensor both have");
  diff->add_option("A", diff_a, "a step directory")->required();
  diff->add_option("B", diff_b, "another step directory")->required();
  // CLI11 answers a word that names no subcommand with "A subcommand is required".
  if (argc > 1 && argv[1][0] != '-' &&
      app.get_subcommands([&](CLI::App* sub) { return sub->check_name(argv[1]); }).empty()) {
    std::string names;
    for (const CLI::App* sub : app.get_subcommands([](CLI::App*) { return true; }))
      names += (names.empty() ? "" : ", ") + sub->get_name();
    std::fprintf(stderr, "error: unknown subcommand '%s' (moe-ckpt has %s)\n", argv[1],
                 names.c_str());
    return 1;
  }
  CLI11_PARSE(app, argc, argv);

  MPI_Init(&argc, &argv);
  int status = 1;
  try {
    if (ls->parsed())
      status = moe::run_ls(ls_dir);
    else if (verify->parsed())
      status = moe::Verifier(verify_dir).run();
    else if (diff->parsed())
      status = moe::run_diff(diff_a, diff_b);
  } catch (const std::exception& e) {
    std::fflush(stdout);
    std::fprintf(stderr, "error: %s\n", e.what());
    status = 1;
  }
  MPI_Finalize();
  return status;
}
