// block_geometry_test.cpp: an rBlock's size and the K/V offsets tile it exactly.
#include <gtest/gtest.h>

#include <vector>

#include "core/block_geometry.hpp"
#include "core/errors.hpp"

namespace infllm {
namespace {

TEST(BlockGeometry, SizeIsTheDesignFormula) {
  // SmolLM2-135M: 30 layers, 3 kv heads, head_dim 64; 16 tokens in f16.
  const BlockGeometry g{16, 30, 3, 64, KvDtype::kF16};
  EXPECT_EQ(g.block_bytes(), 30u * 2 * 3 * 16 * 64 * 2);
}

TEST(BlockGeometry, HeadRunsTileTheBlockWithoutOverlap) {
  const BlockGeometry g{4, 3, 2, 8, KvDtype::kF32};
  std::vector<int> owner(g.block_bytes(), 0);
  const std::size_t run = g.head_elems() * g.elem_bytes();
  for (int l = 0; l < g.layers; ++l) {
    for (int h = 0; h < g.kv_heads; ++h) {
      for (std::size_t start : {g.k_offset(l, h), g.v_offset(l, h)}) {
        ASSERT_LE(start + run, g.block_bytes());
        for (std::size_t i = 0; i < run; ++i) ++owner[start + i];
      }
    }
  }
  for (int n : owner) ASSERT_EQ(n, 1);
  EXPECT_EQ(g.token_offset(3), 3u * 8 * 4);
}

TEST(BlockGeometry, DtypesAndValidation) {
  EXPECT_EQ(dtype_bytes(parse_kv_dtype("bf16")), 2u);
  EXPECT_STREQ(dtype_name(KvDtype::kF32), "f32");
  EXPECT_THROW(parse_kv_dtype("f8"), UsageError);
  EXPECT_THROW((BlockGeometry{0, 1, 1, 1, KvDtype::kF32}.validate()), InternalError);
}

}  // namespace
}  // namespace infllm
