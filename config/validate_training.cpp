// Constraints of data.*, train.* and init.*.
#include "config/rules.h"
#include "config/validation.h"

namespace moe {

void validate_training(const Config& config, const std::string& where) {
  const TrainConfig& train = config.train;
  const InitConfig& init = config.init;
  MOE_CHECK(config.data.seq_len <= config.model.max_seq_len, "invalid config in ", where,
            ": data.seq_len = ", config.data.seq_len,
            " exceeds model.max_seq_len = ", config.model.max_seq_len);
  MOE_CHECK(train.min_lr <= train.lr, "invalid config in ", where,
            ": train.min_lr = ", format_number(train.min_lr),
            " exceeds train.lr = ", format_number(train.lr));
  MOE_CHECK(train.warmup_steps <= train.steps, "invalid config in ", where,
            ": train.warmup_steps = ", train.warmup_steps, " exceeds train.steps = ", train.steps);
  MOE_CHECK((init.method == InitMethod::scratch) == init.from.empty(), "invalid config in ", where,
            ": init.method = '", word_of(init.method), "' ",
            init.from.empty()
                ? "needs init.from (the dense checkpoint to upcycle)"
                : "does not read init.from = '" + init.from + "'; use another method or unset it");
}

}  // namespace moe
