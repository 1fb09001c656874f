// cuda_on_cpu.hpp: the host compiler's stand-in for nvcc, so that the CUDA C++ sources in
// kernels/ compile with g++ and run on CPU threads in the unit tests.
//
// No maintained emulator runs CUDA C++ on a CPU with CUDA 13's headers, so this layer gives the
// kernels what they use and nothing more, with CUDA's semantics made strict:
//
//   threads    one OS thread per CUDA thread of a block; the blocks of a grid run in turn,
//              x fastest, each on the same threads; one launch at a time in the process.
//   __shared__ `static`: blocks run in turn, so one copy serves every block of a launch.
//              Dynamic shared memory is INFLLM_DYNAMIC_SHARED (kernels/cuda_compat.cuh).
//   barriers   __syncthreads is a std::barrier over the block, __syncwarp and the __shfl*_sync
//              family a std::barrier over the warp. Each records what every thread arrived for:
//              a thread that returned while others wait at a barrier, a mask that leaves out a
//              lane of the warp, or two different operations in one phase abort the process
//              with the kernel's name and the block (what hangs or corrupts on a GPU fails here).
//   atomics    std::atomic_ref on the addressed object.
//   fp16/bf16  CUDA's own cuda_fp16.h and cuda_bf16.h, whose host conversions are exact.
//   runtime    the part of the CUDA runtime API the backend calls (cudaMalloc, cudaMemcpy, ...),
//              defined here with cuda_runtime_api.h's signatures: "device memory" is host memory
//              the layer allocated and tracks, and cudaMemcpy checks each side against the kind.
//
// Link this layer instead of CUDA::cudart, never both. Streams are accepted and ignored: every
// call completes before it returns.
#pragma once

#if defined(__CUDACC__)
#error "cuda_on_cpu.hpp stands in for nvcc; include kernels/cuda_compat.cuh instead"
#endif

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>

#include <atomic>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

// CUDA's host_defines.h turns these into GNU attributes g++ does not know; here they are plain
// C++ (a kernel is an ordinary function, shared memory a static).
#undef __global__
#undef __device__
#undef __host__
#undef __shared__
#undef __forceinline__
#undef __launch_bounds__
#undef __noinline__
#define __global__
#define __device__
#define __host__
#define __shared__ static
#define __forceinline__ inline
#define __noinline__
#define __launch_bounds__(...)

namespace cuda_on_cpu {

class Warp;
class Block;

// What a CUDA thread asks of its surroundings: its indices and its warp and block.
struct ThreadContext {
  uint3 thread_idx{};
  uint3 block_idx{};
  dim3 block_dim;
  dim3 grid_dim;
  unsigned tid = 0;   // linear index within the block (x fastest)
  unsigned lane = 0;  // tid % 32
  Warp* warp = nullptr;
  Block* block = nullptr;
  std::byte* dynamic_shared = nullptr;
};

// The calling thread's context; aborts outside a kernel (a device function called from the host).
ThreadContext& context();

void syncthreads();
void syncwarp(unsigned mask);

enum class ShuffleKind : std::uint8_t { kIndex, kXor, kDown, kUp };
// The warp-wide exchange behind __shfl*_sync: every lane of the warp must call it together with
// a mask naming every lane of the warp.
std::uint64_t shuffle(unsigned mask, std::uint64_t bits, ShuffleKind kind, int arg, int width);

template <class T>
T shuffle_as(unsigned mask, T value, ShuffleKind kind, int arg, int width) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8, "shuffle of a wide type");
  std::uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  bits = shuffle(mask, bits, kind, arg, width);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

struct LaunchConfig {
  dim3 grid;
  dim3 block;
  std::size_t shared_bytes = 0;
  cudaStream_t stream = nullptr;
  const char* name = "";
};

inline LaunchConfig launch_config(dim3 grid, dim3 block, std::size_t shared_bytes,
                                  cudaStream_t stream, const char* name) {
  return LaunchConfig{grid, block, shared_bytes, stream, name};
}

