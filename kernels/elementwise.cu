// elementwise.cu: the forward pass's row-wise kernels (see elementwise.cuh). Grid-stride loops
// over the elements, except RMSNorm: one warp per row, the sum of squares reduced by shuffles.
#include "kernels/elementwise.cuh"

#include "kernels/elem_access.cuh"

namespace infllm::kernels {

namespace {

constexpr unsigned kThreads = 256;
constexpr unsigned kNormRowsPerBlock = 4;  // one warp per row
constexpr unsigned kFullMask = 0xffffffffu;

// Blocks of kThreads for n items, at most INFLLM_GRID_STRIDE_BLOCKS (the loops stride over the
// rest).
unsigned grid_for(std::size_t n) {
  const std::size_t blocks = (n + kThreads - 1) / kThreads;
  return static_cast<unsigned>(
      blocks < 1 ? 1 : (blocks > INFLLM_GRID_STRIDE_BLOCKS ? INFLLM_GRID_STRIDE_BLOCKS : blocks));
}

__device__ __forceinline__ std::size_t global_index() {
  return blockIdx.x * std::size_t{blockDim.x} + threadIdx.x;
}
__device__ __forceinline__ std::size_t grid_stride() { return std::size_t{gridDim.x} * blockDim.x; }

__global__ void gather_rows_kernel(const void* table, ElemType type, const std::int32_t* rows,
                                   std::size_t n_rows, std::size_t n, float* y) {
  for (std::size_t i = global_index(); i < n_rows * n; i += grid_stride()) {
    const std::size_t r = i / n, c = i % n;
    y[i] = load_elem(table, static_cast<std::size_t>(rows[r]) * n + c, type);
  }
}

__global__ void rms_norm_kernel(const float* x, const float* gain, float* y, std::size_t rows,
                                std::size_t dim, float eps) {
  const std::size_t row = std::size_t{blockIdx.x} * kNormRowsPerBlock + threadIdx.x / 32;
  if (row >= rows) return;  // the whole warp: no barrier follows
  const unsigned lane = threadIdx.x % 32;
  const float* xr = x + row * dim;
  float* yr = y + row * dim;
  float sum = 0.0f;
  for (std::size_t i = lane; i < dim; i += 32) sum += xr[i] * xr[i];
  for (int offset = 16; offset > 0; offset /= 2) sum += __shfl_xor_sync(kFullMask, sum, offset);
  const float inv = rsqrtf(sum / static_cast<float>(dim) + eps);
  for (std::size_t i = lane; i < dim; i += 32) yr[i] = xr[i] * inv * gain[i];
}

__global__ void rope_kernel(float* x, const std::int64_t* positions, std::size_t rows, int heads,
                            int head_dim, const float* inv_freq, float scale) {
  const int half = head_dim / 2;
  const std::size_t total = rows * static_cast<std::size_t>(heads) * half;
  for (std::size_t i = global_index(); i < total; i += grid_stride()) {
    const int d = static_cast<int>(i % half);
    const std::size_t row_head = i / half;
    const std::size_t row = row_head / heads;
    const float angle = static_cast<float>(positions[row]) * inv_freq[d];
    const float c = cosf(angle) * scale, s = sinf(angle) * scale;
    float* v = x + row_head * head_dim;
    const float a = v[d], b = v[d + half];
    v[d] = a * c - b * s;
    v[d + half] = b * c + a * s;
  }
}

__global__ void silu_mul_kernel(float* gate, const float* up, std::size_t n) {
  for (std::size_t i = global_index(); i < n; i += grid_stride()) {
    const float g = gate[i];
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void add_bias_kernel(float* y, const float* bias, std::size_t rows, std::size_t n) {
  for (std::size_t i = global_index(); i < rows * n; i += grid_stride()) y[i] += bias[i % n];
}

__global__ void convert_kernel(const float* x, void* y, ElemType type, std::size_t n) {
  for (std::size_t i = global_index(); i < n; i += grid_stride()) store_elem(y, i, type, x[i]);
}

}  // namespace

cudaError_t launch_gather_rows(const void* table, ElemType type, const std::int32_t* rows,
                               std::size_t n_rows, std::size_t n, float* y, cudaStream_t stream) {
  if (n_rows == 0 || n == 0) return cudaSuccess;
  INFLLM_LAUNCH(grid_for(n_rows * n), kThreads, 0, stream, gather_rows_kernel)
  (table, type, rows, n_rows, n, y);
  return cudaGetLastError();
}

cudaError_t launch_rms_norm(const float* x, const float* gain, float* y, std::size_t rows,
                            std::size_t dim, float eps, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  const auto blocks = static_cast<unsigned>((rows + kNormRowsPerBlock - 1) / kNormRowsPerBlock);
  INFLLM_LAUNCH(blocks, 32 * kNormRowsPerBlock, 0, stream, rms_norm_kernel)
  (x, gain, y, rows, dim, eps);
  return cudaGetLastError();
}

cudaError_t launch_rope(float* x, const std::int64_t* positions, std::size_t rows, int heads,
                        int head_dim, const float* inv_freq, float scale, cudaStream_t stream) {
  const std::size_t total = rows * static_cast<std::size_t>(heads) * (head_dim / 2);
  if (total == 0) return cudaSuccess;
  INFLLM_LAUNCH(grid_for(total), kThreads, 0, stream, rope_kernel)
  (x, positions, rows, heads, head_dim, inv_freq, scale);
  return cudaGetLastError();
}

cudaError_t launch_silu_mul(float* gate, const float* up, std::size_t n, cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  INFLLM_LAUNCH(grid_for(n), kThreads, 0, stream, silu_mul_kernel)(gate, up, n);
  return cudaGetLastError();
}

cudaError_t launch_add_bias(float* y, const float* bias, std::size_t rows, std::size_t n,
                            cudaStream_t stream) {
  if (rows * n == 0) return cudaSuccess;
  INFLLM_LAUNCH(grid_for(rows * n), kThreads, 0, stream, add_bias_kernel)(y, bias, rows, n);
  return cudaGetLastError();
}

cudaError_t launch_convert(const float* x, void* y, ElemType type, std::size_t n,
                           cudaStream_t stream) {
  if (n == 0) return cudaSuccess;
  INFLLM_LAUNCH(grid_for(n), kThreads, 0, stream, convert_kernel)(x, y, type, n);
  return cudaGetLastError();
}

}  // namespace infllm::kernels
