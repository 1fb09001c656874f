// cuda_backend.cpp: see cuda_backend.hpp.
#include "backend/cuda/cuda_backend.hpp"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

#include "backend/cuda/cuda_check.hpp"
#include "core/attention_state.hpp"
#include "core/errors.hpp"
#include "kernels/attention.cuh"
#include "kernels/elementwise.cuh"

namespace infllm::cuda {

namespace {

class CudaMemory final : public BackendMemory {
 public:
  explicit CudaMemory(std::size_t bytes) : bytes_(bytes) {
    void* p = nullptr;
    INFLLM_CUDA_CHECK(cudaMalloc(&p, std::max<std::size_t>(bytes, 1)));
    data_ = static_cast<std::byte*>(p);
  }
  ~CudaMemory() override { cudaFree(data_); }
  std::byte* data() override { return data_; }
  std::size_t bytes() const override { return bytes_; }

 private:
  std::size_t bytes_;
  std::byte* data_ = nullptr;
};

// The index of each table this backend copies to the device per call.
enum Table : int { kRows = 0, kPositions, kDests, kAttention, kNarrowActivations };

}  // namespace

CudaBackend::CudaBackend(int device, GemmType weights) : weight_type_(weights), device_(device) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || device < 0 || device >= count) {
    (void)cudaGetLastError();
    throw InternalError("cuda backend: no CUDA device " + std::to_string(device) + " (" +
                        std::to_string(count) + " visible)");
  }
  INFLLM_CUDA_CHECK(cudaSetDevice(device));
  INFLLM_CUDA_CHECK(cudaDeviceGetAttribute(&sm_count_, cudaDevAttrMultiProcessorCount, device));
  blas_ = std::make_unique<Blas>(nullptr);
}

CudaBackend::~CudaBackend() {
  for (std::byte* base : registered_) (void)cudaHostUnregister(base);
}

void CudaBackend::prepare_kv(std::byte* base, std::size_t bytes) {
  int host_pointers = 0;
  INFLLM_CUDA_CHECK(cudaDeviceGetAttribute(&host_pointers,
                                           cudaDevAttrCanUseHostPointerForRegisteredMem, device_));
  if (host_pointers == 0) {
    throw InternalError("cuda backend: device " + std::to_string(device_) +
                        " cannot use registered host memory at its host address, which a KV "
                        "pool in an MPI window needs");
  }
  INFLLM_CUDA_CHECK(
      cudaHostRegister(base, bytes, cudaHostRegisterMapped | cudaHostRegisterPortable));
  const std::lock_guard lock(mutex_);
  registered_.push_back(base);
}

void CudaBackend::release_kv(std::byte* base) {
  const std::lock_guard lock(mutex_);
  const auto it = std::find(registered_.begin(), registered_.end(), base);
  if (it == registered_.end()) return;
  registered_.erase(it);
  INFLLM_CUDA_CHECK(cudaHostUnregister(base));
}

std::unique_ptr<BackendMemory> CudaBackend::allocate(std::size_t bytes, MemoryUse use) {
  (void)use;
  return std::make_unique<CudaMemory>(bytes);
}

namespace {

// A resident matrix: its device memory, and its entry in the backend's table of matrix types.
class MatrixMemory final : public BackendMemory {
 public:
  MatrixMemory(std::size_t bytes, std::shared_ptr<void> registration)
      : memory_(bytes), registration_(std::move(registration)) {}
  std::byte* data() override { return memory_.data(); }
  std::size_t bytes() const override { return memory_.bytes(); }

 private:
  CudaMemory memory_;
  std::shared_ptr<void> registration_;  // erases the entry when the memory goes
};

}  // namespace

