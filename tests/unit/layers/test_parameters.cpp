// The parameter store's placements: a block of a split parameter starts with exactly the values
// of the same block of the unsplit parameter (so every layout initializes the same model), the
// arena is grouped by (parameter group, TP mode) for the gradient collectives, a placement by a
// list of rows (FSSDP owners) holds exactly those rows of the unsplit parameter, and bad splits
// and row lists are caught.
#include <gtest/gtest.h>

#include "kernels/ops.h"
#include "layers/parameters.h"

namespace moe {
namespace {

TEST(ParameterStore, ABlockStartsWithTheUnsplitParametersValues) {
  ParameterStore whole;
  whole.add("w", {4, 6, 3}, Init::normal, 0.5, true);
  whole.allocate(7);
  const Tensor& all = whole.find("w").value;
  for (int ep = 0; ep < 2; ++ep)
    for (int tp = 0; tp < 3; ++tp) {
      ParameterStore part;
      part.add("w", {4, 6, 3}, Init::normal, 0.5, true,
               {ParamGroup::expert, TpMode::split, {{0, ep, 2}, {1, tp, 3}}});
      part.allocate(7);
      const Parameter& p = part.find("w");
      ASSERT_EQ(p.shape, (Shape{2, 2, 3}));
      EXPECT_EQ(p.offset, (std::vector<int64_t>{2 * ep, 2 * tp, 0}));
      EXPECT_EQ(p.global_shape, (Shape{4, 6, 3}));
      for (int64_t e = 0; e < 2; ++e)
        for (int64_t f = 0; f < 2; ++f)
          for (int64_t d = 0; d < 3; ++d)
            EXPECT_EQ(p.value.data<float>()[(e * 2 + f) * 3 + d],
                      all.data<float>()[((2 * ep + e) * 6 + 2 * tp + f) * 3 + d])
                << "block ep " << ep << " tp " << tp << " at " << e << "," << f << "," << d;
    }
}

TEST(ParameterStore, ARowListHoldsThoseRowsOfTheUnsplitParameter) {
  ParameterStore whole;
  whole.add("w", {6, 2, 3}, Init::normal, 0.5, true);
  whole.allocate(3);
  const Tensor& all = whole.find("w").value;
  ParameterStore part;
  const std::vector<int64_t> rows{0, 3, 4};
  Parameter& p = part.add("w", {6, 2, 3}, Init::normal, 0.5, true,
                          {ParamGroup::expert, TpMode::partial, {{1, 1, 2}}, rows});
  Parameter& none = part.add("v", {6, 2}, Init::normal, 0.5, true,
                             {ParamGroup::expert, TpMode::partial, {}, std::vector<int64_t>{}});
  part.allocate(3);
  ASSERT_EQ(p.shape, (Shape{3, 1, 3}));
  EXPECT_EQ(none.shape, (Shape{0, 2}));
  for (int64_t r = 0; r < 3; ++r)
    for (int64_t d = 0; d < 3; ++d)
      EXPECT_EQ(p.value.data<float>()[r * 3 + d], all.data<float>()[(rows[r] * 2 + 1) * 3 + d])
          << "row " << r << " at " << d;
  const std::vector<Piece> list = pieces(p);
  ASSERT_EQ(list.size(), 2u);
  EXPECT_EQ(list[0].row, 0);
  EXPECT_EQ(list[0].rows, 1);
  EXPECT_EQ(list[0].offset, (std::vector<int64_t>{0, 1, 0}));
  EXPECT_EQ(list[1].row, 1);
  EXPECT_EQ(list[1].rows, 2);
  EXPECT_EQ(list[1].offset, (std::vector<int64_t>{3, 1, 0}));
  EXPECT_TRUE(pieces(none).empty());
}

TEST(ParameterStore, BadRowListsAreInternalErrors) {
  for (const std::vector<int64_t>& rows :
       {std::vector<int64_t>{2, 1}, std::vector<int64_t>{1, 1}, std::vector<int64_t>{4}}) {
    ParameterStore store;
    EXPECT_THROW(store.add("w", {4, 2}, Init::normal, 1, true,
                           {ParamGroup::expert, TpMode::partial, {}, rows}),
                 InternalError);
  }
  ParameterStore store;
  EXPECT_THROW(
      store.add("w", {4, 2}, Init::normal, 1, true,
                {ParamGroup::expert, TpMode::partial, {{0, 0, 2}}, std::vector<int64_t>{1}}),
      InternalError);
}

TEST(ParameterStore, ArenaIsGroupedByParameterGroupThenTpMode) {
  ParameterStore store;
  Parameter& expert = store.add("expert", {4, 2}, Init::normal, 1, true,
                                {ParamGroup::expert, TpMode::partial, {{0, 1, 2}}});
  Parameter& norm = store.add("norm", {3}, Init::ones, 0, false);
  Parameter& split = store.add("split", {2, 5}, Init::normal, 1, true,
                               {ParamGroup::dense, TpMode::split, {{1, 0, 5}}});
  store.allocate(1);
  EXPECT_EQ(store.numel(), 4 + 3 + 2);
  EXPECT_EQ(norm.arena_offset, 0);
  EXPECT_EQ(split.arena_offset, 3);
  EXPECT_EQ(expert.arena_offset, 5);
  EXPECT_EQ(store.range(ParamGroup::dense).begin, 0);
  EXPECT_EQ(store.range(ParamGroup::dense).end, 5);
  EXPECT_EQ(store.range(ParamGroup::dense, TpMode::split).begin, 3);
  EXPECT_EQ(store.range(ParamGroup::dense, TpMode::partial).size(), 0);
  EXPECT_EQ(store.range(ParamGroup::expert).begin, 5);
  EXPECT_EQ(store.range(ParamGroup::expert, TpMode::partial).end, 9);
  EXPECT_TRUE(expert.value.shares_storage_with(store.values()));
}

TEST(ParameterStore, GlobalIndexMapsABlockElementIntoTheGlobalTensor) {
  // Element (1, 2) of a [2, 3] block at offset (4, 3) of a [6, 8] tensor is (5, 5) = 45.
  EXPECT_EQ(global_index({2, 3}, {4, 3}, {6, 8}, 1 * 3 + 2), 45);
  EXPECT_EQ(global_index({2, 3}, {0, 0}, {2, 3}, 4), 4);
}

TEST(ParameterStore, ASplitThatDoesNotDivideIsAnInternalError) {
  ParameterStore store;
  EXPECT_THROW(store.add("w", {5, 2}, Init::normal, 1, true,
                         {ParamGroup::dense, TpMode::split, {{0, 0, 2}}}),
               InternalError);
}

}  // namespace
}  // namespace moe

