// cuda_device.hpp: what CUDA devices this process sees, and the library versions it runs with.
#pragma once

#include <string>

namespace infllm::cuda {

// Number of usable CUDA devices; 0 when there is no driver or no device (never throws). Defined
// in cuda_check.cpp, so the CUDA-on-CPU build has it too (one emulated device).
int device_count();

// One line: device 0's name, compute capability and memory, plus the CUDA runtime, cuBLAS and
// NCCL versions. Requires device_count() > 0.
std::string describe_device(int device);

}  // namespace infllm::cuda
