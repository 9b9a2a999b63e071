#include "layers/rope_frequencies.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace moe {
namespace {

// llama3: wavelengths shorter than original / high_freq_factor keep their frequency, longer than
// original / low_freq_factor are divided by factor; between, a linear blend in original /
// wavelength.
void scale_llama3(const RopeScaling& r, int original, std::vector<double>& inv_freq) {
  for (double& f : inv_freq) {
    const double wavelength = 2 * std::numbers::pi / f;
    if (wavelength < original / r.high_freq_factor) continue;
    if (wavelength > original / r.low_freq_factor) {
      f /= r.factor;
      continue;
    }
    const double s =
        (original / wavelength - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
    f = (1 - s) * f / r.factor + s * f;
  }
}

// yarn's m(f, c): 1 for f <= 1, else 0.1 c ln f + 1.
double yarn_mscale(double factor, double c) {
  return factor <= 1 ? 1.0 : 0.1 * c * std::log(factor) + 1.0;
}

// yarn: pair j is interpolated (divided by factor) above `high`, extrapolated (kept) below `low`,
// ramped linearly between; low and high are where a pair turns beta_fast and beta_slow times over
// the original context, rounded outwards and clamped to [0, dim - 1].
double scale_yarn(const RopeScaling& r, int original, double theta, int dim,
                  std::vector<double>& inv_freq) {
  const auto pair_of = [&](double rotations) {
    return dim * std::log(original / (2 * std::numbers::pi * rotations)) / (2 * std::log(theta));
  };
  const double low = std::max(std::floor(pair_of(r.beta_fast)), 0.0);
  double high = std::min(std::ceil(pair_of(r.beta_slow)), dim - 1.0);
  if (low == high) high += 0.001;
  for (size_t j = 0; j < inv_freq.size(); ++j) {
    const double ramp = std::clamp((static_cast<double>(j) - low) / (high - low), 0.0, 1.0);
    inv_freq[j] = inv_freq[j] / r.factor * ramp + inv_freq[j] * (1 - ramp);
  }
  if (r.attention_factor > 0) return r.attention_factor;
  if (r.mscale > 0 && r.mscale_all_dim > 0)
    return yarn_mscale(r.factor, r.mscale) / yarn_mscale(r.factor, r.mscale_all_dim);
  return yarn_mscale(r.factor, 1.0);
}

}  // namespace

RopeFrequencies rope_frequencies(const ModelConfig& model) {
  const int dim = model.rotary_dim();
  const RopeScaling& r = model.rope_scaling;
  const int original = r.effective_original_max_seq_len(model.max_seq_len);
  RopeFrequencies out;
  out.inv_freq.resize(static_cast<size_t>(dim / 2));
  for (size_t j = 0; j < out.inv_freq.size(); ++j)
    out.inv_freq[j] = std::pow(model.rope_theta, -2.0 * static_cast<double>(j) / dim);
  switch (r.type) {
    case RopeScalingType::none:
      break;
    case RopeScalingType::linear:
      for (double& f : out.inv_freq) f /= r.factor;
      break;
    case RopeScalingType::llama3:
      scale_llama3(r, original, out.inv_freq);
      break;
    case RopeScalingType::yarn:
      out.attention_factor = scale_yarn(r, original, model.rope_theta, dim, out.inv_freq);
      break;
  }
  return out;
}

double latent_softmax_factor(const RopeScaling& scaling) {
  if (scaling.type == RopeScalingType::none || scaling.mscale_all_dim <= 0) return 1.0;
  const double m = yarn_mscale(scaling.factor, scaling.mscale_all_dim);
  return m * m;
}

}  // namespace moe
