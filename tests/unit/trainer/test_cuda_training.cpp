// The training step on a GPU against the CPU: in f32 (TF32 off) one forward and backward of the
// whole model gives the same losses and gradients, one AdamW step the same weights, and a short
// training run the same loss curve. In bf16 the CPU's bf16 step is the oracle: the GPU's sums run
// in another order, so a few bf16 roundings land on the other side; the GPU's distance from the
// CPU bf16 step may be at most twice bf16's own effect there (the CPU bf16 step's distance from
// the CPU f32 step). Skips without a CUDA backend or device.
#include <algorithm>
#include <cmath>
#include <cstdio>

#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "layers/model.h"
#include "tests/support/cuda_compare.h"
#include "tests/support/text_dataset.h"
#include "tests/support/tiny_run.h"
#include "tests/support/tolerance.h"
#include "tests/unit/layers/tiny_config.h"
#include "trainer/make_model.h"
#include "trainer/optimizer.h"
#include "trainer/training_loop.h"

namespace moe {
namespace {

using CudaTraining = testing::CudaTest;

// Relative to the largest magnitude of the CPU tensor: f32 sums in another order differ by a few
// eps of the terms, and the terms are bounded by the largest element.
::testing::AssertionResult close_to(const Tensor& gpu, const Tensor& cpu, double relative) {
  double largest = 0;
  for (int64_t i = 0; i < cpu.numel(); ++i)
    largest = std::max(largest, std::fabs(testing::element_as_double(cpu, i)));
  return testing::all_close(testing::to_host(gpu), cpu, relative * largest, relative);
}

struct Side {
  explicit Side(const Config& config, Device device)
      : store(DType::f32, device),
        model(config.model, config.moe, store, {}, model_options(config, {})) {
    store.allocate(11);
  }
  ParameterStore store;
  Model model;
};

void expect_step_matches(const Config& config) {
  Side cpu(config, Device::cpu()), gpu(config, Device::cuda(0));
  Stream host;
  ops::OwnedStream owned(Device::cuda(0));
  Stream& stream = owned.get();
  EXPECT_TRUE(close_to(gpu.store.values(), cpu.store.values(), 0)) << "init differs";
  const testing::TinyBatch batch = testing::tiny_batch(config, 3);
  const ModelOutput want = cpu.model.forward(batch.inputs, batch.targets, true, host);
  const ModelOutput got = gpu.model.forward(batch.inputs, batch.targets, true, stream);
  EXPECT_NEAR(got.lm_loss, want.lm_loss, 1e-5 * std::fabs(want.lm_loss));
  EXPECT_NEAR(got.aux_loss, want.aux_loss, 1e-5 * std::fabs(want.aux_loss) + 1e-7);
  EXPECT_NEAR(got.z_loss, want.z_loss, 1e-5 * std::fabs(want.z_loss) + 1e-7);
  cpu.model.backward(0.5, host);
  gpu.model.backward(0.5, stream);
  ops::synchronize(stream);
  EXPECT_TRUE(close_to(gpu.store.grads(), cpu.store.grads(), 1e-4)) << "gradients";

  TrainConfig train = config.train;
  train.weight_decay = 0.1;
  AdamW cpu_adam(cpu.store, train, {}, false), gpu_adam(gpu.store, train, {}, false);
  const double cpu_norm = cpu_adam.step(1e-3, host), gpu_norm = gpu_adam.step(1e-3, stream);
  EXPECT_NEAR(gpu_norm, cpu_norm, 1e-5 * cpu_norm);
  ops::synchronize(stream);
  EXPECT_TRUE(close_to(gpu.store.values(), cpu.store.values(), 1e-5)) << "weights after AdamW";
}

TEST_F(CudaTraining, MoeModelStepMatchesCpu) { expect_step_matches(testing::tiny_moe_config()); }

TEST_F(CudaTraining, Bf16StepMatchesTheCpuBf16Step) {
  Config c = testing::tiny_moe_config();
  c.moe.shared_experts = 1;
  c.moe.shared_expert_gate = true;
  Config bf16 = c;
  bf16.train.precision = Precision::bf16;
  Side cpu_f32(c, Device::cpu()), cpu(bf16, Device::cpu()), gpu(bf16, Device::cuda(0));
  Stream host;
  ops::OwnedStream owned(Device::cuda(0));
  Stream& stream = owned.get();
  const testing::TinyBatch batch = testing::tiny_batch(c, 3);
  const double f32_loss = cpu_f32.model.forward(batch.inputs, batch.targets, true, host).lm_loss;
  const double want = cpu.model.forward(batch.inputs, batch.targets, true, host).lm_loss;
  const double got = gpu.model.forward(batch.inputs, batch.targets, true, stream).lm_loss;
  EXPECT_LE(std::fabs(got - want), 2 * std::fabs(want - f32_loss) + 1e-6 * want);
  cpu_f32.model.backward(0.5, host);
  cpu.model.backward(0.5, host);
  gpu.model.backward(0.5, stream);
  ops::synchronize(stream);
  const double effect = testing::distance(cpu.store.grads(), cpu_f32.store.grads());
  const double gap = testing::distance(testing::to_host(gpu.store.grads()), cpu.store.grads());
  std::printf(
      "[cuda vs cpu] bf16 step: loss %.6f (gpu) %.6f (cpu bf16) %.6f (cpu f32); gradient "
      "distance %.3g, bf16's own effect %.3g\n",
      got, want, f32_loss, gap, effect);
  EXPECT_LE(gap, 2 * effect);
}

TEST_F(CudaTraining, SharedExpertsCapacityAndExpertBiasMatchCpu) {
  Config c = testing::tiny_moe_config();
  c.moe.shared_experts = 1;
  c.moe.shared_expert_gate = true;
  c.moe.capacity_factor = 1.0;
  c.moe.router_score = RouterScore::sigmoid;
  c.moe.expert_bias = true;
  expect_step_matches(c);
}

TEST_F(CudaTraining, DenseModelWithRecomputeMatchesCpu) {
  Config c = testing::tiny_moe_config();
  c.moe.first_k_dense = c.model.n_layers;
  c.train.recompute = true;
  expect_step_matches(c);
}

// The quickstart recipe in miniature: 30 steps on a real text on the CPU and on the GPU; the two
// loss curves agree to f32 accuracy (the run is short enough that reordered sums do not diverge).
TEST_F(CudaTraining, ShortRunFollowsTheCpuLossCurve) {
  const std::string dataset = testing::write_text_dataset(
      "/usr/share/common-licenses/GPL-3", ::testing::TempDir() + "moe_cuda_training/gpl");
  Config c = testing::tiny_run(dataset);
  c.train.steps = 30;
  c.train.warmup_steps = 3;
  c.train.tf32 = false;
  c.log.interval = 10;
  c.validate();
  const TrainingSummary on_cpu = train_model(c, {});
  c.train.device = DeviceType::cuda;
  const TrainingSummary on_gpu = train_model(c, {});
  EXPECT_NEAR(on_gpu.train_loss, on_cpu.train_loss, 1e-3 * on_cpu.train_loss);
  std::printf(
      "[cuda vs cpu] 30-step run: train loss %.6f (gpu) vs %.6f (cpu); %.0f vs %.0f tok/s\n",
      on_gpu.train_loss, on_cpu.train_loss, on_gpu.tokens_per_s, on_cpu.tokens_per_s);
}

}  // namespace
}  // namespace moe
