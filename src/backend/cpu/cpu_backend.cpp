// cpu_backend.cpp: see cpu_backend.hpp.
#include "backend/cpu/cpu_backend.hpp"

#include "backend/cpu/qmatmul.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend/cpu/attention.hpp"
#include "backend/cpu/attention_parallel.hpp"
#include "backend/cpu/blas.hpp"
#include "backend/cpu/cpu_threads.hpp"
#include "backend/cpu/pool_memory.hpp"
#include "core/half.hpp"

namespace infllm::cpu {

namespace {

// Runs fn over [0, n) in chunks of at least `grain` items on the shared thread pool.
template <typename Fn>
void parallel_chunks(std::size_t n, std::size_t grain, Fn fn) {
  if (n == 0) return;
  const std::size_t chunks = std::max<std::size_t>(
      1, std::min<std::size_t>(n / std::max<std::size_t>(grain, 1), std::size_t(threads()) * 4));
  if (chunks == 1) {
    fn(std::size_t{0}, n);
    return;
  }
  const std::size_t per = (n + chunks - 1) / chunks;
  attention_parallel_for(static_cast<std::int64_t>(chunks), threads(), [&](std::int64_t c) {
    const std::size_t begin = static_cast<std::size_t>(c) * per;
    fn(begin, std::min(n, begin + per));
  });
}

}  // namespace

void CpuBackend::matmul(const float* x, const float* w, float* y, std::size_t m, std::size_t n,
                        std::size_t k, bool accumulate) {
  matmul_wt(x, w, y, m, n, k, accumulate ? 1.0f : 0.0f);
}

bool CpuBackend::matmul_quant(const float* x, std::uint32_t ggml_type, const std::byte* w, float* y,
                              std::size_t m, std::size_t n, std::size_t k, bool accumulate) {
  // ggml type ids (model/formats/dequant.hpp): 3 = Q4_1, 8 = Q8_0.
  QuantType type;
  if (ggml_type == 3) {
    type = QuantType::kQ4_1;
  } else if (ggml_type == 8) {
    type = QuantType::kQ8_0;
  } else {
    return false;
  }
  if (m > kQuantMaxRows || k % 32 != 0) return false;
  if (m == 0) return true;
  qmatmul(x, QuantMatrix{type, w, static_cast<std::int64_t>(n), static_cast<std::int64_t>(k)}, y, m,
          accumulate);
  return true;
}

void CpuBackend::rms_norm(const float* x, const float* gain, float* y, std::size_t rows,
                          std::size_t dim, float eps) {
  parallel_chunks(rows, 4, [&](std::size_t begin, std::size_t end) {
    for (std::size_t r = begin; r < end; ++r) {
      const float* xr = x + r * dim;
      float* yr = y + r * dim;
      double sum = 0.0;
      for (std::size_t i = 0; i < dim; ++i) sum += double(xr[i]) * xr[i];
      const float inv = static_cast<float>(1.0 / std::sqrt(sum / double(dim) + eps));
      for (std::size_t i = 0; i < dim; ++i) yr[i] = xr[i] * inv * gain[i];
    }
  });
}

void CpuBackend::rope(float* x, const std::int64_t* positions, std::size_t rows, int heads,
                      int head_dim, const float* inv_freq, float scale) {
  const int half = head_dim / 2;
  parallel_chunks(rows, 4, [&](std::size_t begin, std::size_t end) {
    std::vector<float> cos_t(half), sin_t(half);
    for (std::size_t r = begin; r < end; ++r) {
      // NOTE: the angle is formed in f32 as Hugging Face does (position * inv_freq in f32),
      // so long positions round the same way as the reference implementation.
      const float pos = static_cast<float>(positions[r]);
      for (int i = 0; i < half; ++i) {
        const float angle = pos * inv_freq[i];
        cos_t[i] = std::cos(angle) * scale;
        sin_t[i] = std::sin(angle) * scale;
      }
      for (int h = 0; h < heads; ++h) {
        float* v = x + (r * heads + h) * head_dim;
        for (int i = 0; i < half; ++i) {
          const float a = v[i], b = v[i + half];
          v[i] = a * cos_t[i] - b * sin_t[i];
          v[i + half] = b * cos_t[i] + a * sin_t[i];
        }
      }
    }
  });
}

void CpuBackend::silu_mul(float* gate, const float* up, std::size_t n) {
  parallel_chunks(n, 4096, [&](std::size_t begin, std::size_t end) {
    for (std::size_t i = begin; i < end; ++i) {
      const float g = gate[i];
      gate[i] = g / (1.0f + std::exp(-g)) * up[i];
    }
  });
}

void CpuBackend::add_bias(float* y, const float* bias, std::size_t rows, std::size_t n) {
  for (std::size_t r = 0; r < rows; ++r) {
    for (std::size_t i = 0; i < n; ++i) y[r * n + i] += bias[i];
  }
}

void CpuBackend::attention(const KvPool& pool, const infllm::MaParams& params,
                           std::span<const MaQuery> queries, std::span<const MaOutput> outputs) {
  micro_attention(pool, MaParams{params}, queries, outputs);
}

void CpuBackend::merge_partials_into(const MaOutput& acc, const PartialsView& part,
                                     std::int64_t rows, int head_dim) {
  cpu::merge_partials_into(acc, part, rows, head_dim);
}

void CpuBackend::normalize_partials(const PartialsView& states, std::int64_t rows, int head_dim,
                                    float* out) {
  cpu::normalize_partials(states, rows, head_dim, out);
}

namespace {

class CpuMemory final : public BackendMemory {
 public:
  CpuMemory(std::size_t bytes, PoolMemory::Pages pages) : memory_(bytes, pages) {}
  std::byte* data() override { return memory_.data(); }
  std::size_t bytes() const override { return memory_.size(); }

