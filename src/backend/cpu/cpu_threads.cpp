// cpu_threads.cpp: see cpu_threads.hpp.
#include "backend/cpu/cpu_threads.hpp"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <thread>

#include <cblas.h>

namespace infllm::cpu {

namespace {
std::atomic<int> g_threads{0};
std::atomic<bool> g_poll{true};
}  // namespace

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

int default_threads_per_rank(int ranks_on_node) {
  return std::max(1, available_cores() / std::max(1, ranks_on_node));
}

void set_threads(int threads, int ranks_on_node) {
  threads = std::max(1, threads);
  g_threads.store(threads);
  g_poll.store(static_cast<long>(threads) * std::max(1, ranks_on_node) <= available_cores());
  openblas_set_num_threads(threads);
}

bool threads_may_poll() { return g_poll.load(); }

int threads() {
  const int t = g_threads.load();
  return t > 0 ? t : available_cores();
}

}  // namespace infllm::cpu
