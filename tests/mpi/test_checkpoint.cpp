// Checkpoints under mpirun (2, 4 and 8 ranks), through real HDF5 files:
// - same layout: 20 steps + save + resume + 20 steps equals 40 steps bit for bit (losses and
//   parameters), in f32 and in bf16; a bf16 run's checkpoint resumes in f32 and the reverse;
// - another layout: a checkpoint saved by the whole world loads into smaller layouts (down to one
//   rank) and the reverse, parameters and moments resharded, and the next steps' losses match the
//   run that kept its layout (fp32: relative 1e-4, as in test_parallel_layouts.cpp);
// - a different model, an uncommitted directory, a damaged or truncated file and a full disk are
//   clear errors that leave the last good checkpoint loadable;
// - experts placed by row lists (FSSDP owners: any set of a layer's experts per rank) load into
//   contiguous expert-parallel blocks and into one rank, and back, parameters and moments;
// - an asynchronous save writes the state of its step while training (and FSSDP moving expert
//   owners) goes on;
// - attachments (other committed checkpoints carried along) arrive whole as hard links, and one
//   that is not a committed checkpoint fails the save, not the previous checkpoint.
#include <hdf5.h>
#include <sys/resource.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "checkpoint/checkpoint.h"
#include "tests/support/error_message.h"
#include "tests/support/replica.h"
#include "trainer/checkpointing.h"
#include "trainer/expert_resharding.h"

namespace moe {
namespace {

namespace fs = std::filesystem;
using testing::Layout;
using testing::Replica;

// The whole world's layout, and smaller ones that its checkpoints must load into (and save for it).
Layout world_layout(int world) {
  switch (world) {
    case 2:
      return {1, 2, 2, false, true};
    case 4:
      return {2, 2, 2};
    default:
      return {2, 4, 2, false, true};
  }
}

std::vector<Layout> smaller_layouts(int world) {
  if (world == 8)
    return {{1}, {1, 4, 4}, {2, 2, 1}, {2, 2, 2, true, true}, {2, 2, 2, true, false, false, true}};
  if (world == 4) return {{1}, {1, 2, 2}, {2, 1, 1, true}};
  return {{1}};
}

int size_of(const Layout& l) { return l.tp * l.dp; }

class Checkpoints : public ::testing::Test {
 protected:
  void SetUp() override {
    world = mpi_world_communicator();
    dataset = testing::rank_dataset(*world, "checkpoint");
    // One directory for all ranks: the rank-0 path, broadcast.
    std::string dir = ::testing::TempDir() + "moe_checkpoint_" + std::to_string(getpid());
    Tensor chars = Tensor::zeros({256}, DType::i32);
    for (size_t i = 0; i < dir.size(); ++i) chars.data<int32_t>()[i] = dir[i];
    Stream stream;
    world->broadcast(chars, 0, stream);
    root.clear();
    for (int i = 0; i < 256 && chars.data<int32_t>()[i]; ++i)
      root += static_cast<char>(chars.data<int32_t>()[i]);
    root += "/" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name());
    if (world->rank() == 0) fs::remove_all(root);
    world->barrier();
  }
  void TearDown() override {
    world->barrier();
    if (world->rank() == 0) fs::remove_all(root);
  }

  Config config(const Layout& layout) const {
    Config c = testing::layout_run(dataset, layout);
    c.checkpoint.dir = root;
    c.checkpoint.keep_last = 0;
    c.parallel.zero = layout.zero ? 1 : 0;
    return c;
  }
  std::string save(Replica& r, int64_t step,
                   const std::map<std::string, std::string>& attachments = {}) const {
    TrainerState state{r.config, r.store, *r.optimizer, *r.loader, r.groups, attachments};
    return save_state(state, step);
  }
  CheckpointMeta load(Replica& r, const std::string& dir) const {
    TrainerState state{r.config, r.store, *r.optimizer, *r.loader, r.groups};
    return resume_from(state, dir);
  }

  void expect_async_save_of_saved_state(const Layout& layout,
                                        const std::function<void(Replica&, Stream&)>& meanwhile);

