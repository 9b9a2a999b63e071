// Tensor, Shape and error formatting: views share storage, bad views are clear errors.
#include <gtest/gtest.h>

#include "core/tensor.h"

namespace moe {
namespace {

TEST(Tensor, EmptyIsAlignedAndSized) {
  Tensor t = Tensor::empty({3, 5}, DType::f32);
  EXPECT_EQ(t.numel(), 15);
  EXPECT_EQ(t.nbytes(), 60u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw()) % kHostAlignment, 0u);
  EXPECT_EQ(t.str(), "f32[3, 5] on cpu");
}

TEST(Tensor, NarrowAndViewShareStorage) {
  Tensor t = Tensor::from_vector<int32_t>({3, 2}, {0, 1, 2, 3, 4, 5});
  Tensor rows = t.narrow(1, 2);
  EXPECT_EQ(rows.shape(), Shape({2, 2}));
  EXPECT_EQ(rows.data<int32_t>()[0], 2);
  rows.data<int32_t>()[0] = 42;
  EXPECT_EQ(t.data<int32_t>()[2], 42);
  Tensor flat = t.view({6});
  EXPECT_TRUE(flat.shares_storage_with(t));
  EXPECT_EQ(flat.data<int32_t>()[2], 42);
  Tensor copy = t.clone();
  copy.data<int32_t>()[0] = -1;
  EXPECT_EQ(t.data<int32_t>()[0], 0);
}

TEST(Tensor, BadViewsAreInputErrorsWithShapes) {
  Tensor t = Tensor::zeros({3, 2}, DType::f32);
  try {
    t.view({4, 2});
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("view [4, 2] has 8 elements but the tensor f32[3, 2]"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(t.narrow(2, 2), InputError);
  EXPECT_THROW(t.narrow(-1, 1), InputError);
  EXPECT_THROW((Shape{1, 2, 3, 4, 5}), InputError);
  EXPECT_THROW((Shape{2, -1}), InputError);
}

TEST(Tensor, TypedAccessChecksTheDtype) {
  Tensor t = Tensor::zeros({2}, DType::f32);
  try {
    t.data<double>();
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("dtype f32 accessed as f64"), std::string::npos)
        << e.what();
  }
}

TEST(Tensor, ZeroSizedTensorsAreValid) {
  Tensor t = Tensor::empty({0, 4}, DType::f32);
  EXPECT_EQ(t.numel(), 0);
  EXPECT_EQ(t.narrow(0, 0).numel(), 0);
}

TEST(Shape, NegativeIndexCountsFromTheBack) {
  Shape s{2, 3, 4};
  EXPECT_EQ(s[-1], 4);
  EXPECT_EQ(s.with_dim(1, 7), Shape({2, 7, 4}));
  EXPECT_THROW(s[3], InputError);
}

TEST(Errors, MessagesCarryFileLineAndRank) {
  set_error_rank(3);
  try {
    MOE_CHECK(1 == 2, "value was ", 7);
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    const std::string msg = e.what();
    EXPECT_EQ(msg.rfind("[rank 3] core/test_tensor.cpp:", 0), 0u) << msg;
    EXPECT_NE(msg.find("value was 7"), std::string::npos) << msg;
  }
  set_error_rank(-1);
  EXPECT_THROW(MOE_ASSERT(false, "broken"), InternalError);
}

TEST(DType, NamesRoundTrip) {
  for (DType d : {DType::f32, DType::f64, DType::bf16, DType::f16, DType::i32, DType::i64})
    EXPECT_EQ(dtype_from_name(dtype_name(d)), d);
  EXPECT_THROW(dtype_from_name("fp8"), InputError);
}

}  // namespace
}  // namespace moe