std::unique_ptr<BackendMemory> CudaBackend::resident_matrix(const float* w, std::size_t rows,
                                                            std::size_t cols) {
  const std::size_t n = rows * cols;
  auto entry = std::make_shared<const void*>(nullptr);
  std::shared_ptr<Matrices> matrices = matrices_;
  auto registration = std::shared_ptr<void>(nullptr, [matrices, entry](void*) {
    const std::lock_guard lock(matrices->mutex);
    matrices->types.erase(*entry);
  });
  auto m = std::make_unique<MatrixMemory>(n * kernels::elem_type_bytes(weight_type_),
                                          std::move(registration));
  if (weight_type_ == GemmType::kF32) {
    upload(m->data(), w, n * sizeof(float));
  } else {
    // f32 onto the device once, converted there (round to nearest even).
    CudaMemory staging(n * sizeof(float));
    upload(staging.data(), w, n * sizeof(float));
    INFLLM_CUDA_CHECK(kernels::launch_convert(reinterpret_cast<const float*>(staging.data()),
                                              m->data(), weight_type_, n, nullptr));
    INFLLM_CUDA_CHECK(cudaDeviceSynchronize());
  }
  *entry = m->data();
  const std::lock_guard lock(matrices_->mutex);
  matrices_->types[m->data()] = weight_type_;
  return m;
}

GemmType CudaBackend::matrix_type(const void* w) {
  const std::lock_guard lock(matrices_->mutex);
  const auto it = matrices_->types.find(w);
  return it == matrices_->types.end() ? GemmType::kF32 : it->second;
}

void CudaBackend::upload(void* dst, const void* src, std::size_t bytes) {
  if (bytes > 0) INFLLM_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}

void CudaBackend::download(void* dst, const void* src, std::size_t bytes) {
  if (bytes > 0) INFLLM_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}

void* CudaBackend::table(int which, std::size_t bytes) {
  std::unique_ptr<BackendMemory>& t = tables_[which];
  if (!t || t->bytes() < bytes) {
    t.reset();
    // Synchronous copies on the default stream wait for the kernels that read the old table.
    t = std::make_unique<CudaMemory>(std::max<std::size_t>(bytes + bytes / 2, 256));
  }
  return t->data();
}

template <class T>
T* CudaBackend::upload_table(int which, std::span<const T> host) {
  void* d = table(which, host.size_bytes());
  upload(d, host.data(), host.size_bytes());
  return static_cast<T*>(d);
}

void CudaBackend::gather_rows(const float* table_rows, std::span<const std::int32_t> rows,
                              std::size_t n, float* y) {
  const std::lock_guard lock(mutex_);
  if (rows.empty()) return;
  const std::int32_t* d_rows = upload_table(kRows, rows);
  INFLLM_CUDA_CHECK(kernels::launch_gather_rows(table_rows, matrix_type(table_rows), d_rows,
                                                rows.size(), n, y, nullptr));
}

void CudaBackend::store_kv(const KvStore& pool, int layer, std::span<const KvRowDest> rows,
                           const float* k, const float* v) {
  const std::lock_guard lock(mutex_);
  if (rows.empty()) return;
  std::vector<kernels::KvDest> dests(rows.size());
  for (std::size_t r = 0; r < rows.size(); ++r) {
    dests[r] = kernels::KvDest{rows[r].slot.value(), rows[r].token};
  }
  const kernels::KvDest* d_dests = upload_table(kDests, std::span<const kernels::KvDest>(dests));
  INFLLM_CUDA_CHECK(
      kernels::launch_store_kv(pool.base, kernels::kv_layout(pool.geometry, pool.slot_bytes, layer),
                               d_dests, rows.size(), k, v, nullptr));
}

void CudaBackend::matmul(const float* x, const float* w, float* y, std::size_t m, std::size_t n,
                         std::size_t k, bool accumulate) {
  const std::lock_guard lock(mutex_);
  if (m == 0 || n == 0) return;
  // Row-major y (m, n) = x (m, k) . W^T is column-major y^T (n, m) = W (k, n)^T . x^T (k, m).
  const int in = static_cast<int>(n), im = static_cast<int>(m), ik = static_cast<int>(k);
  const GemmType type = matrix_type(w);
  const void* xs = x;
  if (type != GemmType::kF32) {  // cublasGemmEx takes one input type: x goes to W's
    void* narrow = table(kNarrowActivations, m * k * 2);
    INFLLM_CUDA_CHECK(kernels::launch_convert(x, narrow, type, m * k, nullptr));
    xs = narrow;
  }
  blas_->gemm(true, false, in, im, ik, 1.0f, w, ik, xs, ik, type, accumulate ? 1.0f : 0.0f, y, in);
}