  std::unique_ptr<Communicator> world;
  std::string dataset, root;
};

void expect_bitwise_resume(
    const Config& c, const Layout& layout, Communicator& world,
    const std::function<std::string(Replica&, int64_t)>& save,
    const std::function<CheckpointMeta(Replica&, const std::string&)>& load) {
  ProcessGrid grid(world, layout.tp, layout.dp, layout.ep);
  Stream stream;
  Replica straight(c, grid.groups(layout.expert_tp), layout.zero);
  std::vector<double> losses;
  for (int64_t step = 0; step < 40; ++step) losses.push_back(straight.step(step, stream).lm_loss);

  std::string dir;
  {
    Replica first_half(c, grid.groups(layout.expert_tp), layout.zero);
    for (int64_t step = 0; step < 20; ++step) first_half.step(step, stream);
    dir = save(first_half, 20);
  }
  Replica resumed(c, grid.groups(layout.expert_tp), layout.zero);
  const CheckpointMeta meta = load(resumed, dir);
  EXPECT_EQ(meta.step, 20);
  EXPECT_EQ(meta.consumed_samples, 20 * testing::kGlobalBatch * c.train.grad_accum);
  EXPECT_EQ(meta.tp, layout.tp);
  EXPECT_EQ(meta.dp, layout.dp);
  EXPECT_EQ(meta.ep, layout.ep);
  for (int64_t step = 20; step < 40; ++step)
    EXPECT_EQ(resumed.step(step, stream).lm_loss, losses[step]) << "step " << step;
  EXPECT_EQ(std::memcmp(resumed.store.values().raw(), straight.store.values().raw(),
                        straight.store.values().nbytes()),
            0)
      << "the parameters differ after resuming";
  EXPECT_EQ(std::memcmp(resumed.store.buffers().front().value.raw(),
                        straight.store.buffers().front().value.raw(),
                        straight.store.buffers().front().value.nbytes()),
            0)
      << "the expert bias differs after resuming";
}

TEST_F(Checkpoints, ResumingInTheSameLayoutIsBitwiseIdentical) {
  const Layout layout = world_layout(world->size());
  expect_bitwise_resume(
      config(layout), layout, *world, [&](Replica& r, int64_t step) { return save(r, step); },
      [&](Replica& r, const std::string& dir) { return load(r, dir); });
}

// In bf16 the checkpoint holds the f32 masters, and a load rebuilds the bf16 compute copies.
TEST_F(Checkpoints, ResumingInBf16IsBitwiseIdentical) {
  const Layout layout = world_layout(world->size());
  Config c = config(layout);
  c.train.precision = Precision::bf16;
  expect_bitwise_resume(
      c, layout, *world, [&](Replica& r, int64_t step) { return save(r, step); },
      [&](Replica& r, const std::string& dir) { return load(r, dir); });
}

// A checkpoint does not depend on the precision that wrote it: a bf16 run's checkpoint resumes in
// f32 and the reverse, with the saved masters bit for bit, and the next step's loss is the saving
// run's up to bf16's own effect (measured below 1e-3 relative here).
TEST_F(Checkpoints, ABf16CheckpointResumesInF32AndTheReverse) {
  const Layout layout = world_layout(world->size());
  ProcessGrid grid(*world, layout.tp, layout.dp, layout.ep);
  for (const Precision saved_in : {Precision::bf16, Precision::f32}) {
    const Precision resumed_in = saved_in == Precision::bf16 ? Precision::f32 : Precision::bf16;
    SCOPED_TRACE(std::string("saved in ") + std::string(word_of(saved_in)));
    Config saving = config(layout), resuming = config(layout);
    saving.train.precision = saved_in;
    resuming.train.precision = resumed_in;
    Stream stream;
    Replica first(saving, grid.groups(layout.expert_tp), layout.zero);
    for (int64_t step = 0; step < 5; ++step) first.step(step, stream);
    const std::string dir = save(first, 5);
    Replica resumed(resuming, grid.groups(layout.expert_tp), layout.zero);
    load(resumed, dir);
    EXPECT_EQ(std::memcmp(resumed.store.values().raw(), first.store.values().raw(),
                          first.store.values().nbytes()),
              0);
    const double next = first.step(5, stream).lm_loss;
    EXPECT_NEAR(resumed.step(5, stream).lm_loss, next, 5e-3 * next);
    if (world->rank() == 0) fs::remove_all(dir);
    world->barrier();
  }
}

// An asynchronous save writes what the model was at save() even though training goes on while it
// writes (`meanwhile`, from step 3): the same files as a synchronous save of the same state, bit
// for bit once loaded.
void Checkpoints::expect_async_save_of_saved_state(
    const Layout& layout, const std::function<void(Replica&, Stream&)>& meanwhile) {
  ProcessGrid grid(*world, layout.tp, layout.dp, layout.ep);
  Config sync_config = config(layout), async_config = config(layout);
  sync_config.checkpoint.dir = root + "/sync";
  async_config.checkpoint.dir = root + "/async";
  async_config.checkpoint.async = true;
  Stream stream;
  Replica sync(sync_config, grid.groups(layout.expert_tp), layout.zero),
      async(async_config, grid.groups(layout.expert_tp), layout.zero);
  for (int64_t step = 0; step < 3; ++step) {
    sync.step(step, stream);
    async.step(step, stream);
  }
  const std::string sync_dir = save(sync, 3);
  TrainerState state{async.config, async.store, *async.optimizer, *async.loader, async.groups};
  std::string async_dir;
  {
    std::promise<void> trained;
    std::shared_future<void> go = trained.get_future().share();
    CheckpointWriter writer(state, [go] { go.wait(); });  // writes only after `meanwhile`
    async_dir = writer.save(3);
    meanwhile(async, stream);
    trained.set_value();
    writer.finish();
  }
  ASSERT_TRUE(is_committed(async_dir));
  Replica from_sync(sync_config, grid.groups(layout.expert_tp), layout.zero),
      from_async(sync_config, grid.groups(layout.expert_tp), layout.zero);
  load(from_sync, sync_dir);
  load(from_async, async_dir);
  EXPECT_EQ(std::memcmp(from_async.store.values().raw(), from_sync.store.values().raw(),
                        from_sync.store.values().nbytes()),
            0);
  const std::vector<MomentRun> runs_sync = from_sync.optimizer->moment_runs(),
                               runs_async = from_async.optimizer->moment_runs();
  ASSERT_EQ(runs_async.size(), runs_sync.size());
  for (size_t i = 0; i < runs_sync.size(); ++i) {
    EXPECT_EQ(std::memcmp(runs_async[i].exp_avg.raw(), runs_sync[i].exp_avg.raw(),
                          runs_sync[i].exp_avg.nbytes()),
              0);
    EXPECT_EQ(std::memcmp(runs_async[i].exp_avg_sq.raw(), runs_sync[i].exp_avg_sq.raw(),
                          runs_sync[i].exp_avg_sq.nbytes()),
              0);
  }
}

TEST_F(Checkpoints, AnAsyncSaveWritesTheStateAtTheTimeOfSaving) {
  expect_async_save_of_saved_state(world_layout(world->size()), [](Replica& r, Stream& stream) {
    for (int64_t step = 3; step < 6; ++step) r.step(step, stream);
  });
}

// FSSDP moving every expert to another owner while a save of the old placement is being written.
TEST_F(Checkpoints, AnAsyncSaveIsNotDisturbedByFssdpMovingOwners) {
  Layout layout{1, world->size(), world->size()};
  layout.fssdp = true;
  expect_async_save_of_saved_state(layout, [](Replica& r, Stream& stream) {
    const std::vector<int> first = r.model->fssdp()->owners();
    std::vector<int> owners(first.begin() + 1, first.end());
    owners.push_back(first.front());
    ASSERT_GT(reshard_experts(*r.model, r.store, *r.optimizer, owners, stream), 0);
    r.step(3, stream);  // the next planned resharding is after step 5
  });
}

// Trains `from` 10 steps and saves; every layout in `to` loads it and trains 5 more steps, which
// must match `from` going on without a change.
void expect_reshards(Communicator& world, const Layout& from, const std::vector<Layout>& to,
                     const Config& from_config, const std::function<Config(const Layout&)>& config,
                     const std::string& root_dir) {
  Stream stream;
  const bool in_from = world.rank() < size_of(from);
  std::unique_ptr<Communicator> from_world = world.split(in_from ? 0 : 1, world.rank());
  std::vector<double> expected(5, 0.0);
  if (in_from) {
    ProcessGrid grid(*from_world, from.tp, from.dp, from.ep);
    Replica source(from_config, grid.groups(from.expert_tp), from.zero);
    for (int64_t step = 0; step < 10; ++step) source.step(step, stream);
    TrainerState state{source.config, source.store, *source.optimizer, *source.loader,
                       source.groups};
    save_state(state, 10);
    for (int64_t step = 10; step < 15; ++step)
      expected[step - 10] = source.step(step, stream).lm_loss;
  }
  Tensor shared = Tensor::from_vector<double>({5}, expected);
  world.broadcast(shared, 0, stream);
  const std::string dir = (fs::path(root_dir) / step_dir_name(10)).string();
  for (const Layout& layout : to) {
    SCOPED_TRACE("from " + from.name() + " to " + layout.name());
    const bool in_to = world.rank() < size_of(layout);
    std::unique_ptr<Communicator> to_world = world.split(in_to ? 0 : 1, world.rank());
    if (!in_to) continue;
    ProcessGrid grid(*to_world, layout.tp, layout.dp, layout.ep);
    Replica target(config(layout), grid.groups(layout.expert_tp), layout.zero);
    TrainerState state{target.config, target.store, *target.optimizer, *target.loader,
                       target.groups};
    const CheckpointMeta meta = resume_from(state, dir);
    EXPECT_EQ(meta.tp, from.tp);
    EXPECT_EQ(meta.ep, from.ep);
    for (int64_t step = 10; step < 15; ++step) {
      const double want = shared.data<double>()[step - 10];
      EXPECT_NEAR(target.step(step, stream).lm_loss, want, 1e-4 * want) << "step " << step;
    }
  }
  world.barrier();
}

TEST_F(Checkpoints, AWorldCheckpointLoadsIntoSmallerLayouts) {
  const Layout from = world_layout(world->size());
  expect_reshards(
      *world, from, smaller_layouts(world->size()), config(from),
      [this](const Layout& l) { return config(l); }, root);
}

TEST_F(Checkpoints, SmallerLayoutsCheckpointsLoadIntoTheWorld) {
  const Layout to = world_layout(world->size());
  for (const Layout& from : smaller_layouts(world->size())) {
    if (world->rank() == 0) fs::remove_all(root);
    world->barrier();
    expect_reshards(
        *world, from, {to}, config(from), [this](const Layout& l) { return config(l); }, root);
  }
}

// A store of one stacked expert weight [8, 3, 2], placed by `placement`, with values and moments
// that are functions of the global element index, so any placement knows what it must hold.
struct ExpertStore {
  explicit ExpertStore(const Placement& placement) {
    store.add("layers.1.moe.experts.w_up", {8, 3, 2}, Init::zeros, 0, true, placement);
    store.allocate(0);
    Parameter& p = store.parameters().front();
    const int64_t n = p.shape.numel();
    run = {&p, 0, n, Tensor::zeros({n}, DType::f32), Tensor::zeros({n}, DType::f32), true};
  }
  // value(global index) for element i of the local block, in order, by the pieces of the block.
  template <typename Fn>
  void for_each(Fn&& fn) {
    const Parameter& p = store.parameters().front();
    int64_t i = 0;
    for (const Piece& piece : pieces(p)) {
      const Shape block = p.shape.with_dim(0, piece.rows);
      for (int64_t j = 0; j < block.numel(); ++j, ++i)
        fn(i, global_index(block, piece.offset, p.global_shape, j));
    }
  }
  void fill() {
    for_each([&](int64_t i, int64_t g) {
      store.parameters().front().value.data<float>()[i] = 0.5f + static_cast<float>(g);
      run.exp_avg.data<float>()[i] = 2.0f * static_cast<float>(g);
      run.exp_avg_sq.data<float>()[i] = 3.0f * static_cast<float>(g);
    });
  }
  int64_t wrong() {
    int64_t count = 0;
    for_each([&](int64_t i, int64_t g) {
      count += store.parameters().front().value.data<float>()[i] != 0.5f + static_cast<float>(g);
      count += run.exp_avg.data<float>()[i] != 2.0f * static_cast<float>(g);
      count += run.exp_avg_sq.data<float>()[i] != 3.0f * static_cast<float>(g);
    });
    return count;
  }
  RankState state() { return {&store, true, {run}}; }

