// The training loop on a small real text (the GPL-3 text every Debian system ships, as an indexed
// dataset of its paragraphs): the loss falls, the metrics file holds the documented records, and
// bad setups fail with clear messages.
#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "core/error.h"
#include "kernels/ops.h"
#include "tests/support/text_dataset.h"
#include "tests/support/tiny_run.h"
#include "trainer/training_loop.h"

namespace moe {
namespace {

const std::string& gpl_dataset() {
  static const std::string prefix = testing::write_text_dataset(
      "/usr/share/common-licenses/GPL-3", ::testing::TempDir() + "moe_training_loop/gpl");
  return prefix;
}

Config logged_run(const std::string& metrics_file = "") {
  Config c = testing::tiny_run(gpl_dataset());
  c.data.val_fraction = 0.1;
  c.train.steps = 30;
  c.train.warmup_steps = 3;
  c.train.eval_interval = 15;
  c.train.eval_batches = 2;
  c.log.interval = 10;
  c.log.metrics_file = metrics_file;
  c.validate();
  return c;
}

std::string train_error(const Config& config) {
  try {
    train_model(config, {});
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "training did not fail";
  return "";
}

TEST(TrainingLoop, LossFallsAndMetricsHoldEveryDocumentedKey) {
  const std::string metrics = ::testing::TempDir() + "moe_training_loop/metrics.jsonl";
  std::filesystem::remove(metrics);
  const TrainingSummary summary = train_model(logged_run(metrics), {20, "GNU", false});
  EXPECT_LT(summary.train_loss, std::log(256.0) - 1.0) << "the loss did not fall from ln 256";
  EXPECT_TRUE(std::isfinite(summary.val_loss));
  EXPECT_EQ(summary.sample.size(), 3u + 20u);
  EXPECT_EQ(summary.sample.substr(0, 3), "GNU");

  std::ifstream in(metrics);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  // Log records at steps 10, 20, 30 and evaluation records at 15 and 30.
  ASSERT_EQ(lines.size(), 5u);
  for (const char* key : {"\"step\": 10,", "\"loss\":", "\"aux_loss\":", "\"z_loss\":", "\"lr\":",
                          "\"grad_norm\":", "\"tokens_per_s\":", "\"load.layer1\": [",
                          "\"load_cv.layer1\":", "\"idle_experts.layer1\":"})
    EXPECT_NE(lines[0].find(key), std::string::npos) << key << " missing in " << lines[0];
  EXPECT_EQ(lines[0].find("layer0"), std::string::npos) << "layer 0 is dense: " << lines[0];
  EXPECT_EQ(lines[1].rfind("{\"step\": 15, \"val_loss.gpl\": ", 0), 0u) << lines[1];
  EXPECT_NE(lines[1].find(", \"val_loss\": "), std::string::npos) << lines[1];
  EXPECT_EQ(lines[4].rfind("{\"step\": 30, \"val_loss.gpl\": ", 0), 0u) << lines[4];
}

TEST(TrainingLoop, MissingDataFileIsAClearError) {
  Config c = logged_run();
  c.data.train = "/nonexistent/corpus";
  const std::string message = train_error(c);
  EXPECT_NE(message.find("/nonexistent/corpus"), std::string::npos) << message;
}

TEST(TrainingLoop, CudaWithoutAUsableGpuIsAClearError) {
  if (ops::cuda_device_count() > 0)
    GTEST_SKIP() << "a GPU is present: cuda_training_tests train on it";
  Config c = logged_run();
  c.train.device = DeviceType::cuda;
  const std::string message = train_error(c);
  EXPECT_NE(message.find("train.device = cuda, but"), std::string::npos) << message;
  EXPECT_NE(
      message.find(ops::built_with_cuda() ? "no CUDA device can be used" : "built without CUDA"),
      std::string::npos)
      << message;
}

// lr 1e30 sends the weights to ~1e30 in one step; the next forward overflows. Those steps are
// skipped (no update) until more than max_nonfinite_steps come in a row.
TEST(TrainingLoop, NonFiniteStepsAreSkippedThenTheRunStops) {
  Config c = logged_run();
  c.train.lr = 1e30;
  c.train.min_lr = 0;
  c.train.max_nonfinite_steps = 2;
  const std::string message = train_error(c);
  EXPECT_NE(message.find("not finite in 3 steps in a row"), std::string::npos) << message;
  EXPECT_NE(message.find("train.max_nonfinite_steps = 2"), std::string::npos) << message;
}

}  // namespace
}  // namespace moe