 private:
  PoolMemory memory_;
};

// Stores n f32 values as the pool's dtype.
void store_as(KvDtype dtype, const float* src, std::byte* dst, int n) {
  switch (dtype) {
    case KvDtype::kF32:
      std::memcpy(dst, src, sizeof(float) * static_cast<std::size_t>(n));
      return;
    case KvDtype::kF16:
      for (int i = 0; i < n; ++i) {
        const f16 h = to_f16(src[i]);
        std::memcpy(dst + 2 * i, &h.bits, 2);
      }
      return;
    case KvDtype::kBF16:
      for (int i = 0; i < n; ++i) {
        const bf16 h = to_bf16(src[i]);
        std::memcpy(dst + 2 * i, &h.bits, 2);
      }
      return;
  }
}

}  // namespace

std::unique_ptr<BackendMemory> CpuBackend::allocate(std::size_t bytes, MemoryUse use) {
  return std::make_unique<CpuMemory>(
      bytes, use == MemoryUse::kKvPool ? PoolMemory::Pages::kHuge : PoolMemory::Pages::kDefault);
}

void CpuBackend::upload(void* dst, const void* src, std::size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}

void CpuBackend::download(void* dst, const void* src, std::size_t bytes) {
  if (bytes > 0) std::memcpy(dst, src, bytes);
}

void CpuBackend::gather_rows(const float* table, std::span<const std::int32_t> rows, std::size_t n,
                             float* y) {
  for (std::size_t r = 0; r < rows.size(); ++r) {
    std::memcpy(y + r * n, table + static_cast<std::size_t>(rows[r]) * n, n * sizeof(float));
  }
}

void CpuBackend::prepare_kv(std::byte* base, std::size_t bytes) { advise_huge_pages(base, bytes); }

void CpuBackend::store_kv(const KvStore& pool, int layer, std::span<const KvRowDest> rows,
                          const float* k, const float* v) {
  const BlockGeometry& g = pool.geometry;
  const int kv_heads = g.kv_heads, hd = g.head_dim;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    std::byte* base = pool.base + static_cast<std::size_t>(rows[r].slot.value()) * pool.slot_bytes;
    const std::size_t tok = g.token_offset(rows[r].token);
    for (int h = 0; h < kv_heads; ++h) {
      const std::size_t src = (r * static_cast<std::size_t>(kv_heads) + h) * hd;
      store_as(g.dtype, k + src, base + g.k_offset(layer, h) + tok, hd);
      store_as(g.dtype, v + src, base + g.v_offset(layer, h) + tok, hd);
    }
  }
}

}  // namespace infllm::cpu
