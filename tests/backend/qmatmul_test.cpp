// qmatmul_test.cpp: activations times Q4_1 / Q8_0 weights kept in block form (CPU).
//
// The oracle is independent of the kernels: the weights are expanded by model::dequantize (the
// loader's path, itself checked against the gguf package) and y = x . W^T is summed in fp64.
// Blocks hold random f16 scales of both signs and random nibbles / int8 with fixed seeds; every
// kernel (portable, AVX2 where the CPU has it, auto) must agree to a relative error (max abs
// difference over max abs value) under 1e-5.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "backend/cpu/cpu_threads.hpp"
#include "backend/cpu/qmatmul.hpp"
#include "core/errors.hpp"
#include "core/half.hpp"
#include "model/formats/dequant.hpp"

namespace infllm::cpu {
namespace {

const char* type_name(QuantType t) { return t == QuantType::kQ4_1 ? "Q4_1" : "Q8_0"; }

model::GgmlType ggml_type(QuantType t) {
  return t == QuantType::kQ4_1 ? model::GgmlType::kQ4_1 : model::GgmlType::kQ8_0;
}

void put_f16(std::byte* p, float v) {
  const f16 h = to_f16(v);
  p[0] = static_cast<std::byte>(h.bits & 0xff);
  p[1] = static_cast<std::byte>(h.bits >> 8);
}

// Random blocks: d uniform in +-0.05 (so negative too), Q4_1's m in +-0.3, random quants. The
// bytes start `offset` bytes into the buffer (weights in a GGUF file need not be aligned).
std::vector<std::byte> random_matrix(QuantType t, std::int64_t rows, std::int64_t cols,
                                     std::uint32_t seed, std::size_t offset = 0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> scale(-0.05f, 0.05f), min(-0.3f, 0.3f);
  std::uniform_int_distribution<int> byte(0, 255);
  std::vector<std::byte> out(offset + quant_row_bytes(t, cols) * rows);
  std::byte* p = out.data() + offset;
  for (std::int64_t b = 0; b < rows * cols / 32; ++b) {
    put_f16(p, scale(rng));
    p += 2;
    if (t == QuantType::kQ4_1) {
      put_f16(p, min(rng));
      p += 2;
    }
    const int quants = t == QuantType::kQ4_1 ? 16 : 32;
    for (int j = 0; j < quants; ++j) *p++ = static_cast<std::byte>(byte(rng));
  }
  EXPECT_EQ(p, out.data() + out.size());
  return out;
}

std::vector<float> dequantized(QuantType t, std::span<const std::byte> bytes, std::int64_t rows,
                               std::int64_t cols) {
  std::vector<float> w(rows * cols);
  model::dequantize(ggml_type(t), bytes, w);
  return w;
}

std::vector<float> random_floats(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& f : v) f = u(rng);
  return v;
}

// y0 + x . W^T in fp64.
std::vector<double> reference(const std::vector<float>& x, const std::vector<float>& w,
                              const std::vector<float>& y0, std::size_t m, std::int64_t rows,
                              std::int64_t cols) {
  std::vector<double> y(m * rows);
  for (std::size_t r = 0; r < m; ++r) {
    for (std::int64_t i = 0; i < rows; ++i) {
      double s = y0.empty() ? 0.0 : y0[r * rows + i];
      for (std::int64_t k = 0; k < cols; ++k) {
        s += static_cast<double>(x[r * cols + k]) * static_cast<double>(w[i * cols + k]);
      }
      y[r * rows + i] = s;
    }
  }
  return y;
}

double relative_error(const std::vector<float>& got, const std::vector<double>& want) {
  double diff = 0.0, scale = 0.0;
  for (std::size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::abs(static_cast<double>(got[i]) - want[i]));
    scale = std::max(scale, std::abs(want[i]));
  }
  return scale > 0.0 ? diff / scale : diff;
}

std::vector<QmatKernel> kernels() {
  std::vector<QmatKernel> k = {QmatKernel::kPortable, QmatKernel::kAuto};
  if (qmat_kernel_supported(QmatKernel::kAvx2)) k.push_back(QmatKernel::kAvx2);
  return k;
}

