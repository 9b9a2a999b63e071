// Sharded HDF5 checkpoints (DESIGN.md §3 "Checkpoints"; the format is in docs/checkpoints.md).
//
// <root>/step_00001000/ holds state.h5 and, written last, an empty-but-for-a-line COMMIT file.
// state.h5 is one HDF5 file written by all ranks at once through MPI-IO (parallel HDF5):
//   /model/<name>                                every parameter, global name and global shape
//   /optimizer/exp_avg/<name>, /optimizer/exp_avg_sq/<name>   the AdamW moments, same shapes
//   /buffers/<name>                              state without gradient (the expert bias)
//   root attributes: format_version, step, consumed_samples, consumed_tokens, seed, config (the
//   effective YAML), layout_tp, layout_dp, layout_ep, layout_expert_tp, layout_zero
//   on every dataset: checksum (see block_checksum)
//
// Decisions:
// - One shared file rather than per-rank files joined by virtual datasets: h5py, h5dump and any
//   layout read it as a plain HDF5 file, there is no rank count baked into file names, and
//   resharding is just reading other hyperslabs. Each rank writes only the primary copies of its
//   blocks (holds_primary_copy), so every element is written exactly once.
// - Each rank writes only what it owns: the primary copies of its parameter blocks and of its
//   moment runs (with ZeRO-1 its slice of the arena: a run of a parameter's local block, written
//   as the few boxes, rows then planes, that make it up). Every element is written exactly once,
//   and any layout reads the boxes it needs.
// - Checksums are order-free (a sum over elements of a hash of global index and bits, mod 2^64),
//   so ranks add up partial sums over the blocks they write or read, in any layout, and a reader
//   of the whole tensor gets the same number.
// - Crash safety: everything goes to step_X.tmp/, which is fsynced, renamed to step_X/, and only
//   then gets COMMIT (fsynced, with its directory). A directory without COMMIT is never loaded and
//   is removed by clean_checkpoints.
// - Attachments (other committed checkpoints carried along) are hard links when the file system
//   allows (no space, no time: those checkpoints never change) and copies otherwise, made before
//   the step is published, so a committed step has them whole.
// - Every random stream is a pure function of (seed, name, counter) and the LR schedule of the
//   step, so seed and step are the whole RNG and schedule state; the data loader's state is the
//   number of global samples it consumed.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "checkpoint/h5.h"
#include "layers/parameters.h"
#include "parallel/parallel_groups.h"

namespace moe {

constexpr int64_t kCheckpointFormat = 1;

struct CheckpointMeta {
  int64_t step = 0;              // optimizer steps done
  int64_t consumed_samples = 0;  // the data loader's position (global samples)
  int64_t consumed_tokens = 0;
  int64_t seed = 0;
  std::string config_yaml;
  int tp = 1, dp = 1, ep = 1, zero = 0;  // the layout at save time
  bool expert_tp = false;
  bool has_optimizer_state = true;  // false for a converted model (moe-convert): weights only
  // Committed checkpoints saved along (save_checkpoint only): the step directory gets each source
  // directory's files under the given relative path (a self-contained BTS checkpoint's decoders).
  std::map<std::string, std::string> attachments;
};

// A run of a parameter's AdamW moments this rank holds: elements [begin, end) of the parameter's
// local block (row-major), and the memory they are in. A ZeRO-1 rank holds the runs of its slice of
// the flat arena; without ZeRO a run is the whole local block.
struct MomentRun {
  const Parameter* parameter = nullptr;
  int64_t begin = 0, end = 0;
  Tensor exp_avg, exp_avg_sq;  // 1-D, end - begin elements
  bool primary = true;         // of the ranks holding this run, the one that writes it
};

// What one rank saves or loads: its parameter blocks and, with_moments, its moment runs.
struct RankState {
  ParameterStore* store = nullptr;
  bool with_moments = false;
  std::vector<MomentRun> moments;  // may be empty on a rank that owns no slice
};

// Parameters (by name) that a checkpoint may lack (they keep their values and zero moments) or
// have extra (ignored) when it is loaded, such as the stitch parameters of a BTS expert added or
// dropped since. Empty: the checkpoint must hold exactly this model.
using MayDiffer = std::function<bool(const std::string&)>;

std::string step_dir_name(int64_t step);  // "step_00001000"

// Writes meta.step's checkpoint under root and publishes it; every rank of groups.world calls it
// with its own state. Returns the published directory. Throws CheckpointError when the writing
// fails (disk full, permissions); the last published checkpoint is untouched then.
std::string save_checkpoint(const std::string& root, const RankState& state,
                            const CheckpointMeta& meta, const ParallelGroups& groups);

// Reads the committed checkpoint `dir` into this rank's blocks, whatever layout saved it, and
// refreshes the store's compute copies (bf16); every rank of groups.world calls it. Moments are
// read when state asks for them and the checkpoint has them (meta.has_optimizer_state; a converted
// model has none). A different model (a missing, extra or differently shaped tensor), an
// uncommitted directory or a tensor failing its checksum is an InputError naming it; tensors that
// may_differ accepts are exempt from the first.
CheckpointMeta load_checkpoint(const std::string& dir, const RankState& state,
                               const ParallelGroups& groups, const MayDiffer& may_differ = {});

// Writes one checkpoint from one process, tensor block by tensor block, so that a model never has
// to be in memory whole (moe-convert): the same file, checksums, space check and publishing as
// save_checkpoint. Every element of every tensor must be written once before commit().
class StreamingCheckpoint {
 public:
  // bytes: the tensors' total size (for the space check).
  StreamingCheckpoint(const std::string& root, const CheckpointMeta& meta, int64_t bytes);
  ~StreamingCheckpoint();  // without commit(): removes what it wrote
  StreamingCheckpoint(const StreamingCheckpoint&) = delete;
  StreamingCheckpoint& operator=(const StreamingCheckpoint&) = delete;
  void add_tensor(const std::string& name, DType dtype, const Shape& global_shape);
  void write(const std::string& name, const Tensor& block, const std::vector<int64_t>& offset);
  std::string commit();  // returns the published step directory

 private:
  struct Dataset {
    h5::Handle dataset;
    Shape shape;
    uint64_t checksum = 0;
    int64_t written = 0;  // elements, checked against the shape at commit
  };
  std::string root_;
  CheckpointMeta meta_;
  std::string temp_dir_;
  h5::Handle file_;
  std::map<std::string, Dataset> tensors_;
  bool committed_ = false;
};

// Saving in a background thread while the main thread runs collectives needs MPI initialized with
// MPI_THREAD_MULTIPLE; an InputError says so otherwise.
void check_background_io_support();

bool is_committed(const std::string& step_dir);
// An InputError unless step_dir is a directory with COMMIT.
void expect_committed(const std::string& step_dir);
// The effective config YAML a checkpoint was saved with (read by this process alone).
std::string checkpoint_config(const std::string& step_dir);
// The committed step directories under root, newest first.
std::vector<std::string> committed_checkpoints(const std::string& root);
// The newest committed step directory under root; "" when there is none.
std::string latest_checkpoint(const std::string& root);
// Removes the step directories without COMMIT (interrupted saves) and, keep_last > 0, all but the
// newest keep_last committed ones. One rank calls it.
void clean_checkpoints(const std::string& root, int keep_last);

// The order-free checksum of a block of a tensor: sum over its elements of hash(global index,
// value bits), mod 2^64. Blocks that partition a tensor add up to the whole tensor's checksum.
uint64_t block_checksum(const Tensor& block, const Shape& global_shape,
                        const std::vector<int64_t>& offset);

}  // namespace moe
