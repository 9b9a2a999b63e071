#include "checkpoint/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "layers/tensor_parallel.h"
#include "parallel/mpi_communicator.h"

namespace moe {

namespace fs = std::filesystem;

namespace {

constexpr const char* kStateFile = "state.h5";
constexpr const char* kCommitFile = "COMMIT";

// Checkpoints move host memory, so they talk over the world's host communicator (MPI).
Communicator* host_world(const ParallelGroups& groups) {
  return groups.world ? &groups.world->host() : nullptr;
}

// HDF5 reads and writes host memory: a store on a GPU goes through a host copy (the trainer's).
void expect_host_state(const char* what, const RankState& state) {
  MOE_CHECK(state.store->device().is_cpu(), what, ": the parameters are on ",
            state.store->device().str(), "; checkpoints take a host copy of the training state");
}

MPI_Comm mpi_comm_of(Communicator* world) {
  if (group_size(world) == 1) return MPI_COMM_NULL;
  auto* mpi = dynamic_cast<MpiCommunicator*>(world);
  MOE_CHECK(mpi, "checkpoints are written through MPI-IO and need an MPI communicator");
  return mpi->comm();
}

void barrier(Communicator* world) {
  if (group_size(world) > 1) world->barrier();
}

void fsync_path(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0 || ::fsync(fd) != 0) {
    const std::string reason = std::strerror(errno);
    if (fd >= 0) ::close(fd);
    throw CheckpointError("fsync of '" + path + "' failed: " + reason);
  }
  ::close(fd);
}

uint64_t mix(uint64_t x) {  // splitmix64's finalizer
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// The checksum of `count` consecutive elements of Width bytes whose global indices start at `start`
// (a fixed width makes each read one load).
template <size_t Width>
uint64_t run_checksum(const unsigned char* bytes, int64_t count, uint64_t start) {
  uint64_t sum = 0;
  for (int64_t j = 0; j < count; ++j) {
    uint64_t bits = 0;
    std::memcpy(&bits, bytes + j * Width, Width);
    sum += mix(mix(start + j) ^ bits);
  }
  return sum;
}

// A box of a tensor this rank holds: where it is in the global tensor and its memory.
struct Box {
  std::vector<int64_t> offset;
  Tensor memory;  // contiguous, shaped like the box
  bool primary;   // this rank writes it and counts it in the checksum
};

// One tensor of the file and this rank's boxes of it.
struct Entry {
  std::string name;
  Shape global_shape;
  std::vector<Box> boxes;
};

// Elements [begin, end) of a row-major block of `shape` as boxes, each contiguous in memory: at
// each point the largest aligned run of whole sub-blocks (rows, planes, ...) that fits.
std::vector<std::pair<std::vector<int64_t>, Shape>> boxes_of_range(const Shape& shape,
                                                                   int64_t begin, int64_t end) {
  const int n = shape.ndim();
  std::vector<int64_t> size(n + 1, 1);  // size[k]: elements of one index step of dim k - 1
  for (int k = n - 1; k >= 0; --k) size[k] = size[k + 1] * shape[k];
  std::vector<std::pair<std::vector<int64_t>, Shape>> boxes;
  for (int64_t at = begin; at < end;) {
    int k = 0;
    while (at % size[k + 1] != 0 || at + size[k + 1] > end) ++k;
    const int64_t count =
        std::min((size[k] - at % size[k]) / size[k + 1], (end - at) / size[k + 1]);
    std::vector<int64_t> start(n), dims(n);
    for (int d = 0; d < n; ++d) {
      start[d] = at / size[d + 1] % shape[d];
      dims[d] = d < k ? 1 : d == k ? count : shape[d];
    }
    boxes.emplace_back(start, Shape(dims));
    at += count * size[k + 1];
  }
  return boxes;
}

// The boxes of elements [begin, end) of a parameter's local block (row-major), held in `memory`
// (those elements, contiguous), placed globally piece by piece.
std::vector<Box> range_boxes(const Parameter& p, int64_t begin, int64_t end, const Tensor& memory,
                             bool primary) {
  std::vector<Box> boxes;
  const int64_t row_size = p.shape.ndim() > 0 && p.shape[0] > 0 ? p.shape.numel() / p.shape[0] : 1;
  int64_t used = 0;
  for (const Piece& piece : pieces(p)) {
    const int64_t first = piece.row * row_size, last = (piece.row + piece.rows) * row_size;
    if (std::max(begin, first) >= std::min(end, last)) continue;
    const Shape block = p.shape.ndim() > 0 ? p.shape.with_dim(0, piece.rows) : p.shape;
    for (auto& [start, shape] :
         boxes_of_range(block, std::max(begin, first) - first, std::min(end, last) - first)) {
      for (size_t d = 0; d < start.size(); ++d) start[d] += piece.offset[d];
      boxes.push_back({start, memory.narrow(used, shape.numel()).view(shape), primary});
      used += shape.numel();
    }
  }
  return boxes;
}

// The boxes of one moment run: its elements of the parameter's local block, placed globally.
std::vector<Box> run_boxes(const MomentRun& run, const Tensor& memory) {
  return range_boxes(*run.parameter, run.begin, run.end, memory, run.primary);
}

std::vector<Entry> entries(const RankState& state, const ParallelGroups& groups) {
  std::vector<Entry> list;
  for (Parameter& p : state.store->parameters()) {
    const bool primary = holds_primary_copy(p.placement, groups);
    if (p.placement.rows)  // the listed rows, a box per run of consecutive ones
      list.push_back(
          {"model/" + p.name, p.global_shape,
           range_boxes(p, 0, p.shape.numel(), p.value.view({p.shape.numel()}), primary)});
    else
      list.push_back({"model/" + p.name, p.global_shape, {{p.offset, p.value, primary}}});
  }
  const std::vector<const char*> moments = state.with_moments
                                               ? std::vector<const char*>{"exp_avg", "exp_avg_sq"}
                                               : std::vector<const char*>{};
  for (const char* moment : moments)
    for (const Parameter& p : state.store->parameters()) {
      Entry e{std::string("optimizer/") + moment + "/" + p.name, p.global_shape, {}};
      for (const MomentRun& run : state.moments)
        if (run.parameter->name == p.name) {
          const Tensor& memory = std::string(moment) == "exp_avg" ? run.exp_avg : run.exp_avg_sq;
          for (Box& box : run_boxes(run, memory)) e.boxes.push_back(std::move(box));
        }
      list.push_back(std::move(e));
    }
  for (Buffer& b : state.store->buffers())
    list.push_back(
        {"buffers/" + b.name,
         b.value.shape(),
         {{std::vector<int64_t>(b.value.ndim(), 0), b.value, group_rank(groups.world) == 0}}});
  return list;
}

// The whole tensors' checksums: every rank's partial sums over its primary boxes, added up.
std::vector<uint64_t> checksums(const std::vector<Entry>& list, Communicator* world) {
  const int64_t n = static_cast<int64_t>(list.size());
  std::vector<int64_t> mine(n, 0);
  for (int64_t i = 0; i < n; ++i)
    for (const Box& box : list[i].boxes)
      if (box.primary)
        mine[i] =
            static_cast<int64_t>(static_cast<uint64_t>(mine[i]) +
                                 block_checksum(box.memory, list[i].global_shape, box.offset));
  const int ranks = group_size(world);
  std::vector<uint64_t> total(n, 0);
  Tensor all = Tensor::from_vector<int64_t>({n}, mine);
  if (ranks > 1) {
    Tensor gathered = Tensor::empty({n * ranks}, DType::i64);
    Stream stream;
    world->all_gather(all, gathered, stream);
    all = gathered;
  }
  for (int r = 0; r < ranks; ++r)
    for (int64_t i = 0; i < n; ++i)
      total[i] += static_cast<uint64_t>(all.data<int64_t>()[r * n + i]);
  return total;
}

void write_meta(hid_t file, const CheckpointMeta& meta) {
  h5::write_attribute(file, "format_version", kCheckpointFormat);
  h5::write_attribute(file, "step", meta.step);
  h5::write_attribute(file, "consumed_samples", meta.consumed_samples);
  h5::write_attribute(file, "consumed_tokens", meta.consumed_tokens);
  h5::write_attribute(file, "seed", meta.seed);
  h5::write_attribute(file, "config", meta.config_yaml);
  h5::write_attribute(file, "layout_tp", int64_t{meta.tp});
  h5::write_attribute(file, "layout_dp", int64_t{meta.dp});
  h5::write_attribute(file, "layout_ep", int64_t{meta.ep});
  h5::write_attribute(file, "layout_expert_tp", int64_t{meta.expert_tp});
  h5::write_attribute(file, "layout_zero", int64_t{meta.zero});
}

CheckpointMeta read_meta(hid_t file, const std::string& path) {
  const int64_t version = h5::read_int_attribute(file, "format_version", path);
  MOE_CHECK(version == kCheckpointFormat, "checkpoint ", path, " has format version ", version,
            "; this build reads version ", kCheckpointFormat);
  CheckpointMeta meta;
  meta.step = h5::read_int_attribute(file, "step", path);
  meta.consumed_samples = h5::read_int_attribute(file, "consumed_samples", path);
  meta.consumed_tokens = h5::read_int_attribute(file, "consumed_tokens", path);
  meta.seed = h5::read_int_attribute(file, "seed", path);
  meta.config_yaml = h5::read_string_attribute(file, "config", path);
  meta.tp = static_cast<int>(h5::read_int_attribute(file, "layout_tp", path));
  meta.dp = static_cast<int>(h5::read_int_attribute(file, "layout_dp", path));
  meta.ep = static_cast<int>(h5::read_int_attribute(file, "layout_ep", path));
  meta.expert_tp = h5::read_int_attribute(file, "layout_expert_tp", path) != 0;
  meta.zero = static_cast<int>(h5::read_int_attribute(file, "layout_zero", path));
  return meta;
}

// The parameter an entry ("model/x", "optimizer/exp_avg/x", ...) stores.
std::string parameter_of(const std::string& entry) { return entry.substr(entry.rfind('/') + 1); }

// Every model tensor of the file must be one of the model's, with its shape, unless it may differ.
void check_same_model(hid_t file, const std::vector<Entry>& list, const std::string& path,
                      const MayDiffer& may_differ) {
  std::vector<std::string> expected;
  for (const Entry& e : list) expected.push_back(e.name);
  for (const std::string& name : h5::dataset_names(file)) {
    if (name.rfind("model/", 0) != 0) continue;
    if (may_differ && may_differ(parameter_of(name))) continue;
    MOE_CHECK(std::find(expected.begin(), expected.end(), name) != expected.end(), "checkpoint ",
              path, " has tensor '", name,
              "', which this model does not have: it was saved from a different model (compare "
              "the configs; turning a dense model into an MoE is upcycling, not loading)");
  }
}

// Room for the file's own structures: the superblock and root group, and per dataset its header,
// attributes and B-tree entry (a generous bound; HDF5 needs well under 2 KiB each here).
constexpr int64_t kMetadataBytes = 1 << 20;
constexpr int64_t kBytesPerDataset = 4096;

// Makes an empty temp_dir under root and checks that a file of `bytes` fits there (disk space,
// quotas, file-size limits) by allocating one and removing it, so that a full disk is a clear
// error before HDF5 writes anything. Returns what went wrong, "" when nothing did.
std::string prepare_directory(const std::string& root, const fs::path& temp_dir, int64_t bytes) {
  std::error_code error;
  fs::create_directories(root, error);
  if (!error) fs::remove_all(temp_dir, error);
  if (!error) fs::create_directory(temp_dir, error);
  if (error) return "cannot create '" + temp_dir.string() + "': " + error.message();
  const std::string probe = (temp_dir / "space_check").string();
  const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  const int status = fd < 0 ? errno : ::posix_fallocate(fd, 0, bytes);
  if (fd >= 0) ::close(fd);
  ::unlink(probe.c_str());
  if (status == 0) return "";
  return "no room for a checkpoint of " + std::to_string(bytes / 1000000) + " MB in '" +
         temp_dir.string() + "': " + std::strerror(status) +
         " (free some space or set checkpoint.dir elsewhere; earlier checkpoints are untouched)";
}

// Makes temp_dir (holding a closed state.h5) the committed step directory final_dir: fsync,
// rename, fsync of the root, then COMMIT, fsynced with its directory.
void publish(const std::string& root, const fs::path& temp_dir, const fs::path& final_dir,
             int64_t step) {
  fsync_path((temp_dir / kStateFile).string());
  fsync_path(temp_dir.string());
  std::error_code error;
  fs::remove_all(final_dir, error);  // an earlier save of the same step
  if (!error) fs::rename(temp_dir, final_dir, error);
  if (error)
    throw CheckpointError("cannot publish '" + final_dir.string() + "': " + error.message());
  fsync_path(root);
  const std::string marker = (final_dir / kCommitFile).string();
  {
    std::ofstream out(marker);
    out << "moeforge checkpoint format " << kCheckpointFormat << " step " << step << "\n";
    if (!out.flush()) throw CheckpointError("cannot write '" + marker + "'");
  }
  fsync_path(marker);
  fsync_path(final_dir.string());
}

// Puts each attachment's files under temp_dir: hard links, or copies across file systems.
// Returns the problem ("" when none).
std::string attach(const fs::path& temp_dir,
                   const std::map<std::string, std::string>& attachments) {
  for (const auto& [relative, source] : attachments) {
    if (!is_committed(source)) return "cannot attach '" + source + "': not a committed checkpoint";
    const fs::path target = temp_dir / relative;
    std::error_code error;
    fs::create_directories(target, error);
    if (!error)
      fs::copy(source, target, fs::copy_options::recursive | fs::copy_options::create_hard_links,
               error);
    if (error) {
      fs::remove_all(target);
      fs::create_directories(target, error);
      if (!error) fs::copy(source, target, fs::copy_options::recursive, error);
    }
    if (error)
      return "cannot copy '" + source + "' into '" + target.string() + "': " + error.message() +
             " (the last published checkpoint is untouched)";
  }
  return "";
}

// Test hook: MOE_FAIL_RANK=r MOE_KILL_IN_SAVE=s makes rank r receive SIGKILL (or the signal
// MOE_SAVE_SIGNAL names: a preemption's SIGTERM) halfway through writing the checkpoint of step s,
// as a crash, kill -9 or a scheduler would.
void signal_if_asked(int rank, int64_t step) {
  const char* who = std::getenv("MOE_FAIL_RANK");
  const char* at = std::getenv("MOE_KILL_IN_SAVE");
  const char* signal = std::getenv("MOE_SAVE_SIGNAL");
  if (who && at && std::atoi(who) == rank && std::atoll(at) == step)
    std::raise(signal ? std::atoi(signal) : SIGKILL);
}

}  // namespace

std::string step_dir_name(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof(name), "step_%08lld", static_cast<long long>(step));
  return name;
}

