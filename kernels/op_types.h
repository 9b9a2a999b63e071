// Plain option types shared by the op API and its backends.
#pragma once

namespace moe::ops {

enum class RouterScore { softmax, sigmoid };
struct RouterTopkOptions {
  int k = 2;
  RouterScore score = RouterScore::softmax;
  bool renormalize = true;  // gate weights divided by their sum over the chosen k
  float scaling = 1.0f;     // routed scaling factor applied to the gate weights
  // Group-limited choice (DeepSeek-V3): the experts form `groups` equal groups of consecutive ids,
  // and only the `kept_groups` best groups (by the sum of their two best keys) compete.
  int groups = 1;
  int kept_groups = 1;
};

// Which assignments an over-capacity expert drops (moe_apply_capacity).
enum class DropPolicy { probs, position };

struct AdamWOptions {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.95f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // decoupled: param -= lr * weight_decay * param
};

}  // namespace moe::ops
