// dequant.cpp: block layouts of the ggml types and their f32 expansion (see dequant.hpp).
//
// Each block struct below is the byte layout of ggml-common.h; fields are read with memcpy-free
// byte indexing so no alignment or packing assumption is made. The arithmetic follows the order
// of the `gguf` package's numpy code ((d * scale) * q - (dmin * min)), which is also ggml's, so
// results agree bit for bit on IEEE f32 hardware without contraction into FMA.
#include "model/formats/dequant.hpp"

#include <array>
#include <cstring>

#include "core/errors.hpp"
#include "core/half.hpp"

namespace infllm::model {
namespace {

constexpr std::int64_t kQK = 32;    // elements per block of the legacy quants
constexpr std::int64_t kQKK = 256;  // elements per super-block of the K-quants

constexpr std::array<GgmlTypeInfo, 13> kTypes = {{
    {GgmlType::kF32, "F32", 1, 4},
    {GgmlType::kF16, "F16", 1, 2},
    {GgmlType::kQ4_0, "Q4_0", kQK, 2 + kQK / 2},
    {GgmlType::kQ4_1, "Q4_1", kQK, 4 + kQK / 2},
    {GgmlType::kQ5_0, "Q5_0", kQK, 2 + 4 + kQK / 2},
    {GgmlType::kQ5_1, "Q5_1", kQK, 4 + 4 + kQK / 2},
    {GgmlType::kQ8_0, "Q8_0", kQK, 2 + kQK},
    {GgmlType::kQ2_K, "Q2_K", kQKK, kQKK / 16 + kQKK / 4 + 4},
    {GgmlType::kQ3_K, "Q3_K", kQKK, kQKK / 8 + kQKK / 4 + 12 + 2},
    {GgmlType::kQ4_K, "Q4_K", kQKK, 4 + 12 + kQKK / 2},
    {GgmlType::kQ5_K, "Q5_K", kQKK, 4 + 12 + kQKK / 8 + kQKK / 2},
    {GgmlType::kQ6_K, "Q6_K", kQKK, kQKK / 2 + kQKK / 4 + kQKK / 16 + 2},
    {GgmlType::kBF16, "BF16", 1, 2},
}};

// Names of the ggml types infllm does not dequantize, for error messages (ggml.h order).
const char* unsupported_name(std::uint32_t id) {
  switch (id) {
    case 9:
      return "Q8_1";
    case 15:
      return "Q8_K";
    case 16:
      return "IQ2_XXS";
    case 17:
      return "IQ2_XS";
    case 18:
      return "IQ3_XXS";
    case 19:
      return "IQ1_S";
    case 20:
      return "IQ4_NL";
    case 21:
      return "IQ3_S";
    case 22:
      return "IQ2_S";
    case 23:
      return "IQ4_XS";
    case 24:
      return "I8";
    case 25:
      return "I16";
    case 26:
      return "I32";
    case 27:
      return "I64";
    case 28:
      return "F64";
    case 29:
      return "IQ1_M";
    case 34:
      return "TQ1_0";
    case 35:
      return "TQ2_0";
    case 39:
      return "MXFP4";
    default:
      return nullptr;
  }
}

using Byte = std::uint8_t;

float f16_at(const Byte* p) { return to_f32(f16{static_cast<std::uint16_t>(p[0] | (p[1] << 8))}); }

// 6-bit scale and min j (0..7) of a Q4_K/Q5_K super-block (ggml's get_scale_min_k4).
void scale_min_k4(int j, const Byte* q, int* scale, int* min) {
  if (j < 4) {
    *scale = q[j] & 63;
    *min = q[j + 4] & 63;
  } else {
    *scale = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
    *min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Block layouts: [d f16][qs 16]; value = d * (nibble - 8). Low nibbles are elements 0..15.
void q4_0(const Byte* b, float* y) {
  const float d = f16_at(b);
  const Byte* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>((qs[j] & 0xF) - 8);
    y[j + 16] = d * static_cast<float>((qs[j] >> 4) - 8);
  }
}

// [d f16][m f16][qs 16]; value = d * nibble + m.
void q4_1(const Byte* b, float* y) {
  const float d = f16_at(b), m = f16_at(b + 2);
  const Byte* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(qs[j] & 0xF) + m;
    y[j + 16] = d * static_cast<float>(qs[j] >> 4) + m;
  }
}

// [d f16][qh u32][qs 16]; 5-bit value = nibble | (bit j of qh) << 4, minus 16.
void q5_0(const Byte* b, float* y) {
  const float d = f16_at(b);
  const std::uint32_t qh = b[2] | (b[3] << 8) | (b[4] << 16) | (std::uint32_t{b[5]} << 24);
  const Byte* qs = b + 6;
  for (int j = 0; j < 16; ++j) {
    const int h0 = static_cast<int>((qh >> j) << 4) & 0x10;
    const int h1 = static_cast<int>(qh >> (j + 12)) & 0x10;
    y[j] = d * static_cast<float>(((qs[j] & 0xF) | h0) - 16);
    y[j + 16] = d * static_cast<float>(((qs[j] >> 4) | h1) - 16);
  }
}

// [d f16][m f16][qh u32][qs 16]; value = d * 5-bit + m.
void q5_1(const Byte* b, float* y) {
  const float d = f16_at(b), m = f16_at(b + 2);
  const std::uint32_t qh = b[4] | (b[5] << 8) | (b[6] << 16) | (std::uint32_t{b[7]} << 24);
  const Byte* qs = b + 8;
  for (int j = 0; j < 16; ++j) {
    const int h0 = static_cast<int>((qh >> j) << 4) & 0x10;
    const int h1 = static_cast<int>(qh >> (j + 12)) & 0x10;
    y[j] = d * static_cast<float>((qs[j] & 0xF) | h0) + m;
    y[j + 16] = d * static_cast<float>((qs[j] >> 4) | h1) + m;
  }
}

// [d f16][qs int8 32]; value = d * q.
void q8_0(const Byte* b, float* y) {
  const float d = f16_at(b);
  for (int j = 0; j < 32; ++j) y[j] = d * static_cast<float>(static_cast<std::int8_t>(b[2 + j]));
}

// [scales 16: low nibble scale, high nibble min][qs 64: 2-bit][d f16][dmin f16].
void q2_k(const Byte* b, float* y) {
  const Byte* scales = b;
  const Byte* q = b + 16;
  const float d = f16_at(b + 80), dmin = f16_at(b + 82);
  int is = 0;
  for (int n = 0; n < kQKK; n += 128) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int half = 0; half < 2; ++half) {
        const Byte sc = scales[is++];
        const float dl = d * static_cast<float>(sc & 0xF);
        const float ml = dmin * static_cast<float>(sc >> 4);
        for (int l = 0; l < 16; ++l) {
          *y++ = dl * static_cast<float>((q[l + 16 * half] >> shift) & 3) - ml;
        }
      }
    }
    q += 32;
  }
}

