// half.hpp: IEEE binary16 (f16) and bfloat16 (bf16) storage types with f32 conversion.
//
// KV blocks and model weights may be stored in 16-bit formats; all arithmetic happens in f32.
// The conversions are bit-exact and round to nearest even (as numpy, PyTorch and CUDA's
// __float2half_rn / __float2bfloat16_rn do), usable on host and device, with no compiler
// extension (_Float16) so every compiler and nvcc's host pass agree.
#pragma once

#include <cstdint>
#include <cstring>

#include "core/host_device.hpp"

namespace infllm {

struct f16 {
  std::uint16_t bits;
};
struct bf16 {
  std::uint16_t bits;
};

INFLLM_HD inline std::uint32_t f32_bits(float f) {
  std::uint32_t u;
  std::memcpy(&u, &f, sizeof(u));
  return u;
}

INFLLM_HD inline float f32_from_bits(std::uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof(f));
  return f;
}

INFLLM_HD inline float to_f32(bf16 h) { return f32_from_bits(std::uint32_t{h.bits} << 16); }

INFLLM_HD inline bf16 to_bf16(float f) {
  const std::uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return bf16{static_cast<std::uint16_t>((u >> 16) | 0x40)};
  // Round to nearest even on the 16 dropped bits.
  const std::uint32_t rounded = u + 0x7fffu + ((u >> 16) & 1u);
  return bf16{static_cast<std::uint16_t>(rounded >> 16)};
}

INFLLM_HD inline float to_f32(f16 h) {
  const std::uint32_t sign = std::uint32_t{h.bits & 0x8000u} << 16;
  const std::uint32_t exp = (h.bits >> 10) & 0x1fu;
  const std::uint32_t man = h.bits & 0x3ffu;
  if (exp == 0x1f) return f32_from_bits(sign | 0x7f800000u | (man << 13));  // inf, nan
  if (exp != 0) return f32_from_bits(sign | ((exp + 112) << 23) | (man << 13));
  if (man == 0) return f32_from_bits(sign);  // +-0
  // Subnormal: value = man * 2^-24, exact in f32.
  const float mag = static_cast<float>(man) * 5.9604644775390625e-8f;
  return sign ? -mag : mag;
}

INFLLM_HD inline f16 to_f16(float f) {
  const std::uint32_t u = f32_bits(f);
  const std::uint16_t sign = static_cast<std::uint16_t>((u >> 16) & 0x8000u);
  const std::uint32_t abs = u & 0x7fffffffu;
  if (abs > 0x7f800000u) return f16{static_cast<std::uint16_t>(sign | 0x7e00u)};   // nan
  if (abs >= 0x477ff000u) return f16{static_cast<std::uint16_t>(sign | 0x7c00u)};  // >= 65520: inf
  if (abs >= 0x38800000u) {  // normal in f16 (>= 2^-14)
    // Rebias exponent (127 -> 15) and round the 13 dropped mantissa bits to nearest even.
    const std::uint32_t v = abs - (112u << 23);
    const std::uint32_t rounded = v + 0xfffu + ((v >> 13) & 1u);
    return f16{static_cast<std::uint16_t>(sign | (rounded >> 13))};
  }
  if (abs < 0x33000000u) return f16{sign};  // below half the smallest subnormal: zero
  // Subnormal in f16: shift the full mantissa (with implicit 1) and round to nearest even.
  const std::uint32_t exp = abs >> 23;
  const std::uint32_t man = (abs & 0x7fffffu) | 0x800000u;
  const std::uint32_t shift = 126 - exp;  // 14..24
  const std::uint32_t half = 1u << (shift - 1);
  const std::uint32_t rest = man & ((1u << shift) - 1);
  std::uint32_t out = man >> shift;
  if (rest > half || (rest == half && (out & 1u))) ++out;
  return f16{static_cast<std::uint16_t>(sign | out)};
}

INFLLM_HD inline float to_f32(float f) { return f; }

}  // namespace infllm