  ParameterStore store;
  MomentRun run;
};

// Expert e of 8 is owned by rank (e * 5 + shift) % ranks: any number per rank, none for some.
Placement owned_rows(int rank, int ranks, int shift) {
  std::vector<int64_t> rows;
  for (int64_t e = 0; e < 8; ++e)
    if ((e * 5 + shift) % ranks == rank) rows.push_back(e);
  return {ParamGroup::expert, TpMode::partial, {}, rows};
}

TEST_F(Checkpoints, ExpertsPlacedByRowListsLoadIntoAnyPlacementAndBack) {
  const int rank = world->rank(), ranks = world->size();
  const ParallelGroups groups{world.get()};
  CheckpointMeta meta;
  meta.step = 1;
  ExpertStore owners(owned_rows(rank, ranks, 0));
  owners.fill();
  const std::string saved = save_checkpoint(root, owners.state(), meta, groups);
  ExpertStore blocks({ParamGroup::expert, TpMode::partial, {{0, rank, ranks}}});
  load_checkpoint(saved, blocks.state(), groups);
  EXPECT_EQ(blocks.wrong(), 0) << "contiguous blocks from row lists";
  ExpertStore others(owned_rows(rank, ranks, 3));
  load_checkpoint(saved, others.state(), groups);
  EXPECT_EQ(others.wrong(), 0) << "other row lists from row lists";
  world->barrier();
  if (rank == 0) {
    ExpertStore whole({});
    load_checkpoint(saved, whole.state(), {});
    EXPECT_EQ(whole.wrong(), 0) << "one rank from row lists";
  }
  world->barrier();

  meta.step = 2;
  blocks.fill();
  const std::string from_blocks = save_checkpoint(root, blocks.state(), meta, groups);
  ExpertStore rows(owned_rows(rank, ranks, 1));
  load_checkpoint(from_blocks, rows.state(), groups);
  EXPECT_EQ(rows.wrong(), 0) << "row lists from contiguous blocks";
}

// Everything below runs on rank 0 alone (groups {}): serial HDF5, faults injected into one file.
class CheckpointFaults : public Checkpoints {
 protected:
  void save_reference() {
    replica = std::make_unique<Replica>(config({}), ParallelGroups{}, false);
    Stream stream;
    for (int64_t step = 0; step < 2; ++step) replica->step(step, stream);
    good = save(*replica, 2);
  }
  std::unique_ptr<Replica> replica;
  std::string good;
};

TEST_F(CheckpointFaults, ADifferentModelIsAClearError) {
  if (world->rank() != 0) return;
  save_reference();
  Config more_experts = config({});
  more_experts.moe.num_experts = 8;
  Replica other(more_experts, {}, false);
  const std::string message = testing::input_error_message([&] { load(other, good); });
  EXPECT_NE(message.find("'model/layers.1.moe.router.gate.weight' has shape [4, 32] but this "
                         "model's is [8, 32]"),
            std::string::npos)
      << message;

  Config deeper = config({});
  deeper.model.n_layers = 3;
  Replica three(deeper, {}, false);
  EXPECT_NE(testing::input_error_message([&] {
              load(three, good);
            }).find("has no tensor 'model/layers.2."),
            std::string::npos);
  Config shallower = config({});
  shallower.model.n_layers = 1;
  shallower.moe.first_k_dense = 0;
  Replica one(shallower, {}, false);
  EXPECT_NE(
      testing::input_error_message([&] { load(one, good); }).find("which this model does not have"),
      std::string::npos);
}

TEST_F(CheckpointFaults, AnUncommittedDirectoryIsNeverLoadedAndIsCleanedUp) {
  if (world->rank() != 0) return;
  save_reference();
  Stream stream;
  replica->step(2, stream);
  const std::string newer = save(*replica, 3);
  EXPECT_EQ(latest_checkpoint(root), newer);
  fs::remove(fs::path(newer) / "COMMIT");  // as if the save had died before its marker
  fs::create_directory(root + "/step_00000004.tmp");
  EXPECT_EQ(latest_checkpoint(root), good);
  Replica fresh(config({}), {}, false);
  EXPECT_NE(testing::input_error_message([&] { load(fresh, newer); }).find("no COMMIT marker"),
            std::string::npos);
  clean_checkpoints(root, 0);
  EXPECT_FALSE(fs::exists(newer));
  EXPECT_FALSE(fs::exists(root + "/step_00000004.tmp"));
  EXPECT_TRUE(fs::exists(good));
  EXPECT_EQ(load(fresh, good).step, 2);
}

TEST_F(CheckpointFaults, KeepLastPrunesTheOldest) {
  if (world->rank() != 0) return;
  save_reference();
  for (int64_t step = 3; step <= 5; ++step) save(*replica, step);
  clean_checkpoints(root, 2);
  EXPECT_FALSE(fs::exists(root + "/" + step_dir_name(3)));
  EXPECT_TRUE(fs::exists(root + "/" + step_dir_name(4)));
  EXPECT_TRUE(fs::exists(root + "/" + step_dir_name(5)));
}

// The file offset of a dataset's data (contiguous storage), from HDF5 itself.
haddr_t data_offset(const std::string& file, const std::string& dataset) {
  const hid_t f = H5Fopen(file.c_str(), H5F_ACC_RDONLY, H5P_DEFAULT);
  const hid_t d = H5Dopen2(f, dataset.c_str(), H5P_DEFAULT);
  const haddr_t offset = H5Dget_offset(d);
  H5Dclose(d);
  H5Fclose(f);
  return offset;
}

TEST_F(CheckpointFaults, ADamagedTensorIsRefusedByName) {
  if (world->rank() != 0) return;
  save_reference();
  const std::string file = good + "/state.h5";
  const haddr_t at = data_offset(file, "model/layers.0.attn.wq.weight");
  ASSERT_NE(at, HADDR_UNDEF);
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekg(static_cast<std::streamoff>(at + 5));
    char byte = 0;
    f.read(&byte, 1);
    byte = static_cast<char>(byte ^ 0x10);
    f.seekp(static_cast<std::streamoff>(at + 5));
    f.write(&byte, 1);
  }
  Replica fresh(config({}), {}, false);
  const std::string message = testing::input_error_message([&] { load(fresh, good); });
  EXPECT_NE(message.find("'model/layers.0.attn.wq.weight' does not match its checksum"),
            std::string::npos)
      << message;
}

