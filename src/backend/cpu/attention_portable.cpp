// attention_portable.cpp: the MA block step in plain C++, for any CPU.
//
// Same structure as the AVX2 step (attention_avx2.cpp) so the differential tests exercise the
// driver either way: rows in tiles of up to kMaxTileRows, scores for the tile, one online-softmax
// update per block and row, then V accumulated with the rows' outputs held in lane arrays.
// NOTE: float reductions vectorize only when written as independent lanes (the compiler may not
// reassociate a single sum), hence the kLanes accumulators.
#include <cmath>
#include <cstring>

#include "backend/cpu/attention_kernels.hpp"
#include "core/attention_state.hpp"
#include "core/half.hpp"

namespace infllm::cpu::detail {

namespace {

constexpr int kLanes = 8;

// dst (n) <- src (n elements of dtype) as f32.
void convert(const std::byte* src, KvDtype dtype, float* dst, std::size_t n) {
  if (dtype == KvDtype::kF16) {
    for (std::size_t i = 0; i < n; ++i) {
      f16 h;
      std::memcpy(&h, src + 2 * i, 2);
      dst[i] = to_f32(h);
    }
  } else if (dtype == KvDtype::kBF16) {
    for (std::size_t i = 0; i < n; ++i) {
      bf16 h;
      std::memcpy(&h, src + 2 * i, 2);
      dst[i] = to_f32(h);
    }
  } else {
    std::memcpy(dst, src, n * sizeof(float));  // unused: f32 runs are read in place
  }
}

// Scores of R rows against every token, then the online-softmax update: scratch (R, tokens)
// receives the weights p = 2^(x - m_new); alpha[r] the factor for the row's previous o and l.
template <int R>
void tile_softmax(const MaRows& rows, int r0, const MaKeys& keys, const float* kf, float* p,
                  float* alpha) {
  const int hd = rows.head_dim;
  const int T = keys.tokens;
  const float* q = rows.q + static_cast<std::size_t>(r0) * hd;
  const int hd_main = hd / kLanes * kLanes;
  for (int t = 0; t < T; ++t) {
    const float* k = kf + static_cast<std::size_t>(t) * hd;
    float acc[R][kLanes] = {};
    for (int d = 0; d < hd_main; d += kLanes) {
      for (int r = 0; r < R; ++r) {
        for (int j = 0; j < kLanes; ++j) acc[r][j] += q[r * hd + d + j] * k[d + j];
      }
    }
    for (int d = hd_main; d < hd; ++d) {
      for (int r = 0; r < R; ++r) acc[r][0] += q[r * hd + d] * k[d];
    }
    for (int r = 0; r < R; ++r) {
      float s = 0.0f;
      for (int j = 0; j < kLanes; ++j) s += acc[r][j];
      p[r * T + t] = s;
    }
  }
  for (int r = 0; r < R; ++r) {
    float* x = p + r * T;
    const std::int64_t pos = rows.pos[r0 + r];
    float block_max = -INFINITY;
    for (int t = 0; t < T; ++t) {
      if (keys.masked && keys.first_pos + t > pos) x[t] = -INFINITY;
      block_max = std::fmax(block_max, x[t]);
    }
    const float m = std::fmax(rows.m[r0 + r], block_max);
    const float scale = partition_scale(rows.m[r0 + r], m);
    float sum = 0.0f;
    for (int t = 0; t < T; ++t) {
      // m = -inf only when nothing is visible yet: every x is -inf and p must be 0, not NaN.
      x[t] = m == -INFINITY ? 0.0f : std::exp2(x[t] - m);
      sum += x[t];
    }
    rows.l[r0 + r] = rows.l[r0 + r] * scale + sum;
    rows.m[r0 + r] = m;
    alpha[r] = scale;
  }
}

template <int R>
void tile_accumulate(const MaRows& rows, int r0, const MaKeys& keys, const float* vf,
                     const float* p, const float* alpha) {
  const int hd = rows.head_dim;
  const int T = keys.tokens;
  float* o = rows.o + static_cast<std::size_t>(r0) * hd;
  for (int d = 0; d < hd; d += kLanes) {
    const int w = hd - d < kLanes ? hd - d : kLanes;
    float acc[R][kLanes] = {};
    for (int r = 0; r < R; ++r) {
      for (int j = 0; j < w; ++j) acc[r][j] = o[r * hd + d + j] * alpha[r];
    }
    if (w == kLanes) {
      for (int t = 0; t < T; ++t) {
        const float* v = vf + static_cast<std::size_t>(t) * hd + d;
        for (int r = 0; r < R; ++r) {
          const float pt = p[r * T + t];
          for (int j = 0; j < kLanes; ++j) acc[r][j] += pt * v[j];
        }
      }
    } else {
      for (int t = 0; t < T; ++t) {
        const float* v = vf + static_cast<std::size_t>(t) * hd + d;
        for (int r = 0; r < R; ++r) {
          for (int j = 0; j < w; ++j) acc[r][j] += p[r * T + t] * v[j];
        }
      }
    }
    for (int r = 0; r < R; ++r) {
      for (int j = 0; j < w; ++j) o[r * hd + d + j] = acc[r][j];
    }
  }
}

template <int R>
void tile(const MaRows& rows, int r0, const MaKeys& keys, const float* kf, const float* vf,
          float* p) {
  float alpha[R];
  tile_softmax<R>(rows, r0, keys, kf, p, alpha);
  tile_accumulate<R>(rows, r0, keys, vf, p, alpha);
}

void update(const MaRows& rows, const MaKeys& keys, float* scratch) {
  // scratch: p (kMaxTileRows, tokens), then K and V as f32 (tokens, head_dim) each.
  const std::size_t n = static_cast<std::size_t>(keys.tokens) * rows.head_dim;
  float* p = scratch;
  const float* kf = reinterpret_cast<const float*>(keys.k);
  const float* vf = reinterpret_cast<const float*>(keys.v);
  if (keys.dtype != KvDtype::kF32) {
    float* k32 = scratch + block_update_scratch(keys.tokens, 0);
    float* v32 = k32 + n;
    convert(keys.k, keys.dtype, k32, n);
    convert(keys.v, keys.dtype, v32, n);
    kf = k32;
    vf = v32;
  }
  // The driver pads the buffers to a multiple of kMaxTileRows rows; the padding is computed here.
  for (int r = 0; r < rows.rows; r += kMaxTileRows) tile<kMaxTileRows>(rows, r, keys, kf, vf, p);
}

}  // namespace

MaIsa portable_isa() { return MaIsa{"portable", &update}; }

}  // namespace infllm::cpu::detail