// Runs body once per CUDA thread of the grid. An invalid configuration runs nothing and becomes
// the error cudaGetLastError returns, as with <<<...>>>.
void run_grid(const LaunchConfig& config, const std::function<void()>& body);

// True when [p, p + bytes) lies inside one allocation of cudaMalloc (tests check where a backend
// put its buffers).
bool is_device_memory(const void* p, std::size_t bytes);

// kernel<<<grid, block, shared, stream>>>(args...) as INFLLM_LAUNCH(...)(args...): the
// arguments are converted to the kernel's parameter types once, as a launch copies them.
template <class... Params>
struct KernelCall {
  LaunchConfig config;
  void (*kernel)(Params...);

  template <class... Args>
  void operator()(Args&&... args) const {
    static_assert(sizeof...(Args) == sizeof...(Params), "kernel launched with wrong arity");
    const std::tuple<std::decay_t<Params>...> values(std::forward<Args>(args)...);
    run_grid(config, [&] { std::apply(kernel, values); });
  }
};

template <class... Params>
KernelCall<Params...> make_call(const LaunchConfig& config, void (*kernel)(Params...)) {
  return KernelCall<Params...>{config, kernel};
}

}  // namespace cuda_on_cpu

#define threadIdx (::cuda_on_cpu::context().thread_idx)
#define blockIdx (::cuda_on_cpu::context().block_idx)
#define blockDim (::cuda_on_cpu::context().block_dim)
#define gridDim (::cuda_on_cpu::context().grid_dim)
#define warpSize 32

inline void __syncthreads() { ::cuda_on_cpu::syncthreads(); }
inline void __syncwarp(unsigned mask = 0xffffffffu) { ::cuda_on_cpu::syncwarp(mask); }

template <class T>
T __shfl_sync(unsigned mask, T value, int src_lane, int width = 32) {
  return ::cuda_on_cpu::shuffle_as(mask, value, ::cuda_on_cpu::ShuffleKind::kIndex, src_lane,
                                   width);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T value, int lane_mask, int width = 32) {
  return ::cuda_on_cpu::shuffle_as(mask, value, ::cuda_on_cpu::ShuffleKind::kXor, lane_mask, width);
}
template <class T>
T __shfl_down_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  return ::cuda_on_cpu::shuffle_as(mask, value, ::cuda_on_cpu::ShuffleKind::kDown,
                                   static_cast<int>(delta), width);
}
template <class T>
T __shfl_up_sync(unsigned mask, T value, unsigned delta, int width = 32) {
  return ::cuda_on_cpu::shuffle_as(mask, value, ::cuda_on_cpu::ShuffleKind::kUp,
                                   static_cast<int>(delta), width);
}

template <class T>
T atomicAdd(T* address, T value) {
  return std::atomic_ref<T>(*address).fetch_add(value);
}
template <class T>
T atomicExch(T* address, T value) {
  return std::atomic_ref<T>(*address).exchange(value);
}
template <class T>
T atomicCAS(T* address, T expected, T desired) {
  std::atomic_ref<T>(*address).compare_exchange_strong(expected, desired);
  return expected;
}
template <class T>
T atomicMax(T* address, T value) {
  std::atomic_ref<T> ref(*address);
  T old = ref.load();
  while (old < value && !ref.compare_exchange_weak(old, value)) {
  }
  return old;
}
template <class T>
T atomicMin(T* address, T value) {
  std::atomic_ref<T> ref(*address);
  T old = ref.load();
  while (value < old && !ref.compare_exchange_weak(old, value)) {
  }
  return old;
}

// Device math the kernels use that the C library lacks.
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __expf(float x) { return std::exp(x); }
inline float __fdividef(float a, float b) { return a / b; }
template <class T>
T __ldg(const T* p) {
  return *p;
}
