// require_cuda_device.cpp: linked into the `gpu` builds of the kernel tests (the same sources the
// CUDA-on-CPU layer runs in the unit tests, here over CUDA itself): every test skips, with the
// reason, where no CUDA device is visible.
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

namespace {

class RequireCudaDevice : public ::testing::Environment {
 public:
  void SetUp() override {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
      (void)cudaGetLastError();
      GTEST_SKIP() << "no CUDA device";
    }
  }
};

[[maybe_unused]] ::testing::Environment* const environment =
    ::testing::AddGlobalTestEnvironment(new RequireCudaDevice);

}  // namespace
