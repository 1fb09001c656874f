// attention_state.hpp: the partial attention state (o, m, l) and its exact merge.
//
// Micro-attention over a subset of a request's KV blocks returns, per query head, a partial
// state; partial states of disjoint subsets merge (log-sum-exp rescaling) into exactly the state
// of their union, up to rounding. This header is the one place that math lives (STYLE.md: one
// merge, one place): the CPU kernels, the distributed merge and the CUDA kernels all call it, so
// it is C++17, header-only and INFLLM_HD.
//
// NOTE: the log-sum-exp base is 2, everywhere in infllm. A score s (= q.k * softmax_scale) enters
// the state as x = s * log2(e) (kernels fold kLog2e into the query scale), and
//   m = max_j x_j                       running max, in log2 units
//   l = sum_j 2^(x_j - m)               sum of exponentials relative to m
//   o = sum_j 2^(x_j - m) * v_j         unnormalised output, head_dim floats
// so softmax(s) @ V = o / l and the natural log-sum-exp of the scores is (m + log2 l) / log2(e).
// Base 2 because exp2 is the cheap instruction on GPUs and costs the same as exp on CPUs.
//
// The empty state (no key seen: an empty partition, or every key masked) is
// m = -inf, l = 0, o = 0. It is the identity of merge.
#pragma once

#include <math.h>  // exp2f, fmaxf, log2f, INFINITY: usable on host and device alike

#include "core/host_device.hpp"

namespace infllm {

// log2(e): a natural-base score s is s * kLog2e in the base-2 state.
inline constexpr float kLog2e = 1.44269504088896340736f;

// How to bring two states with maxima m_a and m_b onto their common max m.
struct MergeScales {
  float m;        // max(m_a, m_b)
  float scale_a;  // 2^(m_a - m): multiply l_a and o_a by it
  float scale_b;  // 2^(m_b - m): multiply l_b and o_b by it
};

// The factor 2^(m_part - m) that brings a partition with max m_part onto a set whose max is
// m >= m_part. An empty partition gets exp2(-inf - m) = 0. When the whole set is empty,
// m = -inf and m_part - m would be -inf - -inf = NaN; every partition then has l = 0 and o = 0,
// so any finite factor is exact, and 0 keeps the result the empty state.
INFLLM_HD inline float partition_scale(float m_part, float m) {
  if (m == -INFINITY) return 0.0f;
  // The partition holding the max, and a running state whose max did not move (most blocks of a
  // long context), need no exp2.
  return m_part == m ? 1.0f : exp2f(m_part - m);
}

INFLLM_HD inline MergeScales merge_scales(float m_a, float m_b) {
  const float m = fmaxf(m_a, m_b);
  return MergeScales{m, partition_scale(m_a, m), partition_scale(m_b, m)};
}

// Folds the state (o_b, m_b, l_b) into (o, m, l); o and o_b hold `dim` floats. o may not alias
// o_b. For head dimensions known only at run time (the CPU kernels and the distributed merge).
INFLLM_HD inline void merge_state(float* o, float* m, float* l, const float* o_b, float m_b,
                                  float l_b, int dim) {
  const MergeScales s = merge_scales(*m, m_b);
  for (int d = 0; d < dim; ++d) o[d] = o[d] * s.scale_a + o_b[d] * s.scale_b;
  *l = *l * s.scale_a + l_b * s.scale_b;
  *m = s.m;
}

// out = o / l, the softmax-weighted sum of V. An empty state (l = 0) has no output; it gives 0
// rather than 0/0 = NaN, so a query that sees no key (nothing visible yet) never produces NaN.
INFLLM_HD inline void normalize_state(const float* o, float l, float* out, int dim) {
  const float inv = l > 0.0f ? 1.0f / l : 0.0f;
  for (int d = 0; d < dim; ++d) out[d] = o[d] * inv;
}

// Natural log-sum-exp of the scores behind a state; -inf for the empty state.
INFLLM_HD inline float state_lse(float m, float l) {
  return l > 0.0f ? (m + log2f(l)) / kLog2e : -INFINITY;
}

// The state of one query head as a value, for a head-dim slice known at compile time (a CUDA
// thread's vector, or a whole head on the host).
template <int kDim>
struct AttentionState {
  float o[kDim];  // unnormalised output, kDim floats
  float m;        // running max, log2 units
  float l;        // sum of 2^(x - m)

  INFLLM_HD static AttentionState empty() {
    AttentionState s{};
    s.m = -INFINITY;
    return s;
  }

  INFLLM_HD void merge(const AttentionState& other) {
    merge_state(o, &m, &l, other.o, other.m, other.l, kDim);
  }

  // o <- o / l (0 for the empty state); m and l keep describing the scores.
  INFLLM_HD void normalize() { normalize_state(o, l, o, kDim); }

  INFLLM_HD float lse() const { return state_lse(m, l); }
};

}  // namespace infllm