TEST_F(CheckpointFaults, ATruncatedFileIsRefused) {
  if (world->rank() != 0) return;
  save_reference();
  const std::string file = good + "/state.h5";
  fs::resize_file(file, fs::file_size(file) / 2);
  Replica fresh(config({}), {}, false);
  const std::string message = testing::input_error_message([&] { load(fresh, good); });
  EXPECT_NE(message.find("state.h5"), std::string::npos) << message;
}

// A full disk, as a file-size limit: the save fails with a clear error and the checkpoint before
// it stays committed and loadable.
TEST_F(CheckpointFaults, ADiskFullSaveFailsClearlyAndKeepsThePreviousCheckpoint) {
  if (world->rank() != 0) return;
  save_reference();
  rlimit old{};
  getrlimit(RLIMIT_FSIZE, &old);
  rlimit limit = old;
  limit.rlim_cur = 64 * 1024;  // far below one checkpoint
  auto previous = std::signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(setrlimit(RLIMIT_FSIZE, &limit), 0);
  std::string message;
  try {
    save(*replica, 3);
  } catch (const CheckpointError& e) {
    message = e.what();
  }
  setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, previous);
  EXPECT_NE(message.find("File too large"), std::string::npos) << "got: '" << message << "'";
  EXPECT_EQ(latest_checkpoint(root), good);
  Replica fresh(config({}), {}, false);
  EXPECT_EQ(load(fresh, good).step, 2);
}

