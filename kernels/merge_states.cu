// merge_states.cu: merge of partial attention states, one thread block per query head row; the
// threads of a block split head_dim. The scale factors come from core/attention_state.hpp, the
// same functions the CPU merge uses (STYLE.md: one merge, one place).
#include "core/attention_state.hpp"
#include "kernels/cuda_compat.cuh"
#include "kernels/merge_states.cuh"

namespace infllm::kernels {

namespace {

__global__ void merge_states_kernel(const float* o, const float* m, const float* l, int parts,
                                    std::int64_t rows, int head_dim, float* out) {
  const std::int64_t row = blockIdx.x;
  if (row >= rows) return;
  // Every thread computes the running (m, l) of the row; each keeps its own slice of o.
  float acc_m = -INFINITY, acc_l = 0.0f;
  for (int p = 0; p < parts; ++p) {
    const std::int64_t r = p * rows + row;
    const MergeScales s = merge_scales(acc_m, m[r]);
    acc_l = acc_l * s.scale_a + l[r] * s.scale_b;
    acc_m = s.m;
  }
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    float acc = 0.0f;
    for (int p = 0; p < parts; ++p) {
      const std::int64_t r = p * rows + row;
      // Each partition's weight relative to the final max: 2^(m_p - m), 0 for an empty one.
      acc += o[r * head_dim + d] * partition_scale(m[r], acc_m);
    }
    out[row * head_dim + d] = acc_l > 0.0f ? acc / acc_l : 0.0f;
  }
}

}  // namespace

cudaError_t launch_merge_states(const float* o, const float* m, const float* l, int parts,
                                std::int64_t rows, int head_dim, float* out, cudaStream_t stream) {
  if (rows == 0) return cudaSuccess;
  const int threads = head_dim < 128 ? 64 : 128;
  INFLLM_LAUNCH(static_cast<unsigned>(rows), threads, 0, stream, merge_states_kernel)
  (o, m, l, parts, rows, head_dim, out);
  return cudaGetLastError();
}

}  // namespace infllm::kernels
