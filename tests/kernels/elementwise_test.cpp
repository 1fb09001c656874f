// elementwise_test.cpp: the forward pass's row-wise kernels (kernels/elementwise.cu), run over the
// CUDA-on-CPU layer, against fp64 references written out here. Inputs are fresh random values
// with fixed seeds; outputs are poisoned (NaN) before each launch so an unwritten element fails.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/half.hpp"
#include "kernels/device_buffer.hpp"
#include "kernels/elementwise.cuh"

namespace infllm::kernels {
namespace {

using test::DeviceBuffer;

std::vector<float> random_values(std::size_t n, std::uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// |got - want| <= tol * (1 + |want|) for every element, reporting the first miss.
void expect_close(const std::vector<float>& got, const std::vector<double>& want, double tol) {
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i])) << "element " << i << " is " << got[i];
    ASSERT_LE(std::abs(got[i] - want[i]), tol * (1.0 + std::abs(want[i])))
        << "element " << i << ": " << got[i] << " vs " << want[i];
  }
}

TEST(ElementwiseKernels, GatherRowsReadsEachTableType) {
  const std::size_t vocab = 37, n = 45;
  const std::vector<float> table = random_values(vocab * n, 1);
  const std::vector<std::int32_t> rows = {3, 0, 36, 3, 17};
  for (ElemType type : {ElemType::kF32, ElemType::kF16, ElemType::kBF16}) {
    SCOPED_TRACE(static_cast<int>(type));
    // The table as stored, and its values as the kernel must read them back.
    std::vector<std::uint16_t> halfs(table.size());
    std::vector<double> stored(table.size());
    for (std::size_t i = 0; i < table.size(); ++i) {
      if (type == ElemType::kF16) {
        halfs[i] = to_f16(table[i]).bits;
        stored[i] = to_f32(f16{halfs[i]});
      } else if (type == ElemType::kBF16) {
        halfs[i] = to_bf16(table[i]).bits;
        stored[i] = to_f32(bf16{halfs[i]});
      } else {
        stored[i] = table[i];
      }
    }
    DeviceBuffer<float> t32(table);
    DeviceBuffer<std::uint16_t> t16(halfs);
    DeviceBuffer<std::int32_t> d_rows(rows);
    DeviceBuffer<float> y(rows.size() * n);
    y.poison();
    const void* t = type == ElemType::kF32 ? static_cast<const void*>(t32.get()) : t16.get();
    ASSERT_EQ(launch_gather_rows(t, type, d_rows.get(), rows.size(), n, y.get(), nullptr),
              cudaSuccess);
    std::vector<double> want(rows.size() * n);
    for (std::size_t r = 0; r < rows.size(); ++r) {
      for (std::size_t c = 0; c < n; ++c) want[r * n + c] = stored[rows[r] * n + c];
    }
    expect_close(y.download(), want, 0.0);
  }
}

TEST(ElementwiseKernels, RmsNormMatchesFp64InPlaceAndNot) {
  for (std::size_t dim : {7u, 64u, 576u}) {
    SCOPED_TRACE(dim);
    const std::size_t rows = 5;
    const std::vector<float> x = random_values(rows * dim, 2 + dim, 3.0f);
    const std::vector<float> gain = random_values(dim, 3);
    const float eps = 1e-5f;
    std::vector<double> want(rows * dim);
    for (std::size_t r = 0; r < rows; ++r) {
      double ss = 0.0;
      for (std::size_t i = 0; i < dim; ++i) ss += double(x[r * dim + i]) * x[r * dim + i];
      const double inv = 1.0 / std::sqrt(ss / dim + eps);
      for (std::size_t i = 0; i < dim; ++i) want[r * dim + i] = x[r * dim + i] * inv * gain[i];
    }
    DeviceBuffer<float> d_x(x), d_gain(gain), d_y(rows * dim);
    d_y.poison();
    ASSERT_EQ(launch_rms_norm(d_x.get(), d_gain.get(), d_y.get(), rows, dim, eps, nullptr),
              cudaSuccess);
    expect_close(d_y.download(), want, 2e-6);
    ASSERT_EQ(launch_rms_norm(d_x.get(), d_gain.get(), d_x.get(), rows, dim, eps, nullptr),
              cudaSuccess);
    expect_close(d_x.download(), want, 2e-6);
  }
}

