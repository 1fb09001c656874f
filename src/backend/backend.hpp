// backend.hpp: the operations the transformer forward pass needs, as one interface.
//
// The forward pass (src/model/forward.cpp) is written once against Backend; the CPU backend
// (cpu/cpu_backend.hpp) implements it with OpenBLAS and threaded loops, and a CUDA backend
// implements the same calls with cuBLAS and kernels/. Buffers are row-major f32; a "row" is one
// token. Weights follow Hugging Face's linear layout W (out_features, in_features).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "backend/cpu/attention.hpp"

namespace infllm {

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // y (m, n) = x (m, k) . W^T with W (n, k); accumulate adds into y instead of overwriting.
  virtual void matmul(const float* x, const float* w, float* y, std::size_t m, std::size_t n,
                      std::size_t k, bool accumulate = false) = 0;
  // y (m, n) = x (m, k) . W^T (+= with accumulate) with W (n, k) stored row by row in the ggml
  // block format `ggml_type` (model/dequant.hpp ids). Returns false, computing nothing, when this
  // backend has no kernel for the type or thinks the f32 matmul is faster for `m` rows; the
  // caller then multiplies by the f32 copy of W.
  virtual bool matmul_quant(const float* x, std::uint32_t ggml_type, const std::byte* w, float* y,
                            std::size_t m, std::size_t n, std::size_t k, bool accumulate = false) {
    (void)x, (void)ggml_type, (void)w, (void)y, (void)m, (void)n, (void)k, (void)accumulate;
    return false;
  }
  // y (rows, dim) = x / rms(x) * gain, rms over each row with eps inside the square root.
  virtual void rms_norm(const float* x, const float* gain, float* y, std::size_t rows,
                        std::size_t dim, float eps) = 0;
  // Rotates x (rows, heads, head_dim) in place by position: Hugging Face's rotate_half
  // convention (element i pairs with i + head_dim/2), angle = positions[row] * inv_freq[i].
  virtual void rope(float* x, const std::int64_t* positions, std::size_t rows, int heads,
                    int head_dim, const float* inv_freq) = 0;
  // gate (n) = silu(gate) * up.
  virtual void silu_mul(float* gate, const float* up, std::size_t n) = 0;
  // y (rows, n) += bias (n) per row.
  virtual void add_bias(float* y, const float* bias, std::size_t rows, std::size_t n) = 0;
  // Micro-attention over rBlocks (see backend/cpu/attention.hpp).
  virtual void attention(const cpu::KvPool& pool, const cpu::MaParams& params,
                         std::span<const cpu::MaQuery> queries,
                         std::span<const cpu::MaOutput> outputs) = 0;
};

}  // namespace infllm
