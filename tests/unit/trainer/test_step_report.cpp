// The log line and metrics record of a log interval, from figures chosen so that every number can
// be worked out by hand: the averages over the interval's steps, the printf precisions and clock
// texts of the line, which figures each kind of run shows, and the record's keys in their order.
#include <cmath>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "trainer/step_report.h"

namespace moe {
namespace {

std::vector<std::string> keys(const MetricRecord& record) {
  std::vector<std::string> names;
  for (const auto& field : record.fields()) names.push_back(field.first);
  return names;
}

const MetricValue& value(const MetricRecord& record, const std::string& key) {
  for (const auto& field : record.fields())
    if (field.first == key) return field.second;
  throw std::out_of_range("no " + key + " in the record");
}

double number(const MetricRecord& record, const std::string& key) {
  return std::get<double>(value(record, key));
}

int64_t count(const MetricRecord& record, const std::string& key) {
  return std::get<int64_t>(value(record, key));
}

// Two steps of a model whose block 0 is dense and blocks 1 and 2 are MoE layers of four experts.
StepFigures moe_interval() {
  StepFigures f;
  f.step = 10;
  f.total_steps = 20;
  f.interval.steps = 2;
  f.interval.tokens = 2048;
  f.interval.lm_loss = 5.0;  // sums over the two steps
  f.interval.aux_loss = 0.02;
  f.interval.z_loss = 0.004;
  f.interval.grad_norm = 3.0;
  f.interval.loads = {{}, {3, 1, 0, 4}, {2, 2, 2, 2}};
  f.interval.dropped = {0, 5, 0};
  f.lr = 3e-4;
  f.tokens_per_s = 12345.6;
  f.elapsed_s = 3725.4;
  f.eta_s = 59.9;
  f.has_moe = true;
  return f;
}

TEST(StepReport, MoeRunOfSeveralRanksShowsEveryFigure) {
  StepFigures f = moe_interval();
  f.interval.skipped = 1;
  f.counts_dropped = true;
  f.comm = CommVolume{};
  f.comm->bytes[static_cast<int>(Collective::all_reduce)] = 3'000'000;
  f.comm->bytes[static_cast<int>(Collective::all_to_all)] = 1'000'000;
  f.expert_work = {1.25, 1.5};  // per MoE layer: blocks 1 and 2
  const StepReport report = step_report(f);

  // Layer 1: 8 tokens over 4 experts, mean 2, max 4, population std sqrt(10 / 4), one idle expert.
  EXPECT_EQ(report.line,
            "step 10/20 | loss 2.5000 | aux 0.0100 | z 0.0020 | lr 3.00e-04 | gnorm 1.500 | "
            "12346 tok/s | 1:02:05 elapsed, ETA 00:59 | comm 2.00 MB/step | load L1 2.00/0.79/1 "
            "L2 1.00/0.00/0 | skipped 1 (not finite) | expert work L1 1.25 L2 1.50");

  const MetricRecord& r = report.record;
  const std::vector<std::string> in_order = {
      "step",
      "loss",
      "aux_loss",
      "z_loss",
      "lr",
      "grad_norm",
      "tokens_per_s",
      "elapsed_s",
      "comm_bytes_per_step",
      "comm_bytes_per_step.all_reduce",
      "comm_bytes_per_step.all_to_all",
      "load.layer1",
      "load_max_over_mean.layer1",
      "load_cv.layer1",
      "idle_experts.layer1",
      "dropped.layer1",
      "load.layer2",
      "load_max_over_mean.layer2",
      "load_cv.layer2",
      "idle_experts.layer2",
      "dropped.layer2",
      "skipped_steps",
      "expert_work_max_over_mean.layer1",
      "expert_work_max_over_mean.layer2",
  };
  EXPECT_EQ(keys(r), in_order);
  const std::vector<std::pair<std::string, double>> numbers = {
      {"loss", 2.5},
      {"aux_loss", 0.01},
      {"z_loss", 0.002},
      {"lr", 3e-4},
      {"grad_norm", 1.5},
      {"tokens_per_s", 12345.6},
      {"elapsed_s", 3725.4},
      {"comm_bytes_per_step", 2e6},
      {"comm_bytes_per_step.all_reduce", 1.5e6},
      {"comm_bytes_per_step.all_to_all", 5e5},
      {"load_max_over_mean.layer1", 2.0},
      {"load_cv.layer1", std::sqrt(2.5) / 2},
      {"load_max_over_mean.layer2", 1.0},
      {"load_cv.layer2", 0.0},
      {"expert_work_max_over_mean.layer1", 1.25},
      {"expert_work_max_over_mean.layer2", 1.5}};
  for (const auto& [key, expected] : numbers) EXPECT_DOUBLE_EQ(number(r, key), expected) << key;
  const std::vector<std::pair<std::string, int64_t>> counts = {
      {"step", 10},          {"idle_experts.layer1", 1},
      {"dropped.layer1", 5}, {"idle_experts.layer2", 0},
      {"dropped.layer2", 0}, {"skipped_steps", 1}};
  for (const auto& [key, expected] : counts) EXPECT_EQ(count(r, key), expected) << key;
  EXPECT_EQ(std::get<std::vector<int64_t>>(value(r, "load.layer1")),
            (std::vector<int64_t>{3, 1, 0, 4}));
}

// FSSDP shows its copies per MoE layer (a step's mean) and its point-to-point bytes, multi-token
// prediction its loss.
TEST(StepReport, FssdpShowsCopiesAndSparseBytesAndMtpItsLoss) {
  StepFigures f = moe_interval();
  f.has_mtp = true;
  f.interval.mtp_loss = 6.0;         // sum over the two steps
  f.interval.fssdp_copies = {3, 0};  // blocks 1 and 2, over the two steps
  f.comm = CommVolume{};
  f.comm->bytes[static_cast<int>(Collective::all_reduce)] = 1'500'000;
  f.comm->bytes[static_cast<int>(Collective::send_recv)] = 500'000;
  const StepReport report = step_report(f);
  EXPECT_NE(report.line.find(" | z 0.0020 | mtp 3.0000 | lr "), std::string::npos) << report.line;
  EXPECT_NE(report.line.find(" | comm 1.00 MB/step | copies L1 1.5 L2 0.0 | sparse 0.25 MB/step"),
            std::string::npos)
      << report.line;
  EXPECT_DOUBLE_EQ(number(report.record, "mtp_loss"), 3.0);
  EXPECT_DOUBLE_EQ(number(report.record, "fssdp_copies.layer1"), 1.5);
  EXPECT_DOUBLE_EQ(number(report.record, "fssdp_copies.layer2"), 0.0);
  EXPECT_DOUBLE_EQ(number(report.record, "fssdp_bytes_per_step"), 250'000.0);
}

TEST(StepReport, OneRankWithoutCapacityHasNoCommunicationNorDroppedTokens) {
  const StepReport report = step_report(moe_interval());
  EXPECT_EQ(report.line,
            "step 10/20 | loss 2.5000 | aux 0.0100 | z 0.0020 | lr 3.00e-04 | gnorm 1.500 | "
            "12346 tok/s | 1:02:05 elapsed, ETA 00:59 | load L1 2.00/0.79/1 L2 1.00/0.00/0");
  for (const std::string& key : keys(report.record)) {
    EXPECT_EQ(key.find("comm"), std::string::npos) << key;
    EXPECT_EQ(key.find("dropped"), std::string::npos) << key;
    EXPECT_EQ(key.find("skipped"), std::string::npos) << key;
    EXPECT_EQ(key.find("expert_work"), std::string::npos) << key;
  }
}

TEST(StepReport, DenseModelShowsNoRouterFigures) {
  StepFigures f;
  f.step = 8;
  f.total_steps = 100;
  f.interval.steps = 4;
  f.interval.lm_loss = 16.0;
  f.interval.grad_norm = 1.0;
  f.interval.loads = {{}, {}};
  f.interval.dropped = {0, 0};
  f.lr = 1e-3;
  f.tokens_per_s = 799.6;
  f.elapsed_s = 5.2;
  f.eta_s = 161.9;
  const StepReport report = step_report(f);
  EXPECT_EQ(report.line,
            "step 8/100 | loss 4.0000 | lr 1.00e-03 | gnorm 0.250 | 800 tok/s | 00:05 elapsed, "
            "ETA 02:41");
  // The record keeps the zero aux terms: readers find the same keys in every run.
  EXPECT_EQ(keys(report.record),
            (std::vector<std::string>{"step", "loss", "aux_loss", "z_loss", "lr", "grad_norm",
                                      "tokens_per_s", "elapsed_s"}));
  EXPECT_DOUBLE_EQ(number(report.record, "loss"), 4.0);
  EXPECT_DOUBLE_EQ(number(report.record, "aux_loss"), 0.0);
  EXPECT_DOUBLE_EQ(number(report.record, "grad_norm"), 0.25);
}

}  // namespace
}  // namespace moe
