// cuda_compat.cuh: the one include of a kernel source. Under nvcc it is CUDA itself; under a host
// compiler it is kernels/emulation/cuda_on_cpu.hpp, which runs the same source on CPU threads
// for the unit tests. Two macros cover what plain C++ cannot spell:
//
//   INFLLM_LAUNCH(grid, block, shared_bytes, stream, kernel)(args...)
//       kernel<<<grid, block, shared_bytes, stream>>>(args...); the kernel comes last so that a
//       template's commas need no parentheses.
//   INFLLM_DYNAMIC_SHARED(type, name)
//       extern __shared__ type name[]: the launch's dynamic shared memory, 16-byte aligned.
//
// and one constant: INFLLM_GRID_STRIDE_BLOCKS, the most blocks a grid-stride kernel launches:
// 4096 on a GPU; 8 on CPU threads, where every block hands off between all of its OS threads
// twice (the loops cover the rest, so the same code runs with a fraction of the hand-offs).
#pragma once

#if defined(__CUDACC__)

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#define INFLLM_LAUNCH(grid, block, shared_bytes, stream, ...) \
  __VA_ARGS__<<<(grid), (block), (shared_bytes), (stream)>>>
#define INFLLM_DYNAMIC_SHARED(type, name) extern __shared__ __align__(16) type name[]
#define INFLLM_GRID_STRIDE_BLOCKS 4096

#else

#include "kernels/emulation/cuda_on_cpu.hpp"

#define INFLLM_LAUNCH(grid, block, shared_bytes, stream, ...)                                \
  ::cuda_on_cpu::make_call(                                                                  \
      ::cuda_on_cpu::launch_config((grid), (block), (shared_bytes), (stream), #__VA_ARGS__), \
      __VA_ARGS__)
#define INFLLM_DYNAMIC_SHARED(type, name) \
  type* name = reinterpret_cast<type*>(::cuda_on_cpu::context().dynamic_shared)
#define INFLLM_GRID_STRIDE_BLOCKS 8

#endif
