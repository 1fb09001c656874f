// blas_test.cpp: the OpenBLAS GEMM wrapper against an fp64 reference, with threads set.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "backend/cpu/blas.hpp"
#include "backend/cpu/cpu_threads.hpp"

namespace infllm::cpu {
namespace {

struct Shape {
  std::size_t m, n, k;
};

class MatmulWt : public ::testing::TestWithParam<Shape> {};

TEST_P(MatmulWt, MatchesFp64Reference) {
  const auto [m, n, k] = GetParam();
  std::mt19937 rng(1234);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> x(m * k), w(n * k), y(m * n, 7.0f);
  for (auto& v : x) v = dist(rng);
  for (auto& v : w) v = dist(rng);
  set_threads(2);
  matmul_wt(x.data(), w.data(), y.data(), m, n, k);
  for (std::size_t i = 0; i < m; ++i) {
    for (std::size_t j = 0; j < n; ++j) {
      double ref = 0.0, mag = 0.0;
      for (std::size_t p = 0; p < k; ++p) {
        ref += double(x[i * k + p]) * double(w[j * k + p]);
        mag += std::abs(double(x[i * k + p]) * double(w[j * k + p]));
      }
      ASSERT_NEAR(y[i * n + j], ref, 1e-6 * mag + 1e-6) << "at (" << i << "," << j << ")";
    }
  }
}

TEST(MatmulWtBeta, AccumulatesWithBetaOne) {
  std::vector<float> x = {1, 2}, w = {3, 4, 5, 6}, y = {10, 20};
  matmul_wt(x.data(), w.data(), y.data(), 1, 2, 2, 1.0f);
  EXPECT_FLOAT_EQ(y[0], 10 + 1 * 3 + 2 * 4);
  EXPECT_FLOAT_EQ(y[1], 20 + 1 * 5 + 2 * 6);
}

TEST(CpuThreads, DefaultSplitsCoresAmongRanks) {
  EXPECT_GE(default_threads_per_rank(1), 1);
  EXPECT_EQ(default_threads_per_rank(1 << 20), 1);
  EXPECT_EQ(default_threads_per_rank(1), available_cores());
  set_threads(1);
  EXPECT_EQ(threads(), 1);
}

INSTANTIATE_TEST_SUITE_P(Shapes, MatmulWt,
                         ::testing::Values(Shape{1, 1, 1}, Shape{1, 64, 128}, Shape{7, 33, 65},
                                           Shape{64, 96, 128}),
                         [](const auto& info) {
                           std::string name = "m";
                           name += std::to_string(info.param.m) + "n";
                           name += std::to_string(info.param.n) + "k";
                           return name + std::to_string(info.param.k);
                         });

}  // namespace
}  // namespace infllm::cpu
