// half_test.cpp: f16 and bf16 conversions against the hardware-independent definition.
//
// The reference is exact arithmetic in double: a 16-bit pattern's value is computed from its
// fields, and rounding picks the nearest representable value (ties to even) by comparing
// doubles, independently of the bit tricks in half.hpp.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>

#include "core/half.hpp"

namespace infllm {
namespace {

double f16_value(std::uint16_t bits) {
  const int sign = bits >> 15 ? -1 : 1;
  const int exp = (bits >> 10) & 0x1f;
  const int man = bits & 0x3ff;
  if (exp == 0x1f) return man ? std::numeric_limits<double>::quiet_NaN() : sign * INFINITY;
  if (exp == 0) return sign * std::ldexp(man, -24);
  return sign * std::ldexp(1024 + man, exp - 25);
}

double bf16_value(std::uint16_t bits) {
  return static_cast<double>(f32_from_bits(std::uint32_t{bits} << 16));
}

TEST(Half, EveryF16DecodesExactly) {
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const double want = f16_value(static_cast<std::uint16_t>(b));
    const float got = to_f32(f16{static_cast<std::uint16_t>(b)});
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << b;
    } else {
      ASSERT_EQ(static_cast<double>(got), want) << b;
    }
  }
}

TEST(Half, EveryFiniteF16RoundTrips) {
  for (std::uint32_t b = 0; b < 65536; ++b) {
    const f16 h{static_cast<std::uint16_t>(b)};
    if (std::isnan(to_f32(h))) continue;
    ASSERT_EQ(to_f16(to_f32(h)).bits, h.bits) << b;
  }
}

// Nearest representable value by brute force over the 16-bit patterns of the same sign.
template <typename Value>
std::uint16_t nearest(double x, Value value_of, double max_finite) {
  if (std::abs(x) > max_finite) {
    // Rounding of out-of-range values is checked separately.
    return 0;
  }
  std::uint16_t best = 0;
  double best_err = INFINITY;
  const std::uint32_t sign = std::signbit(x) ? 0x8000u : 0u;
  for (std::uint32_t m = 0; m < 0x7f80u; ++m) {
    const auto bits = static_cast<std::uint16_t>(sign | m);
    const double v = value_of(bits);
    if (!std::isfinite(v)) continue;
    const double err = std::abs(v - x);
    if (err < best_err || (err == best_err && (bits & 1u) == 0)) {
      best = bits;
      best_err = err;
    }
  }
  return best;
}

TEST(Half, RandomF32RoundsToNearestEven) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> exponent(-26.0, 15.9);
  for (int i = 0; i < 300; ++i) {
    SCOPED_TRACE(i);
    const double sign = (rng() & 1) ? -1.0 : 1.0;
    const float x = static_cast<float>(sign * std::exp2(exponent(rng)));
    EXPECT_EQ(to_f16(x).bits, nearest(x, f16_value, 65504.0)) << x;
    EXPECT_EQ(to_bf16(x).bits, nearest(x, bf16_value, 3.38e38)) << x;
  }
}

TEST(Half, TiesGoToEven) {
  // 1 + 2^-11 lies halfway between f16 1.0 and 1 + 2^-10: even mantissa (1.0) wins.
  EXPECT_EQ(to_f16(1.0f + std::ldexp(1.0f, -11)).bits, 0x3c00);
  EXPECT_EQ(to_f16(1.0f + 3 * std::ldexp(1.0f, -11)).bits, 0x3c02);
  EXPECT_EQ(to_bf16(1.0f + std::ldexp(1.0f, -8)).bits, 0x3f80);
}

TEST(Half, OverflowAndSpecials) {
  EXPECT_EQ(to_f16(65504.0f).bits, 0x7bff);
  EXPECT_EQ(to_f16(65520.0f).bits, 0x7c00);  // halfway to the next power: rounds to inf
  EXPECT_EQ(to_f16(-1e10f).bits, 0xfc00);
  EXPECT_TRUE(std::isnan(to_f32(to_f16(std::nanf("")))));
  EXPECT_TRUE(std::isnan(to_f32(to_bf16(std::nanf("")))));
  EXPECT_EQ(to_f16(-0.0f).bits, 0x8000);
  EXPECT_EQ(to_bf16(INFINITY).bits, 0x7f80);
}

}  // namespace
}  // namespace infllm