namespace moe {
namespace {

std::vector<float> as_floats(const Tensor& bf16) {
  Tensor wide = Tensor::empty(bf16.shape(), DType::f32);
  Stream stream;
  ops::convert(bf16, wide, stream);
  return wide.to_vector<float>();
}

// bf16 compute copies: one bf16 arena beside the f32 values, rounded to nearest even by
// refresh_compute(), laid out again with the values (FSSDP row moves); a snapshot has none.
TEST(ParameterStore, Bf16ComputeCopiesFollowTheValuesRoundedToNearestEven) {
  ParameterStore store;
  store.set_compute_dtype(DType::bf16);
  Parameter& w = store.add("w", {3}, Init::zeros, 0.0, true);
  Parameter& e = store.add("e", {4, 1}, Init::ones, 0.0, true,
                           {ParamGroup::expert, TpMode::partial, {}, std::vector<int64_t>{0, 2}});
  store.allocate(1);
  ASSERT_EQ(w.compute.dtype(), DType::bf16);
  EXPECT_EQ(as_floats(e.compute), (std::vector<float>{1, 1}));
  // bf16 keeps 7 fraction bits: 1 + 2^-8 is halfway between 1 and 1 + 2^-7 (ties go to the even
  // 1), 1 + 3 * 2^-8 halfway between 1 + 2^-7 and 1 + 2^-6 (even: 1 + 2^-6), and anything above
  // halfway goes up.
  const std::vector<float> values{1 + 0x1p-8f, 1 + 3 * 0x1p-8f, 1 + 0x1p-8f + 0x1p-20f};
  std::copy(values.begin(), values.end(), w.value.data<float>());
  EXPECT_EQ(as_floats(w.compute), (std::vector<float>{0, 0, 0})) << "refreshed too early";
  Stream stream;
  store.refresh_compute(stream);
  EXPECT_EQ(as_floats(w.compute), (std::vector<float>{1, 1 + 0x1p-6f, 1 + 0x1p-7f}));

  store.set_rows({{&e, {1, 3}}});
  e.value.data<float>()[0] = 2;
  e.value.data<float>()[1] = 3;
  store.refresh_compute(stream);
  EXPECT_EQ(as_floats(e.compute), (std::vector<float>{2, 3}));
  const std::unique_ptr<ParameterStore> copy = store.snapshot();
  EXPECT_EQ(copy->find("w").compute.raw(), copy->find("w").value.raw());
}

TEST(ParameterStore, ComputeCopiesAreF32ToBf16Only) {
  ParameterStore wide(DType::f64);
  EXPECT_THROW(wide.set_compute_dtype(DType::bf16), InputError);
  ParameterStore store;
  store.add("w", {2}, Init::ones, 0.0, true);
  store.allocate(1);
  EXPECT_EQ(store.find("w").compute.raw(), store.find("w").value.raw()) << "f32 computes in place";
}

}  // namespace
}  // namespace moe
