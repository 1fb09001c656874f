// machine_probe.cpp: see machine_probe.hpp.
#include "backend/cpu/machine_probe.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <numeric>
#include <vector>

#include "backend/cpu/attention_parallel.hpp"
#include "backend/cpu/blas.hpp"

namespace infllm::cpu {

namespace {
double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

double read_sum(const std::byte* base, std::size_t bytes, int threads) {
  // 1 MiB chunks handed out to the threads; 32 independent lanes per chunk let the compiler
  // vectorize and keep several loads in flight.
  constexpr std::size_t kChunk = std::size_t{1} << 20;
  const auto chunks = static_cast<std::int64_t>((bytes + kChunk - 1) / kChunk);
  std::vector<float> sums(static_cast<std::size_t>(chunks));
  attention_parallel_for(chunks, threads, [&](std::int64_t c) {
    const std::size_t begin = static_cast<std::size_t>(c) * kChunk;
    const std::size_t n = std::min(kChunk, bytes - begin) / sizeof(float);
    const auto* p = reinterpret_cast<const float*>(base + begin);
    constexpr int kLanes = 32;
    float acc[kLanes] = {};
    std::size_t i = 0;
    for (; i + kLanes <= n; i += kLanes) {
      for (int j = 0; j < kLanes; ++j) acc[j] += p[i + j];
    }
    sums[static_cast<std::size_t>(c)] = std::accumulate(acc, acc + kLanes, 0.0f);
  });
  return std::accumulate(sums.begin(), sums.end(), 0.0);
}

double read_bandwidth_gbs(std::size_t bytes, int threads, int repeats) {
  std::unique_ptr<std::byte[]> buf(new std::byte[bytes]);
  // Touch every page from the threads that will read it.
  attention_parallel_for(threads * 8, threads, [&](std::int64_t c) {
    const std::size_t per = (bytes + threads * 8 - 1) / (threads * 8);
    const std::size_t begin = std::min(bytes, static_cast<std::size_t>(c) * per);
    std::memset(buf.get() + begin, 1, std::min(bytes, begin + per) - begin);
  });
  double best = 1e30;
  volatile double sink = 0.0;
  for (int r = 0; r < repeats; ++r) {
    const double t0 = now_s();
    sink = sink + read_sum(buf.get(), bytes, threads);
    best = std::min(best, now_s() - t0);
  }
  return double(bytes) / best / 1e9;
}

double sgemm_gflops(int n, int repeats) {
  const std::size_t nn = static_cast<std::size_t>(n) * n;
  std::vector<float> a(nn, 0.5f), b(nn, 0.25f), c(nn);
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    const double t0 = now_s();
    matmul_wt(a.data(), b.data(), c.data(), n, n, n);
    best = std::min(best, now_s() - t0);
  }
  return 2.0 * double(n) * n * n / best / 1e9;
}

}  // namespace infllm::cpu