const char* kernel_name(QmatKernel k) {
  switch (k) {
    case QmatKernel::kPortable:
      return "portable";
    case QmatKernel::kAvx2:
      return "avx2";
    default:
      return "auto";
  }
}

constexpr double kTolerance = 1e-5;

TEST(Qmatmul, RowBytes) {
  EXPECT_EQ(quant_row_bytes(QuantType::kQ4_1, 32), 20u);
  EXPECT_EQ(quant_row_bytes(QuantType::kQ4_1, 576), 360u);
  EXPECT_EQ(quant_row_bytes(QuantType::kQ8_0, 32), 34u);
  EXPECT_EQ(quant_row_bytes(QuantType::kQ8_0, 1536), 1632u);
  for (QuantType t : {QuantType::kQ4_1, QuantType::kQ8_0}) {
    EXPECT_EQ(quant_row_bytes(t, 576),
              model::ggml_row_bytes(ggml_type(t), 576));  // same geometry as the loader
  }
  EXPECT_THROW(quant_row_bytes(QuantType::kQ8_0, 33), InternalError);
  EXPECT_THROW(quant_row_bytes(QuantType::kQ4_1, -32), InternalError);
}

TEST(Qmatmul, MatchesDequantizedReference) {
  std::uint32_t seed = 1;
  for (QuantType t : {QuantType::kQ4_1, QuantType::kQ8_0}) {
    for (std::int64_t cols : {32, 576, 1536}) {
      for (std::int64_t rows : {1, 7, 64, 577}) {
        const std::vector<std::byte> bytes = random_matrix(t, rows, cols, ++seed);
        const std::vector<float> w = dequantized(t, bytes, rows, cols);
        const QuantMatrix mat{t, bytes.data(), rows, cols};
        // 1-4 rows: the block-sum form; 5-8: the wide form; 9 = 8 + 1 and 12 = 8 + 4 (block
        // sums of a later group), 13 = 8 + 5, 16 = 8 + 8, 27 = 3 * 8 + 3. 577 rows of 1536
        // columns make several 64 KiB pieces of weight rows.
        for (std::size_t m : {1u, 2u, 4u, 5u, 6u, 7u, 8u, 9u, 12u, 13u, 16u, 27u}) {
          const std::vector<float> x = random_floats(m * cols, ++seed);
          const std::vector<double> want = reference(x, w, {}, m, rows, cols);
          for (QmatKernel k : kernels()) {
            SCOPED_TRACE(std::string(type_name(t)) + " rows " + std::to_string(rows) + " cols " +
                         std::to_string(cols) + " m " + std::to_string(m) + " kernel " +
                         kernel_name(k));
            std::vector<float> y(m * rows, std::nanf(""));
            qmatmul(x.data(), mat, y.data(), m, false, k);
            EXPECT_LT(relative_error(y, want), kTolerance);
          }
        }
      }
    }
  }
}

TEST(Qmatmul, Accumulates) {
  std::uint32_t seed = 100;
  for (QuantType t : {QuantType::kQ4_1, QuantType::kQ8_0}) {
    for (std::int64_t rows : {7, 577}) {
      const std::int64_t cols = 576;
      const std::vector<std::byte> bytes = random_matrix(t, rows, cols, ++seed);
      const std::vector<float> w = dequantized(t, bytes, rows, cols);
      const QuantMatrix mat{t, bytes.data(), rows, cols};
      for (std::size_t m : {1u, 5u}) {
        const std::vector<float> x = random_floats(m * cols, ++seed);
        const std::vector<float> y0 = random_floats(m * rows, ++seed);
        const std::vector<double> want = reference(x, w, y0, m, rows, cols);
        for (QmatKernel k : kernels()) {
          SCOPED_TRACE(std::string(type_name(t)) + " rows " + std::to_string(rows) + " m " +
                       std::to_string(m) + " kernel " + kernel_name(k));
          std::vector<float> y = y0;
          qmatmul(x.data(), mat, y.data(), m, true, k);
          EXPECT_LT(relative_error(y, want), kTolerance);
        }
      }
    }
  }
}