// [hmask 32][qs 64: low 2 bits][scales 12: 16 packed 6-bit scales][d f16]. The third bit comes
// from hmask (set = no offset, clear = minus 4); scales are stored biased by 32.
void q3_k(const Byte* b, float* y) {
  const Byte* hm = b;
  const Byte* q = b + 32;
  const float d = f16_at(b + 108);
  std::uint32_t aux[4];
  std::memcpy(aux, b + 96, 12);
  constexpr std::uint32_t kMask1 = 0x03030303, kMask2 = 0x0f0f0f0f;
  const std::uint32_t tmp = aux[2];
  aux[2] = ((aux[0] >> 4) & kMask2) | (((tmp >> 4) & kMask1) << 4);
  aux[3] = ((aux[1] >> 4) & kMask2) | (((tmp >> 6) & kMask1) << 4);
  aux[0] = (aux[0] & kMask2) | (((tmp >> 0) & kMask1) << 4);
  aux[1] = (aux[1] & kMask2) | (((tmp >> 2) & kMask1) << 4);
  std::int8_t scales[16];
  std::memcpy(scales, aux, 16);  // little-endian byte order, as ggml reads it
  int is = 0;
  Byte m = 1;
  for (int n = 0; n < kQKK; n += 128) {
    for (int shift = 0; shift < 8; shift += 2) {
      for (int half = 0; half < 2; ++half) {
        const float dl = d * static_cast<float>(scales[is++] - 32);
        for (int l = 16 * half; l < 16 * half + 16; ++l) {
          const int v = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
          *y++ = dl * static_cast<float>(v);
        }
      }
      m = static_cast<Byte>(m << 1);
    }
    q += 32;
  }
}

// [d f16][dmin f16][scales 12: 8 packed 6-bit scale/min pairs][qs 128]; 8 sub-blocks of 32.
void q4_k(const Byte* b, float* y) {
  const float d = f16_at(b), dmin = f16_at(b + 2);
  const Byte* scales = b + 4;
  const Byte* q = b + 16;
  for (int j = 0; j < 4; ++j) {  // 64 elements: low nibbles, then high nibbles of 32 bytes
    int sc = 0, mn = 0;
    scale_min_k4(2 * j, scales, &sc, &mn);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
    scale_min_k4(2 * j + 1, scales, &sc, &mn);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(mn);
    for (int l = 0; l < 32; ++l) *y++ = d1 * static_cast<float>(q[l] & 0xF) - m1;
    for (int l = 0; l < 32; ++l) *y++ = d2 * static_cast<float>(q[l] >> 4) - m2;
    q += 32;
  }
}