// Row by row of the innermost dim, which is contiguous in the block and in the tensor: the global
// index of a row's first element is computed once, the next elements' are one more each.
uint64_t block_checksum(const Tensor& block, const Shape& global_shape,
                        const std::vector<int64_t>& offset) {
  if (block.numel() == 0) return 0;
  const int64_t row = block.ndim() > 0 ? block.shape()[-1] : 1;
  const size_t width = dtype_size(block.dtype());
  MOE_ASSERT(width == 2 || width == 4 || width == 8, "block_checksum: ", width, "-byte elements");
  const auto* bytes = static_cast<const unsigned char*>(block.raw());
  uint64_t sum = 0;
  for (int64_t first = 0; first < block.numel(); first += row) {
    const auto start =
        static_cast<uint64_t>(global_index(block.shape(), offset, global_shape, first));
    const unsigned char* at = bytes + first * width;
    sum += width == 2   ? run_checksum<2>(at, row, start)
           : width == 4 ? run_checksum<4>(at, row, start)
                        : run_checksum<8>(at, row, start);
  }
  return sum;
}

std::string save_checkpoint(const std::string& root, const RankState& state,
                            const CheckpointMeta& meta, const ParallelGroups& groups) {
  expect_host_state("save_checkpoint", state);
  Communicator* world = host_world(groups);
  const fs::path final_dir = fs::path(root) / step_dir_name(meta.step);
  const fs::path temp_dir = fs::path(root) / (step_dir_name(meta.step) + ".tmp");
  const bool leader = group_rank(world) == 0;
  const std::vector<Entry> list = entries(state, groups);
  int64_t bytes = kMetadataBytes;
  for (const Entry& e : list)
    bytes += e.global_shape.numel() * static_cast<int64_t>(dtype_size(state.store->dtype())) +
             kBytesPerDataset;
  std::string problem;
  if (leader) problem = prepare_directory(root, temp_dir, bytes);
  broadcast_text(problem, world);
  if (!problem.empty()) throw CheckpointError(problem);
  const std::vector<uint64_t> sums = checksums(list, world);
  const std::string file_path = (temp_dir / kStateFile).string();
  {
    h5::Handle file = h5::create_file(file_path, mpi_comm_of(world));
    for (size_t i = 0; i < list.size(); ++i) {
      if (i == list.size() / 2) signal_if_asked(group_rank(world), meta.step);
      const Entry& e = list[i];
      h5::Handle dataset =
          h5::create_dataset(file.get(), e.name, state.store->dtype(), e.global_shape);
      for (const Box& box : e.boxes)
        if (box.primary) h5::write_block(dataset.get(), e.name, box.memory, box.offset);
      h5::write_attribute(dataset.get(), "checksum", sums[i]);
    }
    write_meta(file.get(), meta);
    file.close(file_path);
  }
  barrier(world);
  if (leader) problem = attach(temp_dir, meta.attachments);
  broadcast_text(problem, world);
  if (!problem.empty()) throw CheckpointError(problem);
  if (leader) publish(root, temp_dir, final_dir, meta.step);
  barrier(world);
  return final_dir.string();
}

