// The training path of train.device = cuda, checked on a machine without a GPU. With
// ops::set_host_backed_cuda the "GPU" is host memory running the CPU kernels, so a run on it makes
// the same device placements, host copies and checkpoint staging as on a GPU, and fails the same
// way when a tensor is made on the wrong device or device memory is read outside an op
// (Tensor::data refuses it). Since the kernels are the CPU's, the run must equal the CPU run bit
// for bit: losses, validation, generated text and checkpoints.
#include <cstdio>
#include <filesystem>
#include <string>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "tests/support/latent_attention.h"
#include "tests/support/text_dataset.h"
#include "tests/support/tiny_run.h"
#include "trainer/training_loop.h"

namespace moe {
namespace {

const std::string& gpl_dataset() {
  static const std::string prefix = testing::write_text_dataset(
      "/usr/share/common-licenses/GPL-3", ::testing::TempDir() + "moe_device_placement/gpl");
  return prefix;
}

class HostBackedCuda : public ::testing::Test {
 protected:
  void SetUp() override { ops::set_host_backed_cuda(true); }
  void TearDown() override { ops::set_host_backed_cuda(false); }

  static Config run(int steps) {
    Config c = testing::tiny_run(gpl_dataset());
    c.data.val_fraction = 0.1;
    c.train.steps = steps;
    c.train.warmup_steps = 2;
    c.train.eval_interval = steps;
    c.train.eval_batches = 2;
    c.log.interval = 2;
    return c;
  }
  static TrainingSummary train_on(Config c, DeviceType device, int sample_tokens = 0) {
    c.train.device = device;
    c.validate();
    return train_model(c, {sample_tokens, "GNU", false});
  }
  static void expect_same_run(const Config& c) {
    const TrainingSummary cpu = train_on(c, DeviceType::cpu, 12);
    const TrainingSummary gpu = train_on(c, DeviceType::cuda, 12);
    EXPECT_EQ(gpu.train_loss, cpu.train_loss);
    EXPECT_EQ(gpu.val_loss, cpu.val_loss);
    EXPECT_EQ(gpu.sample, cpu.sample);
  }
};

TEST_F(HostBackedCuda, ATrainingRunOnTheDeviceEqualsTheCpuRun) { expect_same_run(run(6)); }

TEST_F(HostBackedCuda, MoeVariantsOnTheDeviceEqualTheCpuRun) {
  Config c = run(4);
  c.moe.shared_experts = 1;
  c.moe.shared_expert_gate = true;
  c.moe.capacity_factor = 1.25;
  c.moe.router_score = RouterScore::sigmoid;
  c.moe.expert_bias = true;
  c.moe.aux_loss_type = AuxLossType::global_batch;
  c.train.recompute = true;
  expect_same_run(c);
}

// The bf16 step (compute copies, f32 statistics, the f32 router and logits) on the device too.
TEST_F(HostBackedCuda, ABf16RunOnTheDeviceEqualsTheCpuRun) {
  Config c = run(4);
  c.train.precision = Precision::bf16;
  c.moe.shared_experts = 1;
  c.moe.shared_expert_gate = true;
  c.moe.capacity_factor = 1.25;
  c.train.recompute = true;
  expect_same_run(c);
}

TEST_F(HostBackedCuda, CheckpointsOfADeviceRunResumeOnTheCpuBitForBit) {
  const std::string dir = ::testing::TempDir() + "moe_device_placement/checkpoints";
  std::filesystem::remove_all(dir);
  Config c = run(8);
  c.checkpoint.dir = dir;
  c.checkpoint.interval = 4;
  c.checkpoint.async = true;
  c.checkpoint.keep_last = 5;
  const TrainingSummary straight = train_on(c, DeviceType::cuda);
  c.checkpoint.resume = dir + "/step_00000004";
  c.checkpoint.dir = dir + "_resumed";
  std::filesystem::remove_all(c.checkpoint.dir);
  const TrainingSummary on_cpu = train_on(c, DeviceType::cpu);
  EXPECT_EQ(on_cpu.train_loss, straight.train_loss);
  c.checkpoint.dir = dir + "_resumed_on_device";
  std::filesystem::remove_all(c.checkpoint.dir);
  const TrainingSummary on_device = train_on(c, DeviceType::cuda);  // loads through a host copy
  EXPECT_EQ(on_device.train_loss, straight.train_loss);
}

TEST_F(HostBackedCuda, WeightsLoadIntoADeviceModel) {
  const std::string dir = ::testing::TempDir() + "moe_device_placement/weights";
  std::filesystem::remove_all(dir);
  Config c = run(2);
  c.checkpoint.dir = dir;
  train_on(c, DeviceType::cpu);
  c.checkpoint.dir.clear();
  c.init.method = InitMethod::load;
  c.init.from = dir + "/step_00000002";
  const TrainingSummary cpu = train_on(c, DeviceType::cpu);
  const TrainingSummary gpu = train_on(c, DeviceType::cuda);
  EXPECT_EQ(gpu.train_loss, cpu.train_loss);
}

// The host waits one training step makes, from the difference of two runs' counts (so setup,
// evaluation and the final report cancel out).
// A DeepSeek-V3-style model: multi-head latent attention with a query latent, group-limited
// sigmoid routing under the correction bias, routed scaling, a shared expert, a multi-token
// prediction module; f32 and bf16.
TEST_F(HostBackedCuda, ADeepSeekV3StyleRunOnTheDeviceEqualsTheCpuRun) {
  for (const Precision precision : {Precision::f32, Precision::bf16}) {
    SCOPED_TRACE(precision == Precision::f32 ? "f32" : "bf16");
    Config c = run(4);
    testing::use_latent_attention(
        c, {.q_lora_rank = 12, .kv_lora_rank = 8, .nope = 8, .rope = 4, .v = 6});
    c.moe.router_score = RouterScore::sigmoid;
    c.moe.n_group = 2;
    c.moe.topk_group = 1;
    c.moe.routed_scaling = 2.5;
    c.moe.expert_bias = true;
    c.moe.aux_loss_type = AuxLossType::sequence;
    c.moe.shared_experts = 1;
    c.model.mtp_depth = 1;
    c.train.precision = precision;
    expect_same_run(c);
  }
}

ops::HostWaits waits_per_step(Config c) {
  c.train.device = DeviceType::cuda;
  c.train.eval_interval = 0;
  c.log.interval = 1000;
  auto run_for = [&](int steps) {
    c.train.steps = steps;
    c.validate();
    const ops::HostWaits before = ops::host_waits();
    train_model(c, {0, "", false});
    const ops::HostWaits after = ops::host_waits();
    return ops::HostWaits{after.reads - before.reads, after.uploads - before.uploads};
  };
  const ops::HostWaits two = run_for(2), five = run_for(5);
  return {(five.reads - two.reads) / 3, (five.uploads - two.uploads) / 3};
}

// Per micro-batch: one read per MoE layer (its counts, with the router's loss terms) and one for
// the language-model loss; per step one more, the gradient norm. No upload waits: the small ones
// (ids, load-balancing weights, capacity plans) are staged in pinned memory (ops.h).
TEST_F(HostBackedCuda, AStepWaitsForTheDeviceOncePerMoeLayerAndMicroBatch) {
  Config c = run(2);
  c.model.n_layers = 3;  // one dense, two MoE layers
  const int64_t micro_batches = c.train.grad_accum, moe_layers = 2;
  const ops::HostWaits waits = waits_per_step(c);
  std::printf("host waits per step: %lld reads, %lld uploads\n",
              static_cast<long long>(waits.reads), static_cast<long long>(waits.uploads));
  EXPECT_EQ(waits.reads, micro_batches * (moe_layers + 1) + 1);
  EXPECT_EQ(waits.uploads, 0);

  c.moe.capacity_factor = 1.25;
  c.moe.aux_loss_type = AuxLossType::global_batch;
  c.train.recompute = true;
  const ops::HostWaits dropping = waits_per_step(c);
  EXPECT_EQ(dropping.reads, waits.reads + micro_batches * moe_layers);  // recompute reads again
  EXPECT_EQ(dropping.uploads, 0);

  testing::use_latent_attention(
      c, {.q_lora_rank = 12, .kv_lora_rank = 8, .nope = 8, .rope = 4, .v = 6});
  const ops::HostWaits latent = waits_per_step(c);  // latent attention reads nothing back
  EXPECT_EQ(latent.reads, dropping.reads);
  EXPECT_EQ(latent.uploads, 0);
}

TEST_F(HostBackedCuda, ASecondStreamOnADeviceIsRefused) {
  ops::OwnedStream first(Device::cuda(0));
  EXPECT_THROW(ops::OwnedStream(Device::cuda(0)), DeviceError);
  ops::OwnedStream other_device(Device::cuda(1));
  { ops::OwnedStream after(Device::cuda(2)); }
  ops::OwnedStream again(Device::cuda(2));  // the first one on cuda:2 is gone
}

TEST_F(HostBackedCuda, ReadingDeviceMemoryOutsideAnOpIsAnError) {
  Tensor t = Tensor::empty({4}, DType::f32, Device::cuda(0));
  EXPECT_THROW(t.data<float>(), InputError);
  Stream stream{Device::cuda(0), nullptr};
  ops::fill(t, 1.5, stream);  // inside an op it is allowed
  EXPECT_EQ(ops::to_host(t, stream).data<float>()[3], 1.5f);
}

}  // namespace
}  // namespace moe