void CudaBackend::rms_norm(const float* x, const float* gain, float* y, std::size_t rows,
                           std::size_t dim, float eps) {
  const std::lock_guard lock(mutex_);
  INFLLM_CUDA_CHECK(kernels::launch_rms_norm(x, gain, y, rows, dim, eps, nullptr));
}

void CudaBackend::rope(float* x, const std::int64_t* positions, std::size_t rows, int heads,
                       int head_dim, const float* inv_freq, float scale) {
  const std::lock_guard lock(mutex_);
  if (rows == 0) return;
  const std::int64_t* d_pos =
      upload_table(kPositions, std::span<const std::int64_t>(positions, rows));
  INFLLM_CUDA_CHECK(
      kernels::launch_rope(x, d_pos, rows, heads, head_dim, inv_freq, scale, nullptr));
}

void CudaBackend::silu_mul(float* gate, const float* up, std::size_t n) {
  const std::lock_guard lock(mutex_);
  INFLLM_CUDA_CHECK(kernels::launch_silu_mul(gate, up, n, nullptr));
}

void CudaBackend::add_bias(float* y, const float* bias, std::size_t rows, std::size_t n) {
  const std::lock_guard lock(mutex_);
  INFLLM_CUDA_CHECK(kernels::launch_add_bias(y, bias, rows, n, nullptr));
}

