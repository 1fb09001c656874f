// cuda_backend.hpp: the Backend (backend/backend.hpp) on one CUDA device: memory from
// cudaMalloc, GEMMs through Blas (cuBLAS), everything else through the kernels of kernels/.
//
// The same source builds two ways: over CUDA itself (infllm_cuda) and over the CUDA-on-CPU layer
// (infllm_cuda_on_cpu), where the unit tests run the whole forward pass and the engine through
// it. host_memory() is false: callers stage through upload / download, and the small host index
// arrays a call takes (rows, positions, KV destinations, block tables) are copied to device
// tables here. Work goes onto the default stream in order; download waits for it. One backend
// may serve several threads (the in-process cluster's instances): each call holds a mutex.
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "backend/backend.hpp"
#include "backend/cuda/gemm.hpp"

namespace infllm::cuda {

class CudaBackend final : public Backend {
 public:
  // Binds this thread's CUDA calls to `device`; weight matrices are held as `weights` (bf16 by
  // default, f16 or f32 on request). Throws InternalError when the device is not usable.
  explicit CudaBackend(int device = 0, GemmType weights = GemmType::kBF16);
  ~CudaBackend() override;

  const char* name() const override { return "cuda"; }
  bool host_memory() const override { return false; }
  std::unique_ptr<BackendMemory> allocate(std::size_t bytes, MemoryUse use) override;
  // Uploads W in f32 and converts it on the device to the weight type; matmul then converts
  // its activations to that type for a cublasGemmEx with f32 accumulation.
  std::unique_ptr<BackendMemory> resident_matrix(const float* w, std::size_t rows,
                                                 std::size_t cols) override;
  // A KV pool in memory an RMA window owns (MPI without CUDA support): registered as mapped,
  // pinned host memory that the kernels read and write at its host address; MPI moves its
  // rBlocks as before. Throws InternalError where the device cannot use such addresses.
  void prepare_kv(std::byte* base, std::size_t bytes) override;
  void release_kv(std::byte* base) override;
  void upload(void* dst, const void* src, std::size_t bytes) override;
  void download(void* dst, const void* src, std::size_t bytes) override;
  void gather_rows(const float* table, std::span<const std::int32_t> rows, std::size_t n,
                   float* y) override;
  void store_kv(const KvStore& pool, int layer, std::span<const KvRowDest> rows, const float* k,
                const float* v) override;
  void matmul(const float* x, const float* w, float* y, std::size_t m, std::size_t n, std::size_t k,
              bool accumulate) override;
  void rms_norm(const float* x, const float* gain, float* y, std::size_t rows, std::size_t dim,
                float eps) override;
  void rope(float* x, const std::int64_t* positions, std::size_t rows, int heads, int head_dim,
            const float* inv_freq, float scale) override;
  void silu_mul(float* gate, const float* up, std::size_t n) override;
  void add_bias(float* y, const float* bias, std::size_t rows, std::size_t n) override;
  void attention(const KvPool& pool, const MaParams& params, std::span<const MaQuery> queries,
                 std::span<const MaOutput> outputs) override;
  void merge_partials_into(const MaOutput& acc, const PartialsView& part, std::int64_t rows,
                           int head_dim) override;
  void normalize_partials(const PartialsView& states, std::int64_t rows, int head_dim,
                          float* out) override;

  // Blocks per thread block of micro-attention (the split of a long request over SMs); 0 picks
  // from the device's SM count.
  void set_blocks_per_split(int blocks) { blocks_per_split_ = blocks; }

 private:
  // Device memory for this call's tables, grown as needed; valid until the next call that asks.
  void* table(int which, std::size_t bytes);
  template <class T>
  T* upload_table(int which, std::span<const T> host);

  // The element type of each resident matrix, by its start (matmul's w, gather_rows' table);
  // shared with the matrices' memory, which removes its entry when freed.
  struct Matrices {
    std::mutex mutex;
    std::map<const void*, GemmType> types;
  };
  GemmType matrix_type(const void* w);

  std::mutex mutex_;
  GemmType weight_type_;
  std::shared_ptr<Matrices> matrices_ = std::make_shared<Matrices>();
  std::vector<std::byte*> registered_;  // KV pools registered by prepare_kv
  // The attention tables last uploaded, and where: the next layer's call reuses them.
  std::vector<std::byte> attention_tables_;
  const std::byte* attention_tables_at_ = nullptr;
  int device_ = 0;
  int sm_count_ = 0;
  int blocks_per_split_ = 0;
  std::unique_ptr<Blas> blas_;
  std::unique_ptr<BackendMemory> tables_[5];  // rows, positions, KV destinations, attention,
                                              // activations converted for a narrow GEMM
};

}  // namespace infllm::cuda