// As Q4_K with a fifth bit per element in qh: [d][dmin][scales 12][qh 32][qs 128].
void q5_k(const Byte* b, float* y) {
  const float d = f16_at(b), dmin = f16_at(b + 2);
  const Byte* scales = b + 4;
  const Byte* qh = b + 16;
  const Byte* q = b + 48;
  Byte u1 = 1, u2 = 2;
  for (int j = 0; j < 4; ++j) {
    int sc = 0, mn = 0;
    scale_min_k4(2 * j, scales, &sc, &mn);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
    scale_min_k4(2 * j + 1, scales, &sc, &mn);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(mn);
    for (int l = 0; l < 32; ++l) {
      *y++ = d1 * static_cast<float>((q[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
    }
    for (int l = 0; l < 32; ++l) {
      *y++ = d2 * static_cast<float>((q[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
    }
    q += 32;
    u1 = static_cast<Byte>(u1 << 2);
    u2 = static_cast<Byte>(u2 << 2);
  }
}

// [ql 128: low 4 bits][qh 64: high 2 bits][scales int8 16][d f16]; value = (d * scale) * (q-32).
void q6_k(const Byte* b, float* y) {
  const Byte* ql = b;
  const Byte* qh = b + 128;
  const auto* sc = reinterpret_cast<const std::int8_t*>(b + 192);
  const float d = f16_at(b + 208);
  for (int n = 0; n < kQKK; n += 128) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = (d * static_cast<float>(sc[is])) * static_cast<float>(q1);
      y[l + 32] = (d * static_cast<float>(sc[is + 2])) * static_cast<float>(q2);
      y[l + 64] = (d * static_cast<float>(sc[is + 4])) * static_cast<float>(q3);
      y[l + 96] = (d * static_cast<float>(sc[is + 6])) * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

}  // namespace

std::optional<GgmlTypeInfo> ggml_type_info(std::uint32_t type_id) {
  for (const auto& t : kTypes) {
    if (static_cast<std::uint32_t>(t.type) == type_id) return t;
  }
  return std::nullopt;
}

std::string ggml_type_name(std::uint32_t type_id) {
  if (const auto t = ggml_type_info(type_id)) return t->name;
  if (const char* name = unsupported_name(type_id)) return name;
  return "type " + std::to_string(type_id);
}

std::uint64_t ggml_row_bytes(GgmlType type, std::int64_t elems) {
  const auto info = ggml_type_info(static_cast<std::uint32_t>(type));
  if (!info || elems < 0 || elems % info->block_elems != 0) {
    throw InternalError("ggml_row_bytes: " + std::to_string(elems) +
                        " elements are not whole blocks of " +
                        ggml_type_name(static_cast<std::uint32_t>(type)));
  }
  return static_cast<std::uint64_t>(elems / info->block_elems * info->block_bytes);
}

void dequantize(GgmlType type, std::span<const std::byte> src, std::span<float> dst) {
  const auto n = static_cast<std::int64_t>(dst.size());
  if (ggml_row_bytes(type, n) != src.size()) {
    throw InternalError("dequantize: " + std::to_string(src.size()) + " bytes do not hold " +
                        std::to_string(n) + " elements of " +
                        ggml_type_name(static_cast<std::uint32_t>(type)));
  }
  if (n == 0) return;  // an empty tensor: its spans may hold null pointers
  const auto* s = reinterpret_cast<const Byte*>(src.data());
  float* y = dst.data();
  const auto info = *ggml_type_info(static_cast<std::uint32_t>(type));
  const std::int64_t blocks = n / info.block_elems;
  void (*block_fn)(const Byte*, float*) = nullptr;
  switch (type) {
    case GgmlType::kF32:
      std::memcpy(y, s, src.size());
      return;
    case GgmlType::kF16:
      for (std::int64_t i = 0; i < n; ++i) y[i] = f16_at(s + 2 * i);
      return;
    case GgmlType::kBF16:
      for (std::int64_t i = 0; i < n; ++i) {
        y[i] = to_f32(bf16{static_cast<std::uint16_t>(s[2 * i] | (s[2 * i + 1] << 8))});
      }
      return;
    case GgmlType::kQ4_0:
      block_fn = q4_0;
      break;
    case GgmlType::kQ4_1:
      block_fn = q4_1;
      break;
    case GgmlType::kQ5_0:
      block_fn = q5_0;
      break;
    case GgmlType::kQ5_1:
      block_fn = q5_1;
      break;
    case GgmlType::kQ8_0:
      block_fn = q8_0;
      break;
    case GgmlType::kQ2_K:
      block_fn = q2_k;
      break;
    case GgmlType::kQ3_K:
      block_fn = q3_k;
      break;
    case GgmlType::kQ4_K:
      block_fn = q4_k;
      break;
    case GgmlType::kQ5_K:
      block_fn = q5_k;
      break;
    case GgmlType::kQ6_K:
      block_fn = q6_k;
      break;
  }
  for (std::int64_t i = 0; i < blocks; ++i) {
    block_fn(s + i * info.block_bytes, y + i * info.block_elems);
  }
}

}  // namespace infllm::model
