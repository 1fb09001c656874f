// parallel_test.cpp: the kernels' thread pool (attention_parallel_for): every item runs exactly
// once on back-to-back calls (the workers poll between calls, or sleep when the cores are
// oversubscribed), across park(), after the workers went to sleep, with exceptions and nested
// calls.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

#include "backend/cpu/attention_parallel.hpp"
#include "backend/cpu/cpu_threads.hpp"

namespace infllm::cpu {
namespace {

// Runs n items on `threads` threads; each item counts its own runs.
std::vector<int> run_counts(std::int64_t n, int threads) {
  std::vector<std::atomic<int>> runs(static_cast<std::size_t>(n));
  attention_parallel_for(n, threads, [&](std::int64_t i) { runs[static_cast<std::size_t>(i)]++; });
  std::vector<int> out;
  for (auto& r : runs) out.push_back(r.load());
  return out;
}

TEST(ParallelFor, BackToBackCallsRunEveryItemOnce) {
  // Thousands of tiny calls in a row: the hand-over between polling workers and the caller,
  // with thread counts changing between calls (workers that sit a call out).
  for (int call = 0; call < 5000; ++call) {
    const std::int64_t n = 1 + call % 7;
    const int threads = 1 + call % 4;
    const std::vector<int> counts = run_counts(n, threads);
    for (std::int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(counts[static_cast<std::size_t>(i)], 1) << "call " << call << " item " << i;
    }
  }
}

TEST(ParallelFor, OversubscribedThreadsSleepInsteadOfPolling) {
  set_threads(2, available_cores());  // 2 threads for each core: oversubscribed
  EXPECT_FALSE(threads_may_poll());
  for (int call = 0; call < 500; ++call) {
    for (int c : run_counts(1 + call % 5, 2)) ASSERT_EQ(c, 1) << "call " << call;
  }
  set_threads(1, available_cores());
  EXPECT_TRUE(threads_may_poll());
  set_threads(2);
}

TEST(ParallelFor, UsesSeveralThreadsAndSurvivesParkAndSleep) {
  for (int round = 0; round < 3; ++round) {
    // Items that wait for each other can only finish if two threads run them at once.
    std::atomic<int> arrived{0};
    std::set<std::thread::id> ids;
    std::mutex ids_mutex;
    attention_parallel_for(2, 2, [&](std::int64_t) {
      {
        std::lock_guard<std::mutex> lock(ids_mutex);
        ids.insert(std::this_thread::get_id());
      }
      arrived++;
      const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
      while (arrived.load() < 2 && std::chrono::steady_clock::now() < until) {
        std::this_thread::yield();
      }
    });
    EXPECT_EQ(arrived.load(), 2);
    EXPECT_EQ(ids.size(), 2u) << "round " << round;
    if (round == 0) attention_parallel_park();  // workers sleep at once
    if (round == 1) std::this_thread::sleep_for(std::chrono::milliseconds(5));  // past polling
    const std::vector<int> counts = run_counts(64, 2);
    for (int c : counts) EXPECT_EQ(c, 1);
  }
}

TEST(ParallelFor, RethrowsTheFirstExceptionAfterRunningTheRest) {
  std::atomic<int> ran{0};
  EXPECT_THROW(attention_parallel_for(16, 2,
                                      [&](std::int64_t i) {
                                        ran++;
                                        if (i == 3) throw std::runtime_error("item 3");
                                      }),
               std::runtime_error);
  EXPECT_EQ(ran.load(), 16);
  // The pool is usable afterwards.
  for (int c : run_counts(8, 2)) EXPECT_EQ(c, 1);
}

TEST(ParallelFor, NestedCallsRunInline) {
  std::atomic<int> inner{0};
  attention_parallel_for(
      4, 2, [&](std::int64_t) { attention_parallel_for(3, 2, [&](std::int64_t) { inner++; }); });
  EXPECT_EQ(inner.load(), 12);
}

}  // namespace
}  // namespace infllm::cpu
