#include "trainer/step_report.h"

#include "trainer/expert_load.h"
#include "trainer/log_text.h"

namespace moe {
namespace {

void add_communication(const CommVolume& comm, double steps, StepReport& report) {
  const double bytes_per_step = static_cast<double>(comm.total()) / steps;
  report.line += " | comm " + number_text("%.2f", bytes_per_step / 1e6) + " MB/step";
  report.record.add("comm_bytes_per_step", bytes_per_step);
  for (int kind = 0; kind < kCollectiveKinds; ++kind)
    if (comm.bytes[kind] > 0)
      report.record.add(
          std::string("comm_bytes_per_step.") + collective_name(static_cast<Collective>(kind)),
          static_cast<double>(comm.bytes[kind]) / steps);
}

// FSSDP: the copies per MoE layer (a step's mean) and the bytes of its sparse collectives and
// re-sharding (this rank's point-to-point sends).
void add_fssdp(const StepFigures& f, double steps, StepReport& report) {
  report.line += " | copies";
  for (size_t i = 0, moe_layer = 0; i < f.interval.loads.size(); ++i) {
    if (f.interval.loads[i].empty()) continue;
    const double copies = f.interval.fssdp_copies.at(moe_layer++) / steps;
    report.line += " L" + std::to_string(i) + " " + number_text("%.1f", copies);
    report.record.add("fssdp_copies.layer" + std::to_string(i), copies);
  }
  if (!f.comm) return;
  const double bytes = static_cast<double>((*f.comm)[Collective::send_recv]) / steps;
  report.line += " | sparse " + number_text("%.2f", bytes / 1e6) + " MB/step";
  report.record.add("fssdp_bytes_per_step", bytes);
}

void add_expert_load(const StepFigures& f, StepReport& report) {
  std::string text;
  for (size_t i = 0; i < f.interval.loads.size(); ++i) {
    const std::vector<int64_t>& load = f.interval.loads[i];
    if (load.empty()) continue;
    const LoadSummary s = summarize_load(load);
    text += " L" + std::to_string(i) + " " + number_text("%.2f", s.max_over_mean) + "/" +
            number_text("%.2f", s.cv) + "/" + std::to_string(s.idle_experts);
    const std::string layer = ".layer" + std::to_string(i);
    report.record.add("load" + layer, load)
        .add("load_max_over_mean" + layer, s.max_over_mean)
        .add("load_cv" + layer, s.cv)
        .add("idle_experts" + layer, s.idle_experts);
    if (f.counts_dropped) report.record.add("dropped" + layer, f.interval.dropped[i]);
  }
  if (!text.empty()) report.line += " | load" + text;
}

void add_expert_work(const StepFigures& f, StepReport& report) {
  report.line += " | expert work";
  for (size_t i = 0, moe_layer = 0; i < f.interval.loads.size(); ++i) {
    if (f.interval.loads[i].empty()) continue;
    const double ratio = f.expert_work[moe_layer++];
    report.line += " L" + std::to_string(i) + " " + number_text("%.2f", ratio);
    report.record.add("expert_work_max_over_mean.layer" + std::to_string(i), ratio);
  }
}

}  // namespace

StepReport step_report(const StepFigures& f) {
  const StepStats& interval = f.interval;
  const double n = static_cast<double>(interval.steps);
  StepReport report;
  report.line = "step " + std::to_string(f.step) + "/" + std::to_string(f.total_steps) +
                " | loss " + number_text("%.4f", interval.lm_loss / n);
  if (f.has_moe)
    report.line += " | aux " + number_text("%.4f", interval.aux_loss / n) + " | z " +
                   number_text("%.4f", interval.z_loss / n);
  if (f.has_mtp) report.line += " | mtp " + number_text("%.4f", interval.mtp_loss / n);
  report.line += " | lr " + number_text("%.2e", f.lr) + " | gnorm " +
                 number_text("%.3f", interval.grad_norm / n) + " | " +
                 number_text("%.0f", f.tokens_per_s) + " tok/s | " + clock_text(f.elapsed_s) +
                 " elapsed, ETA " + clock_text(f.eta_s);
  report.record.add("step", f.step)
      .add("loss", interval.lm_loss / n)
      .add("aux_loss", interval.aux_loss / n)
      .add("z_loss", interval.z_loss / n)
      .add("lr", f.lr)
      .add("grad_norm", interval.grad_norm / n)
      .add("tokens_per_s", f.tokens_per_s)
      .add("elapsed_s", f.elapsed_s);
  if (f.has_mtp) report.record.add("mtp_loss", interval.mtp_loss / n);
  if (f.comm) add_communication(*f.comm, n, report);
  if (!interval.fssdp_copies.empty()) add_fssdp(f, n, report);
  add_expert_load(f, report);
  if (interval.skipped > 0) {
    report.line += " | skipped " + std::to_string(interval.skipped) + " (not finite)";
    report.record.add("skipped_steps", interval.skipped);
  }
  if (!f.expert_work.empty()) add_expert_work(f, report);
  return report;
}

}  // namespace moe
