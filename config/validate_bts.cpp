// Constraints of model.kind bts: its decoders run whole on one rank, from their checkpoints.
#include "config/validation.h"

namespace moe {

void validate_bts(const Config& config, const std::string& where) {
  const BtsConfig& bts = config.bts;
  const ParallelConfig& p = config.parallel;
  if (config.model.kind != ModelKind::bts) {
    MOE_CHECK(bts.seed.empty() && bts.experts.empty() && bts.drop.empty(), "invalid config in ",
              where, ": bts.* is set but model.kind is ", word_of(config.model.kind),
              "; set model.kind: bts");
    return;
  }
  const std::string bad = "invalid config in " + where + ": model.kind = bts ";
  MOE_CHECK(!bts.seed.empty() && !bts.experts.empty(), bad,
            "needs bts.seed and at least one of bts.experts (checkpoint directories)");
  MOE_CHECK(p.tp == 1 && p.ep == 1 && p.zero == 0 && !p.expert_tp, bad,
            "runs each decoder whole on one rank: the ranks of a replica (world / parallel.dp) "
            "share the decoders, so parallel.tp, parallel.ep must be 1 and parallel.zero 0");
  MOE_CHECK(config.init.method == InitMethod::scratch, bad,
            "loads its decoders from bts.seed and bts.experts; init.method must be scratch");
  MOE_CHECK(config.model.mtp_depth == 0, bad,
            "has no multi-token prediction modules; set model.mtp_depth: 0");
  MOE_CHECK(config.train.device == DeviceType::cpu, bad,
            "trains on the CPU only for now; set train.device: cpu");
  MOE_CHECK(config.train.precision == Precision::f32, bad,
            "trains in f32 only for now (its frozen decoders and stitch layers have no bf16 path); "
            "set train.precision: f32");
}

}  // namespace moe