CheckpointMeta load_checkpoint(const std::string& dir, const RankState& state,
                               const ParallelGroups& groups, const MayDiffer& may_differ) {
  expect_host_state("load_checkpoint", state);
  Communicator* world = host_world(groups);
  expect_committed(dir);
  const std::string path = (fs::path(dir) / kStateFile).string();
  h5::Handle file = h5::open_file(path, mpi_comm_of(world));
  CheckpointMeta meta = read_meta(file.get(), path);
  meta.has_optimizer_state = h5::exists(file.get(), "optimizer");
  RankState wanted = state;
  wanted.with_moments = state.with_moments && meta.has_optimizer_state;
  std::vector<Entry> list = entries(wanted, groups);
  check_same_model(file.get(), list, path, may_differ);
  if (may_differ)
    std::erase_if(list, [&](const Entry& e) {
      return !h5::exists(file.get(), e.name) && may_differ(parameter_of(e.name));
    });
  std::vector<uint64_t> stored;
  // A rank reads only its own boxes, so a damaged part of the file may fail on some ranks alone:
  // they agree before the checksums' collective, and every rank throws.
  std::exception_ptr failure;
  std::string problem;
  try {
    for (const Entry& e : list) {
      MOE_CHECK(h5::exists(file.get(), e.name), "checkpoint ", path, " has no tensor '", e.name,
                "': it was saved from a different model");
      h5::Handle dataset = h5::open_dataset(file.get(), e.name, path);
      const Shape shape = h5::dataset_shape(dataset.get(), e.name);
      MOE_CHECK(shape == e.global_shape, "checkpoint ", path, ": tensor '", e.name, "' has shape ",
                shape.str(), " but this model's is ", e.global_shape.str(),
                " (a different model: changing the number of experts or the model's sizes is not "
                "resharding; upcycling is its own tool)");
      for (const Box& box : e.boxes) {
        Tensor memory = box.memory;
        h5::read_block(dataset.get(), e.name, memory, box.offset);
      }
      stored.push_back(h5::read_uint_attribute(dataset.get(), "checksum", path));
    }
  } catch (const Error& e) {
    failure = std::current_exception();
    problem = e.what();
  }
  if (any_rank_failed(problem, world)) {
    if (failure) std::rethrow_exception(failure);
    throw CheckpointError("checkpoint " + path + " could not be read on another rank");
  }
  const std::vector<uint64_t> sums = checksums(list, world);
  for (size_t i = 0; i < list.size(); ++i)
    MOE_CHECK(sums[i] == stored[i], "checkpoint ", path, ": tensor '", list[i].name,
              "' does not match its checksum: the file is damaged");
  Stream stream;
  state.store->refresh_compute(stream);  // bf16 compute copies of the loaded values
  return meta;
}

