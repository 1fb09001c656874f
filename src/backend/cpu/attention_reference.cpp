// attention_reference.cpp: the straightforward MA kernel (MaKernel::kReference).
//
// One thread, one (query token, query head) at a time: every visible key's score in double, the
// max, the weights, the weighted sum of V. No tiling, no online softmax, no SIMD: the yardstick
// the fast kernels are tested against, on the same (rounded) K and V values.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backend/cpu/attention_reference.hpp"
#include "core/attention_state.hpp"
#include "core/half.hpp"

namespace infllm::cpu::detail {

namespace {

float load_kv(const std::byte* p, KvDtype dtype) {
  switch (dtype) {
    case KvDtype::kF16: {
      f16 h;
      std::memcpy(&h, p, 2);
      return to_f32(h);
    }
    case KvDtype::kBF16: {
      bf16 h;
      std::memcpy(&h, p, 2);
      return to_f32(h);
    }
    case KvDtype::kF32:
      break;
  }
  float f;
  std::memcpy(&f, p, 4);
  return f;
}

}  // namespace

void reference_micro_attention(const KvPool& pool, const MaParams& params, const MaQuery& query,
                               const MaOutput& out) {
  const BlockGeometry& g = pool.geometry;
  const int hd = g.head_dim;
  const int group = params.q_heads / g.kv_heads;
  const std::size_t eb = g.elem_bytes();
  std::vector<double> x;  // (visible keys) scores, log2 units
  std::vector<double> o(static_cast<std::size_t>(hd));
  for (int i = 0; i < query.n_tokens; ++i) {
    const std::int64_t pos = query.first_pos + i;
    for (int qh = 0; qh < params.q_heads; ++qh) {
      const int kvh = qh / group;
      const float* q = query.q + (static_cast<std::size_t>(i) * params.q_heads + qh) * hd;
      const std::size_t row = static_cast<std::size_t>(i) * params.q_heads + qh;
      // Pass 1: scores of the visible keys.
      x.clear();
      for (const KvBlock& b : query.blocks) {
        const std::byte* k = pool.base +
                             static_cast<std::size_t>(b.slot.value()) * pool.slot_bytes +
                             g.k_offset(params.layer, kvh);
        for (int t = 0; t < b.tokens && b.first_pos + t <= pos; ++t) {
          double dot = 0.0;
          for (int d = 0; d < hd; ++d) {
            dot += static_cast<double>(q[d]) * load_kv(k + g.token_offset(t) + d * eb, g.dtype);
          }
          x.push_back(dot * params.scale * static_cast<double>(kLog2e));
        }
      }
      // Pass 2: weights and the weighted sum of V, visiting keys in the same order.
      const double m = x.empty() ? -INFINITY : *std::max_element(x.begin(), x.end());
      double l = 0.0;
      std::fill(o.begin(), o.end(), 0.0);
      std::size_t j = 0;
      for (const KvBlock& b : query.blocks) {
        const std::byte* v = pool.base +
                             static_cast<std::size_t>(b.slot.value()) * pool.slot_bytes +
                             g.v_offset(params.layer, kvh);
        for (int t = 0; t < b.tokens && b.first_pos + t <= pos; ++t, ++j) {
          const double p = std::exp2(x[j] - m);
          l += p;
          for (int d = 0; d < hd; ++d) o[d] += p * load_kv(v + g.token_offset(t) + d * eb, g.dtype);
        }
      }
      float* out_o = out.o + row * hd;
      for (int d = 0; d < hd; ++d) {
        out_o[d] = params.result == MaResult::kNormalized
                       ? (l > 0.0 ? static_cast<float>(o[d] / l) : 0.0f)
                       : static_cast<float>(o[d]);
      }
      if (out.m != nullptr) out.m[row] = static_cast<float>(m);
      if (out.l != nullptr) out.l[row] = static_cast<float>(l);
    }
  }
}

}  // namespace infllm::cpu::detail
