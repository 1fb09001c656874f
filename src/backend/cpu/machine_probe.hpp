// machine_probe.hpp: what this machine can do at best, measured in the same run as a benchmark
// (STYLE.md: a benchmark shows the ratio it exists to show): sequential read bandwidth and
// OpenBLAS sgemm FLOP rate, on the threads the benchmark itself uses.
#pragma once

#include <cstddef>

namespace infllm::cpu {

// Sums `bytes` bytes at `base` as floats in independent lanes on `threads` threads (a
// STREAM-like read); returns the sum so the compiler keeps the reads.
double read_sum(const std::byte* base, std::size_t bytes, int threads);

// Best-of-`repeats` read bandwidth in GB/s (1e9 bytes/s) over a fresh buffer of `bytes` bytes.
double read_bandwidth_gbs(std::size_t bytes, int threads, int repeats = 5);

// Best-of-`repeats` OpenBLAS sgemm rate in GFLOP/s for n x n x n (2 n^3 flops).
double sgemm_gflops(int n, int repeats = 3);

}  // namespace infllm::cpu
