// reorder_rope_rows (checkpoint/hf_rope_rows.h) against what it is for: a query head and the shared
// RoPE key of DeepSeek's weights, rotated in interleaved pairs (2j, 2j+1) as transformers does with
// rope_interleave, give the same q.k as the reordered weights rotated in MoEForge's rotate-half
// pairs (j, j + dim/2); the rows without RoPE are untouched, and reordering back restores every
// bit.
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "checkpoint/hf_rope_rows.h"

namespace moe {
namespace {

// y = W x for a row-major [rows, cols] W, in double.
std::vector<double> product(const std::vector<float>& w, const std::vector<float>& x) {
  const size_t cols = x.size(), rows = w.size() / cols;
  std::vector<double> y(rows, 0.0);
  for (size_t r = 0; r < rows; ++r)
    for (size_t c = 0; c < cols; ++c) y[r] += double{w[r * cols + c]} * x[c];
  return y;
}

// Rotates y[begin, begin + dim) by angle (j + 1) * position for pair j, the pairs being
// (2j, 2j + 1) or (j, j + dim/2).
void rotate(std::vector<double>& y, size_t begin, size_t dim, double position, bool interleaved) {
  for (size_t j = 0; j < dim / 2; ++j) {
    const size_t a = begin + (interleaved ? 2 * j : j);
    const size_t b = begin + (interleaved ? 2 * j + 1 : j + dim / 2);
    const double angle = (j + 1) * position, ya = y[a], yb = y[b];
    y[a] = ya * std::cos(angle) - yb * std::sin(angle);
    y[b] = yb * std::cos(angle) + ya * std::sin(angle);
  }
}

std::vector<float> random_values(size_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::vector<float> v(n);
  for (float& x : v) x = normal(rng);
  return v;
}

TEST(HfRopeRows, ReorderedWeightsGiveTheSameScoresWithRotateHalf) {
  // 3 query heads of 6 dims without RoPE and 8 with; a key latent of 5 and the RoPE key of 8
  const int64_t nope = 6, dim = 8, heads = 3, latent = 5, cols = 7;
  const RopeRows query{nope + dim, nope, dim}, key{latent + dim, latent, dim};
  std::mt19937 rng(3);
  const std::vector<float> wq = random_values(heads * (nope + dim) * cols, rng);
  const std::vector<float> wk = random_values((latent + dim) * cols, rng);
  const std::vector<float> xq = random_values(cols, rng), xk = random_values(cols, rng);
  std::vector<float> wq_ours = wq, wk_ours = wk;
  reorder_rope_rows(wq_ours.data(), heads * (nope + dim), cols, query, false);
  reorder_rope_rows(wk_ours.data(), latent + dim, cols, key, false);

  std::vector<double> k = product(wk, xk), k_ours = product(wk_ours, xk);
  rotate(k, latent, dim, 5.0, true);
  rotate(k_ours, latent, dim, 5.0, false);
  std::vector<double> q = product(wq, xq), q_ours = product(wq_ours, xq);
  for (int64_t h = 0; h < heads; ++h) {
    rotate(q, h * (nope + dim) + nope, dim, 2.0, true);
    rotate(q_ours, h * (nope + dim) + nope, dim, 2.0, false);
    double score = 0, score_ours = 0;
    for (int64_t i = 0; i < dim; ++i) {
      score += q[h * (nope + dim) + nope + i] * k[latent + i];
      score_ours += q_ours[h * (nope + dim) + nope + i] * k_ours[latent + i];
    }
    EXPECT_NEAR(score_ours, score, 1e-12 * (1 + std::abs(score))) << "head " << h;
    for (int64_t i = 0; i < nope; ++i)
      EXPECT_EQ(q_ours[h * (nope + dim) + i], q[h * (nope + dim) + i]) << "head " << h;
  }
  for (int64_t i = 0; i < latent; ++i) EXPECT_EQ(k_ours[i], k[i]);
}

TEST(HfRopeRows, ReorderingBackRestoresEveryBit) {
  const RopeRows rows{12, 4, 8};
  std::mt19937 rng(5);
  const std::vector<float> original = random_values(2 * 12 * 3, rng);
  std::vector<float> w = original;
  reorder_rope_rows(w.data(), 24, 3, rows, false);
  EXPECT_NE(std::memcmp(w.data(), original.data(), w.size() * sizeof(float)), 0);
  reorder_rope_rows(w.data(), 24, 3, rows, true);
  EXPECT_EQ(std::memcmp(w.data(), original.data(), w.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace moe
