// cuda_check.cpp: see cuda_check.hpp.
#include "backend/cuda/cuda_check.hpp"

#include <unistd.h>

#include <sstream>

#include "backend/cuda/cuda_device.hpp"
#include "core/errors.hpp"

namespace infllm::cuda {

void cuda_fail(cudaError_t code, const char* call, const char* file, int line) {
  char host[256] = "?";
  gethostname(host, sizeof(host) - 1);
  std::ostringstream os;
  os << "host " << host << ' ' << file << ':' << line << ' ' << call << ": "
     << cudaGetErrorString(code);
  throw InternalError(os.str());
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no driver" error
    return 0;
  }
  return n;
}

}  // namespace infllm::cuda