TEST(ElementwiseKernels, RopeRotatesHalvesByPosition) {
  const std::size_t rows = 6;
  const int heads = 3, hd = 16;
  const std::vector<float> x = random_values(rows * heads * hd, 4);
  const std::vector<std::int64_t> pos = {0, 1, 7, 100, 4095, 131071};
  std::vector<float> inv_freq(hd / 2);
  for (int i = 0; i < hd / 2; ++i) inv_freq[i] = std::pow(10000.0f, -2.0f * i / hd);
  const float scale = 1.25f;
  std::vector<double> want(x.size());
  for (std::size_t r = 0; r < rows; ++r) {
    for (int h = 0; h < heads; ++h) {
      for (int i = 0; i < hd / 2; ++i) {
        // The angle is f32(position) * inv_freq in f32, as the reference implementation forms it.
        const double angle = static_cast<float>(pos[r]) * inv_freq[i];
        const double c = std::cos(angle) * scale, s = std::sin(angle) * scale;
        const std::size_t base = (r * heads + h) * hd;
        const double a = x[base + i], b = x[base + i + hd / 2];
        want[base + i] = a * c - b * s;
        want[base + i + hd / 2] = b * c + a * s;
      }
    }
  }
  DeviceBuffer<float> d_x(x), d_freq(inv_freq);
  DeviceBuffer<std::int64_t> d_pos(pos);
  ASSERT_EQ(launch_rope(d_x.get(), d_pos.get(), rows, heads, hd, d_freq.get(), scale, nullptr),
            cudaSuccess);
  expect_close(d_x.download(), want, 1e-5);
}

TEST(ElementwiseKernels, SiluMulAndBias) {
  const std::size_t rows = 3, n = 301;
  const std::vector<float> gate = random_values(rows * n, 5, 4.0f), up = random_values(rows * n, 6);
  const std::vector<float> bias = random_values(n, 7);
  std::vector<double> want(rows * n);
  for (std::size_t i = 0; i < want.size(); ++i) {
    const double g = gate[i];
    want[i] = g / (1.0 + std::exp(-g)) * up[i] + bias[i % n];
  }
  DeviceBuffer<float> d_gate(gate), d_up(up), d_bias(bias);
  ASSERT_EQ(launch_silu_mul(d_gate.get(), d_up.get(), rows * n, nullptr), cudaSuccess);
  ASSERT_EQ(launch_add_bias(d_gate.get(), d_bias.get(), rows, n, nullptr), cudaSuccess);
  expect_close(d_gate.download(), want, 1e-6);
}

TEST(ElementwiseKernels, ConvertRoundsToNearestEvenLikeTheHostConversions) {
  std::vector<float> x = random_values(1000, 8, 100.0f);
  // Ties and edges: halfway between two bf16 values, f16's largest, subnormals, infinity.
  x.insert(x.end(),
           {1.00390625f, 1.01171875f, 65504.0f, 65520.0f, 6e-8f, -3e-39f, INFINITY, -0.0f});
  DeviceBuffer<float> d_x(x);
  DeviceBuffer<std::uint16_t> y(x.size());
  for (ElemType type : {ElemType::kF16, ElemType::kBF16}) {
    y.poison();
    ASSERT_EQ(launch_convert(d_x.get(), y.get(), type, x.size(), nullptr), cudaSuccess);
    const std::vector<std::uint16_t> got = y.download();
    for (std::size_t i = 0; i < x.size(); ++i) {
      const std::uint16_t want = type == ElemType::kF16 ? to_f16(x[i]).bits : to_bf16(x[i]).bits;
      ASSERT_EQ(got[i], want) << "element " << i << " = " << x[i];
    }
  }
  DeviceBuffer<float> y32(x.size());
  y32.poison();
  ASSERT_EQ(launch_convert(d_x.get(), y32.get(), ElemType::kF32, x.size(), nullptr), cudaSuccess);
  const std::vector<float> got = y32.download();
  EXPECT_EQ(std::memcmp(got.data(), x.data(), x.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace infllm::kernels
