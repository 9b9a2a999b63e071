// Blend specs and the sample-to-dataset assignment.
#include <cmath>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "data/blend.h"
#include "tests/support/error_message.h"

namespace moe {
namespace {

using testing::input_error_message;
using testing::mentions;

TEST(Blend, ParsesPrefixesWithAndWithoutWeights) {
  const std::vector<BlendEntry> entries = parse_blend(" a/x 0.5, b 3e-1 ,c", "data.train");
  ASSERT_EQ(entries.size(), 3u);
  EXPECT_EQ(entries[0].prefix, "a/x");
  EXPECT_EQ(entries[0].weight, 0.5);
  EXPECT_EQ(entries[1].prefix, "b");
  EXPECT_EQ(entries[1].weight, 0.3);
  EXPECT_EQ(entries[2].prefix, "c");
  EXPECT_EQ(entries[2].weight, 1.0);
}

TEST(Blend, BadSpecsAreClearErrors) {
  auto error = [](const std::string& spec) {
    return input_error_message([&] { parse_blend(spec, "data.train"); });
  };
  EXPECT_TRUE(mentions(error("a -1"), "data.train: the weight '-1' of a is not a number >= 0"));
  EXPECT_TRUE(mentions(error("a half"), "the weight 'half' of a"));
  EXPECT_TRUE(mentions(error("a 0.5x"), "the weight '0.5x' of a"));
  EXPECT_TRUE(mentions(error("a 0, b 0"), "data.train: the weights sum to zero"));
  EXPECT_TRUE(mentions(error("a 1 2"), "'a 1 2' is not 'PREFIX' or 'PREFIX WEIGHT'"));
  EXPECT_TRUE(mentions(error("a, , b"), "' ' is not 'PREFIX' or 'PREFIX WEIGHT'"));
  EXPECT_TRUE(mentions(error(""), "data.train lists no dataset"));
}

// Over every prefix of the stream, each dataset's share is within one sample of its weight.
TEST(Blend, RealizedMixFollowsTheWeightsAtEveryPoint) {
  const std::vector<double> weights = {0.5, 0.3, 0.2};
  const BlendIndex index({5, 3, 2});  // unnormalized on purpose
  std::vector<int64_t> taken(3, 0);
  for (int64_t g = 0; g < 2000; ++g) {
    const auto [dataset, local] = index.locate(g);
    EXPECT_EQ(local, taken[dataset]) << "datasets are read in order, sample " << g;
    ++taken[dataset];
    for (int d = 0; d < 3; ++d)
      ASSERT_LE(std::abs(static_cast<double>(taken[d]) - weights[d] * (g + 1)), 1.0)
          << "dataset " << d << " after " << g + 1 << " samples";
  }
}

// Asking for samples in any order (a resumed run starts in the middle) gives the same assignment.
TEST(Blend, AssignmentDependsOnlyOnTheSampleIndex) {
  const BlendIndex in_order({0.7, 0.3}), backwards({0.7, 0.3});
  std::vector<std::pair<int, int64_t>> expected;
  for (int64_t g = 0; g < 300; ++g) expected.push_back(in_order.locate(g));
  for (int64_t g = 300; g-- > 0;) EXPECT_EQ(backwards.locate(g), expected[g]) << g;
  EXPECT_EQ(BlendIndex({0.0, 1.0}).locate(5), std::make_pair(1, int64_t{5}));
}

}  // namespace
}  // namespace moe