StreamingCheckpoint::StreamingCheckpoint(const std::string& root, const CheckpointMeta& meta,
                                         int64_t bytes)
    : root_(root),
      meta_(meta),
      temp_dir_((fs::path(root) / (step_dir_name(meta.step) + ".tmp")).string()) {
  const std::string problem = prepare_directory(root, temp_dir_, bytes + kMetadataBytes);
  if (!problem.empty()) throw CheckpointError(problem);
  file_ = h5::create_file((fs::path(temp_dir_) / kStateFile).string(), MPI_COMM_NULL);
}

StreamingCheckpoint::~StreamingCheckpoint() {
  if (committed_) return;
  tensors_.clear();
  file_.reset();
  std::error_code ignored;
  fs::remove_all(temp_dir_, ignored);
}

void StreamingCheckpoint::add_tensor(const std::string& name, DType dtype, const Shape& shape) {
  MOE_ASSERT(!tensors_.count(name), "tensor ", name, " added twice");
  tensors_[name] = {h5::create_dataset(file_.get(), name, dtype, shape), shape, 0, 0};
}

void StreamingCheckpoint::write(const std::string& name, const Tensor& block,
                                const std::vector<int64_t>& offset) {
  auto it = tensors_.find(name);
  MOE_ASSERT(it != tensors_.end(), "tensor ", name, " was not added");
  h5::write_block(it->second.dataset.get(), name, block, offset);
  it->second.checksum += block_checksum(block, it->second.shape, offset);
  it->second.written += block.numel();
}