TEST_F(CheckpointFaults, AttachedCheckpointsArriveWholeAsHardLinks) {
  if (world->rank() != 0) return;
  save_reference();
  const std::string with = save(*replica, 3, {{"decoders/reference", good}});
  const fs::path copy = fs::path(with) / "decoders/reference";
  EXPECT_TRUE(is_committed(copy.string()));
  for (const char* file : {"state.h5", "COMMIT"}) {
    EXPECT_EQ(fs::hard_link_count(copy / file), 2u) << file;
    EXPECT_TRUE(fs::equivalent(copy / file, fs::path(good) / file)) << file;
  }
  Replica from_copy(config({}), {}, false);
  EXPECT_EQ(load(from_copy, copy.string()).step, 2);
  Replica from_step(config({}), {}, false);
  EXPECT_EQ(load(from_step, with).step, 3);

  const std::string uncommitted = root + "/step_00000009.tmp";
  fs::create_directory(uncommitted);
  std::string message;
  try {
    save(*replica, 4, {{"decoders/broken", uncommitted}});
  } catch (const CheckpointError& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("cannot attach '" + uncommitted + "': not a committed checkpoint"),
            std::string::npos)
      << "got: '" << message << "'";
  EXPECT_EQ(latest_checkpoint(root), with);
}

}  // namespace
}  // namespace moe
