// qmatmul.hpp: activations times a weight matrix kept in its GGUF quantized form (CPU).
//
// Batch-1 decode is a stream over the weights: y = x . W^T reads every weight once and does two
// flops with it. Keeping W in ggml's block formats (Q4_1: 20 bytes per 32 weights, Q8_0: 34)
// instead of expanding it to f32 at load cuts those bytes 4-6x. The kernels widen each block to
// f32 in registers and multiply it with activations in f32, so the result equals x . W^T with W
// from model::dequantize up to f32 rounding of the sums (no quantization of x):
//
//   Q4_1 block b of a row: [d f16][m f16][qs 16]; w[j] = d * (qs[j] & 0xF) + m,
//                          w[j + 16] = d * (qs[j] >> 4) + m          (j < 16)
//        dot(x_b, w_b) = d * dot(x_b, q_b) + m * sum(x_b)   (sum(x_b) precomputed per call)
//   Q8_0 block b:        [d f16][q int8 32]; w[j] = d * q[j]
//        dot(x_b, w_b) = d * dot(x_b, q_b)
//
// Each output row's bytes are read once per call for all m activation rows (m is small: the
// decode batch). Output rows are split in chunks over cpu::threads() threads.
#pragma once

#include <cstddef>
#include <cstdint>

namespace infllm::cpu {

enum class QuantType : std::uint8_t { kQ4_1, kQ8_0 };

// Bytes of one row of `cols` elements (cols a multiple of 32, InternalError otherwise):
// Q4_1 20 bytes per 32 elements, Q8_0 34.
std::size_t quant_row_bytes(QuantType type, std::int64_t cols);

// A weight matrix W (rows, cols) stored row by row in ggml's block format, rows contiguous
// (row i starts at data + i * quant_row_bytes(type, cols)). No alignment is assumed.
struct QuantMatrix {
  QuantType type = QuantType::kQ8_0;
  const std::byte* data = nullptr;
  std::int64_t rows = 0, cols = 0;
};

// Which implementation runs (tests pick; the model uses kAuto).
enum class QmatKernel : std::uint8_t {
  kAuto,      // the fastest this CPU supports
  kPortable,  // plain C++ (any CPU)
  kAvx2,      // x86-64 AVX2 + FMA + F16C intrinsics; InternalError if unsupported
};

// y (m, rows) = x (m, cols) . W^T, or y += x . W^T with `accumulate`. Row-major, dense:
// x[r * cols + k], y[r * rows + i]. x and y must not overlap. Misuse (cols not a positive
// multiple of 32, negative rows, null pointers when there is work) throws InternalError.
void qmatmul(const float* x, const QuantMatrix& w, float* y, std::size_t m, bool accumulate = false,
             QmatKernel kernel = QmatKernel::kAuto);

// The kernel kAuto picks on this CPU ("avx2" or "portable").
const char* qmat_auto_kernel_name();
bool qmat_kernel_supported(QmatKernel kernel);

}  // namespace infllm::cpu
