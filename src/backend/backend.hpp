// backend.hpp: the operations the transformer forward pass needs, as one interface.
//
// The forward pass (src/model/forward/forward.cpp) is written once against Backend; the CPU
// backend (cpu/cpu_backend.hpp) implements it with OpenBLAS and threaded loops, and a CUDA
// backend implements the same calls with cuBLAS and kernels/. The backend owns the memory it
// computes on (allocate): weights, activations and KV pools live there, and every pointer a
// compute call takes points into it, except small index arrays (positions, row indices, KV
// destinations), which are host memory. Buffers are row-major f32; a "row" is one token.
// Weights follow Hugging Face's linear layout W (out_features, in_features).
//
// Device-neutral: the KV pool, block and attention types are backend/attention_types.hpp's, and
// the backend makes the memory its KV pool lives in (allocate, or prepare_kv for memory an RMA
// window owns). Nothing outside backend/ includes cpu/ or cuda/.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "backend/attention_types.hpp"

namespace infllm {

// Memory a backend computes on (host memory for the CPU backend, device memory for a device
// backend), made by the backend and freed with it.
class BackendMemory {
 public:
  virtual ~BackendMemory() = default;
  virtual std::byte* data() = 0;
  virtual std::size_t bytes() const = 0;
};

// What a piece of backend memory holds: a KV pool is read in any order by decode attention
// (the CPU backend puts it on 2 MiB pages); the rest is streamed.
enum class MemoryUse : std::uint8_t { kKvPool, kWorkspace, kWeights };

// Where one row (token) of new K and V goes: its block's slot and its index within the block.
struct KvRowDest {
  SlotId slot;
  std::int32_t token = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual const char* name() const = 0;

  // True when the memory this backend computes on (its BackendMemory) is host memory that MPI
  // and the CPU may read and write directly. A device backend says false, and its callers stage
  // through host copies (upload / download) where bytes must be in host memory: a message to
  // another rank, an RMA window without device support, the logits for the sampler.
  virtual bool host_memory() const = 0;
  // `bytes` of this backend's memory, uninitialized, laid out as `use` is read fastest.
  virtual std::unique_ptr<BackendMemory> allocate(std::size_t bytes, MemoryUse use) = 0;
  // Memory another owner allocated (an RMA window) is about to hold a KV pool: advice before
  // its first touch (the CPU backend asks for 2 MiB pages). Nothing by default.
  virtual void prepare_kv(std::byte* base, std::size_t bytes) { (void)base, (void)bytes; }
  // The memory prepare_kv was given is about to be freed. Nothing by default.
  virtual void release_kv(std::byte* base) { (void)base; }
  // A weight matrix W (rows, cols), f32 in host memory, made resident where matmul (its w) and
  // gather_rows (its table) read it; those calls then take the start of the returned memory as
  // W. The default holds it as f32 (allocate + upload); a device backend may store it narrower
  // (the CUDA backend: bf16 unless asked otherwise) and convert as it reads. Host-memory
  // backends are not asked: they read the weights where they are.
  virtual std::unique_ptr<BackendMemory> resident_matrix(const float* w, std::size_t rows,
                                                         std::size_t cols) {
    const std::size_t bytes = rows * cols * sizeof(float);
    std::unique_ptr<BackendMemory> m = allocate(bytes, MemoryUse::kWeights);
    upload(m->data(), w, bytes);
    return m;
  }
  // Host memory -> this backend's memory, and back; complete when they return.
  virtual void upload(void* dst, const void* src, std::size_t bytes) = 0;
  virtual void download(void* dst, const void* src, std::size_t bytes) = 0;
  // y (rows.size(), n) = the rows `rows` of table (any count, n): the embedding lookup. `rows`
  // are host memory; table and y the backend's.
  virtual void gather_rows(const float* table, std::span<const std::int32_t> rows, std::size_t n,
                           float* y) = 0;
  // Stores rows of K and V, each (rows.size(), kv_heads * head_dim) f32, into their blocks of
  // `pool` for `layer`, converted to the pool's dtype. The caller checked every destination.
  virtual void store_kv(const KvStore& pool, int layer, std::span<const KvRowDest> rows,
                        const float* k, const float* v) = 0;

  // y (m, n) = x (m, k) . W^T with W (n, k); accumulate adds into y instead of overwriting.
  virtual void matmul(const float* x, const float* w, float* y, std::size_t m, std::size_t n,
                      std::size_t k, bool accumulate = false) = 0;
  // y (m, n) = x (m, k) . W^T (+= with accumulate) with W (n, k) stored row by row in the ggml
  // block format `ggml_type` (model/formats/dequant.hpp ids). Returns false, computing nothing,
  // when this backend has no kernel for the type or thinks the f32 matmul is faster for `m` rows;
  // the caller then multiplies by the f32 copy of W.
  virtual bool matmul_quant(const float* x, std::uint32_t ggml_type, const std::byte* w, float* y,
                            std::size_t m, std::size_t n, std::size_t k, bool accumulate = false) {
    (void)x, (void)ggml_type, (void)w, (void)y, (void)m, (void)n, (void)k, (void)accumulate;
    return false;
  }
  // y (rows, dim) = x / rms(x) * gain, rms over each row with eps inside the square root.
  virtual void rms_norm(const float* x, const float* gain, float* y, std::size_t rows,
                        std::size_t dim, float eps) = 0;
  // Rotates x (rows, heads, head_dim) in place by position: Hugging Face's rotate_half
  // convention (element i pairs with i + head_dim/2), angle = positions[row] * inv_freq[i];
  // cos and sin are multiplied by `scale` (YaRN's attention factor; 1 otherwise).
  virtual void rope(float* x, const std::int64_t* positions, std::size_t rows, int heads,
                    int head_dim, const float* inv_freq, float scale) = 0;
  // gate (n) = silu(gate) * up.
  virtual void silu_mul(float* gate, const float* up, std::size_t n) = 0;
  // y (rows, n) += bias (n) per row.
  virtual void add_bias(float* y, const float* bias, std::size_t rows, std::size_t n) = 0;
  // Micro-attention over rBlocks: outputs[i] receives queries[i]'s partial state (or, with
  // MaResult::kNormalized, its final output). The causal mask is by absolute position.
  virtual void attention(const KvPool& pool, const MaParams& params,
                         std::span<const MaQuery> queries, std::span<const MaOutput> outputs) = 0;
  // acc <- merge(acc, part), row by row (rows = n_tokens * q_heads); acc must not alias part.
  virtual void merge_partials_into(const MaOutput& acc, const PartialsView& part, std::int64_t rows,
                                   int head_dim) = 0;
  // out (rows, head_dim) <- o / l; rows that saw no key get 0. out may alias states.o.
  virtual void normalize_partials(const PartialsView& states, std::int64_t rows, int head_dim,
                                  float* out) = 0;
};

}  // namespace infllm
