// device_buffer.hpp: device memory for kernel tests: a typed cudaMalloc'd buffer with copies to
// and from host vectors. The same code runs over CUDA on a GPU and over the CUDA-on-CPU layer.
#pragma once

#include <gtest/gtest.h>

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstring>
#include <vector>

namespace infllm::test {

template <class T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t n) : n_(n) {
    void* p = nullptr;
    const cudaError_t rc = cudaMalloc(&p, std::max<std::size_t>(n, 1) * sizeof(T));
    EXPECT_EQ(rc, cudaSuccess) << cudaGetErrorString(rc);
    data_ = static_cast<T*>(p);
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() { cudaFree(data_); }

  T* get() { return data_; }
  const T* get() const { return data_; }
  std::size_t size() const { return n_; }

  void upload(const std::vector<T>& host) {
    ASSERT_EQ(host.size(), n_);
    ASSERT_EQ(cudaMemcpy(data_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice), cudaSuccess);
  }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    EXPECT_EQ(cudaMemcpy(host.data(), data_, n_ * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
    return host;
  }
  // Every byte 0xff: NaN as f32, f16 and bf16, so an output the kernel fails to write shows.
  void poison() { ASSERT_EQ(cudaMemset(data_, 0xff, n_ * sizeof(T)), cudaSuccess); }

 private:
  std::size_t n_;
  T* data_ = nullptr;
};

}  // namespace infllm::test