void CudaBackend::attention(const KvPool& pool, const MaParams& params,
                            std::span<const MaQuery> queries, std::span<const MaOutput> outputs) {
  const std::lock_guard lock(mutex_);
  const BlockGeometry& g = pool.geometry;
  if (queries.size() != outputs.size()) {
    throw InternalError("cuda attention: queries and outputs differ in count");
  }
  if (params.q_heads % g.kv_heads != 0 || g.head_dim > kernels::kAttnMaxHeadDim) {
    throw InternalError("cuda attention: q_heads " + std::to_string(params.q_heads) +
                        " over kv_heads " + std::to_string(g.kv_heads) + ", head_dim " +
                        std::to_string(g.head_dim) + " not supported");
  }
  const bool normalized = params.result == MaResult::kNormalized;
  std::vector<kernels::AttnRequest> requests(queries.size());
  std::vector<kernels::AttnBlock> blocks;
  std::vector<kernels::AttnPlanRequest> plan_requests(queries.size());
  std::int32_t longest = 0;
  for (std::size_t i = 0; i < queries.size(); ++i) {
    const MaQuery& q = queries[i];
    const MaOutput& o = outputs[i];
    if (q.q == nullptr || o.o == nullptr || (!normalized && (o.m == nullptr || o.l == nullptr))) {
      throw InternalError("cuda attention: a null query or output");
    }
    requests[i] = kernels::AttnRequest{q.q, o.o, o.m, o.l, q.first_pos, q.n_tokens, 0};
    plan_requests[i] =
        kernels::AttnPlanRequest{q.n_tokens, static_cast<std::int32_t>(blocks.size()),
                                 static_cast<std::int32_t>(q.blocks.size())};
    for (const KvBlock& b : q.blocks) {
      if (b.slot.value() < 0 || b.slot.value() >= pool.slots || b.tokens < 1 ||
          b.tokens > g.block_tokens) {
        throw InternalError("cuda attention: block at slot " + std::to_string(b.slot.value()) +
                            " with " + std::to_string(b.tokens) + " tokens outside the pool");
      }
      blocks.push_back(kernels::AttnBlock{b.first_pos, b.slot.value(), b.tokens});
    }
    longest = std::max(longest, static_cast<std::int32_t>(q.blocks.size()));
  }
  const int group = params.q_heads / g.kv_heads;
  // Split long requests' blocks until the work fills the SMs twice over, keeping at least 8
  // blocks (128 tokens at 16 per block) per split.
  int per_split = blocks_per_split_;
  if (per_split <= 0) {
    std::size_t base = 0;
    for (const auto& r : plan_requests) {
      base += static_cast<std::size_t>(g.kv_heads) *
              ((static_cast<std::size_t>(r.n_tokens) * group + kernels::kAttnRows - 1) /
               kernels::kAttnRows);
    }
    const std::size_t target = 2 * static_cast<std::size_t>(std::max(sm_count_, 1));
    const std::size_t splits = base == 0 || base >= target ? 1 : (target + base - 1) / base;
    per_split = std::max<int>(8, static_cast<int>((longest + splits - 1) / splits));
  }
  const kernels::AttnPlan plan =
      kernels::plan_attention(plan_requests, g.kv_heads, group, per_split);
  if (plan.items.empty()) return;

  kernels::AttnParams p;
  p.pool = kernels::AttnPool{pool.base, kernels::kv_layout(g, pool.slot_bytes, params.layer)};
  p.q_heads = params.q_heads;
  p.group = group;
  p.score_scale = params.scale * kLog2e;
  p.normalized = normalized;
  // One device table holds requests, blocks, items and combines, then the scratch floats.
  const auto align = [](std::size_t b) { return (b + 255) / 256 * 256; };
  const std::size_t req_b = align(requests.size() * sizeof(kernels::AttnRequest));
  const std::size_t blk_b =
      align(std::max<std::size_t>(blocks.size(), 1) * sizeof(kernels::AttnBlock));
  const std::size_t item_b = align(plan.items.size() * sizeof(kernels::AttnItem));
  const std::size_t comb_b = align(plan.combines.size() * sizeof(kernels::AttnCombine));
  const std::size_t scratch_b = kernels::attention_scratch_floats(plan, g.head_dim) * sizeof(float);
  std::vector<std::byte> host(req_b + blk_b + item_b + comb_b);
  std::memcpy(host.data(), requests.data(), requests.size() * sizeof(kernels::AttnRequest));
  std::memcpy(host.data() + req_b, blocks.data(), blocks.size() * sizeof(kernels::AttnBlock));
  std::memcpy(host.data() + req_b + blk_b, plan.items.data(),
              plan.items.size() * sizeof(kernels::AttnItem));
  std::memcpy(host.data() + req_b + blk_b + item_b, plan.combines.data(),
              plan.combines.size() * sizeof(kernels::AttnCombine));
  auto* d = static_cast<std::byte*>(table(kAttention, host.size() + scratch_b));
  // The forward pass asks once per layer with the same tables (only params.layer differs, and
  // it travels in the launch): upload them only when they changed.
  if (d != attention_tables_at_ || host != attention_tables_) {
    upload(d, host.data(), host.size());
    attention_tables_ = std::move(host);
    attention_tables_at_ = d;
  }
  const std::size_t tables_bytes = req_b + blk_b + item_b + comb_b;
  INFLLM_CUDA_CHECK(kernels::launch_attention(
      p, reinterpret_cast<const kernels::AttnRequest*>(d),
      reinterpret_cast<const kernels::AttnBlock*>(d + req_b),
      reinterpret_cast<const kernels::AttnItem*>(d + req_b + blk_b),
      static_cast<int>(plan.items.size()),
      reinterpret_cast<const kernels::AttnCombine*>(d + req_b + blk_b + item_b),
      static_cast<int>(plan.combines.size()), reinterpret_cast<float*>(d + tables_bytes),
      plan.partials, nullptr));
}

void CudaBackend::merge_partials_into(const MaOutput& acc, const PartialsView& part,
                                      std::int64_t rows, int head_dim) {
  const std::lock_guard lock(mutex_);
  INFLLM_CUDA_CHECK(kernels::launch_merge_partials_into(acc.o, acc.m, acc.l, part.o, part.m, part.l,
                                                        rows, head_dim, nullptr));
}

void CudaBackend::normalize_partials(const PartialsView& states, std::int64_t rows, int head_dim,
                                     float* out) {
  const std::lock_guard lock(mutex_);
  INFLLM_CUDA_CHECK(
      kernels::launch_normalize_partials(states.o, states.l, rows, head_dim, out, nullptr));
}

}  // namespace infllm::cuda
