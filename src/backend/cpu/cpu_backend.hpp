// cpu_backend.hpp: the Backend on the CPU: OpenBLAS GEMMs, threaded elementwise loops, and the
// micro-attention kernels of attention.hpp. Threads: cpu::threads() (set once per rank).
#pragma once

#include "backend/backend.hpp"

namespace infllm::cpu {

class CpuBackend final : public Backend {
 public:
  const char* name() const override { return "cpu"; }
  bool host_memory() const override { return true; }
  // cpu::PoolMemory: a KV pool 2 MiB aligned, advised onto transparent huge pages before the
  // first touch; the rest on plain pages.
  std::unique_ptr<BackendMemory> allocate(std::size_t bytes, MemoryUse use) override;
  void prepare_kv(std::byte* base, std::size_t bytes) override;
  void upload(void* dst, const void* src, std::size_t bytes) override;
  void download(void* dst, const void* src, std::size_t bytes) override;
  void gather_rows(const float* table, std::span<const std::int32_t> rows, std::size_t n,
                   float* y) override;
  void store_kv(const KvStore& pool, int layer, std::span<const KvRowDest> rows, const float* k,
                const float* v) override;
  void matmul(const float* x, const float* w, float* y, std::size_t m, std::size_t n, std::size_t k,
              bool accumulate) override;
  // Q4_1 and Q8_0 (cpu::qmatmul) for at most kQuantMaxRows rows; beyond, OpenBLAS on the f32
  // copy (measured with SmolLM2 on 2 cores: qmatmul ahead at 24 rows, even at 32, OpenBLAS
  // ahead from 48).
  bool matmul_quant(const float* x, std::uint32_t ggml_type, const std::byte* w, float* y,
                    std::size_t m, std::size_t n, std::size_t k, bool accumulate) override;
  static constexpr std::size_t kQuantMaxRows = 32;
  void rms_norm(const float* x, const float* gain, float* y, std::size_t rows, std::size_t dim,
                float eps) override;
  void rope(float* x, const std::int64_t* positions, std::size_t rows, int heads, int head_dim,
            const float* inv_freq, float scale) override;
  void silu_mul(float* gate, const float* up, std::size_t n) override;
  void add_bias(float* y, const float* bias, std::size_t rows, std::size_t n) override;
  // cpu::micro_attention with the fastest kernel this CPU supports.
  void attention(const KvPool& pool, const infllm::MaParams& params,
                 std::span<const MaQuery> queries, std::span<const MaOutput> outputs) override;
  void merge_partials_into(const MaOutput& acc, const PartialsView& part, std::int64_t rows,
                           int head_dim) override;
  void normalize_partials(const PartialsView& states, std::int64_t rows, int head_dim,
                          float* out) override;
};

}  // namespace infllm::cpu