std::string StreamingCheckpoint::commit() {
  for (auto& [name, tensor] : tensors_) {
    MOE_ASSERT(tensor.written == tensor.shape.numel(), "StreamingCheckpoint: ", tensor.written,
               " of the ", tensor.shape.numel(), " elements of ", name, " were written");
    h5::write_attribute(tensor.dataset.get(), "checksum", tensor.checksum);
    tensor.dataset.close(name);
  }
  write_meta(file_.get(), meta_);
  const std::string path = (fs::path(temp_dir_) / kStateFile).string();
  file_.close(path);
  const fs::path final_dir = fs::path(root_) / step_dir_name(meta_.step);
  publish(root_, temp_dir_, final_dir, meta_.step);
  committed_ = true;
  return final_dir.string();
}

void check_background_io_support() {
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  MOE_CHECK(provided == MPI_THREAD_MULTIPLE,
            "checkpoint.async writes from a background thread and needs MPI initialized with "
            "MPI_THREAD_MULTIPLE (moe-train does so; this MPI provides level ",
            provided, ")");
}

std::string checkpoint_config(const std::string& step_dir) {
  const std::string path = (fs::path(step_dir) / kStateFile).string();
  h5::Handle file = h5::open_file(path, MPI_COMM_NULL);
  return h5::read_string_attribute(file.get(), "config", path);
}