// Unaligned weights, one thread and several threads give the same answer (to rounding: the
// work split does not change any output's summation order, so exactly the same).
TEST(Qmatmul, UnalignedAndThreadCounts) {
  const int saved = threads();
  for (QuantType t : {QuantType::kQ4_1, QuantType::kQ8_0}) {
    const std::int64_t rows = 577, cols = 1536;
    const std::vector<std::byte> bytes = random_matrix(t, rows, cols, 7, /*offset=*/3);
    const std::span<const std::byte> view(bytes.data() + 3, bytes.size() - 3);
    const std::vector<float> w = dequantized(t, view, rows, cols);
    const QuantMatrix mat{t, view.data(), rows, cols};
    const std::size_t m = 3;
    const std::vector<float> x = random_floats(m * cols, 8);
    const std::vector<double> want = reference(x, w, {}, m, rows, cols);
    for (QmatKernel k : kernels()) {
      SCOPED_TRACE(std::string(type_name(t)) + " kernel " + kernel_name(k));
      std::vector<float> y1(m * rows), y4(m * rows);
      set_threads(1);
      qmatmul(x.data(), mat, y1.data(), m, false, k);
      set_threads(4);
      qmatmul(x.data(), mat, y4.data(), m, false, k);
      set_threads(saved);
      EXPECT_LT(relative_error(y1, want), kTolerance);
      EXPECT_EQ(y1, y4);
    }
  }
}

TEST(Qmatmul, KernelsAgreeClosely) {
  if (!qmat_kernel_supported(QmatKernel::kAvx2)) GTEST_SKIP() << "no AVX2+FMA+F16C";
  EXPECT_STREQ(qmat_auto_kernel_name(), "avx2");
  for (QuantType t : {QuantType::kQ4_1, QuantType::kQ8_0}) {
    const std::int64_t rows = 64, cols = 576;
    const std::vector<std::byte> bytes = random_matrix(t, rows, cols, 11);
    const QuantMatrix mat{t, bytes.data(), rows, cols};
    const std::vector<float> x = random_floats(2 * cols, 12);
    std::vector<float> a(2 * rows), b(2 * rows);
    qmatmul(x.data(), mat, a.data(), 2, false, QmatKernel::kPortable);
    qmatmul(x.data(), mat, b.data(), 2, false, QmatKernel::kAvx2);
    for (std::size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-4) << i;
  }
}

TEST(Qmatmul, MisuseThrows) {
  const std::vector<std::byte> bytes = random_matrix(QuantType::kQ8_0, 4, 64, 3);
  const std::vector<float> x(64, 1.0f);
  std::vector<float> y(4);
  for (QmatKernel k : kernels()) {
    SCOPED_TRACE(kernel_name(k));
    QuantMatrix mat{QuantType::kQ8_0, bytes.data(), 4, 64};
    EXPECT_NO_THROW(qmatmul(x.data(), mat, y.data(), 1, false, k));
    EXPECT_THROW(qmatmul(nullptr, mat, y.data(), 1, false, k), InternalError);
    EXPECT_THROW(qmatmul(x.data(), mat, nullptr, 1, false, k), InternalError);
    QuantMatrix bad = mat;
    bad.data = nullptr;
    EXPECT_THROW(qmatmul(x.data(), bad, y.data(), 1, false, k), InternalError);
    bad = mat;
    bad.cols = 48;
    EXPECT_THROW(qmatmul(x.data(), bad, y.data(), 1, false, k), InternalError);
    bad.cols = 0;
    EXPECT_THROW(qmatmul(x.data(), bad, y.data(), 1, false, k), InternalError);
    bad = mat;
    bad.rows = -1;
    EXPECT_THROW(qmatmul(x.data(), bad, y.data(), 1, false, k), InternalError);
    bad = mat;
    bad.type = static_cast<QuantType>(7);
    EXPECT_THROW(qmatmul(x.data(), bad, y.data(), 1, false, k), InternalError);
    // No work: nothing is read or written, null buffers allowed.
    EXPECT_NO_THROW(qmatmul(nullptr, mat, nullptr, 0, false, k));
  }
  if (!qmat_kernel_supported(QmatKernel::kAvx2)) {
    QuantMatrix mat{QuantType::kQ8_0, bytes.data(), 4, 64};
    EXPECT_THROW(qmatmul(x.data(), mat, y.data(), 1, false, QmatKernel::kAvx2), InternalError);
  }
}

}  // namespace
}  // namespace infllm::cpu
