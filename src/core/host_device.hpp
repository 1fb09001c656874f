// host_device.hpp: INFLLM_HD marks functions usable from host and CUDA device code.
//
// Headers in src/core are shared with kernels/ (STYLE.md: one merge, one place); this macro is
// the only CUDA-aware line they need, so infllm_core still compiles with a plain C++ compiler.
#pragma once

#if defined(__CUDACC__)
#define INFLLM_HD __host__ __device__
#else
#define INFLLM_HD
#endif