bool is_committed(const std::string& step_dir) {
  return fs::is_regular_file(fs::path(step_dir) / kCommitFile);
}

void expect_committed(const std::string& step_dir) {
  MOE_CHECK(fs::is_directory(step_dir), "checkpoint directory '", step_dir, "' does not exist");
  MOE_CHECK(is_committed(step_dir), "checkpoint '", step_dir, "' has no ", kCommitFile,
            " marker: its save did not finish, so it is never loaded");
}

namespace {

// Step directories under root ("step_" + digits, or that + ".tmp" while being written), in step
// order; other names (a user's "step_00001000.bak") are neither loaded nor removed.
std::vector<fs::path> step_dirs(const std::string& root) {
  std::vector<std::pair<int64_t, fs::path>> dirs;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(root, error)) {
    std::string name = entry.path().filename().string();
    if (name.ends_with(".tmp")) name.resize(name.size() - 4);
    if (!entry.is_directory() || name.size() <= 5 || name.size() > 23 ||
        name.rfind("step_", 0) != 0 ||
        !std::all_of(name.begin() + 5, name.end(), [](char c) { return c >= '0' && c <= '9'; }))
      continue;
    dirs.push_back({std::stoll(name.substr(5)), entry.path()});
  }
  std::sort(dirs.begin(), dirs.end());
  std::vector<fs::path> paths;
  for (auto& [step, path] : dirs) paths.push_back(std::move(path));
  return paths;
}

}  // namespace

std::vector<std::string> committed_checkpoints(const std::string& root) {
  const std::vector<fs::path> dirs = step_dirs(root);
  std::vector<std::string> committed;
  for (auto it = dirs.rbegin(); it != dirs.rend(); ++it)
    if (it->extension() != ".tmp" && is_committed(it->string())) committed.push_back(it->string());
  return committed;
}

std::string latest_checkpoint(const std::string& root) {
  const std::vector<std::string> committed = committed_checkpoints(root);
  return committed.empty() ? "" : committed.front();
}

void clean_checkpoints(const std::string& root, int keep_last) {
  std::vector<fs::path> committed;
  for (const fs::path& dir : step_dirs(root)) {
    if (dir.extension() != ".tmp" && is_committed(dir.string()))
      committed.push_back(dir);
    else
      fs::remove_all(dir);
  }
  if (keep_last > 0 && static_cast<int>(committed.size()) > keep_last)
    for (size_t i = 0; i + keep_last < committed.size(); ++i) fs::remove_all(committed[i]);
}

}  // namespace moe
