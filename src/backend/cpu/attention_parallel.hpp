// attention_parallel.hpp: a small persistent thread pool for the attention kernels.
//
// Decode MA runs once per layer per step, often over a few MB of KV: spawning std::threads per
// call would cost as much as the work for short contexts. The pool keeps cpu::threads() - 1
// workers between calls; the calling thread works too. Idle workers poll for the next call for
// 200 us before they sleep, since a decode step's calls come tens of microseconds apart and a
// wake-up costs as much. Items are handed out one at a time from an atomic counter, so uneven
// items (causal prefill rows, requests of different lengths) balance themselves.
#pragma once

#include <cstdint>
#include <functional>

namespace infllm::cpu {

// Runs fn(i) for every i in [0, n) on up to `threads` threads and returns when all are done.
// The first exception thrown by fn is rethrown here; on the pool the remaining items still run,
// inline (one thread, or one item) the exception ends the call. A call made while the pool is
// busy (from inside fn, or from another thread) runs its items on the calling thread alone.
void attention_parallel_for(std::int64_t n, int threads,
                            const std::function<void(std::int64_t)>& fn);

// Sends the pool's polling workers to sleep now instead of after their 200 us: called before
// the cores go to another thread pool (OpenBLAS), which the polling would slow down.
void attention_parallel_park();

}  // namespace infllm::cpu
