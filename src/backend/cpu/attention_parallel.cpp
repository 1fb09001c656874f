// attention_parallel.cpp: see attention_parallel.hpp.
#include "backend/cpu/attention_parallel.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

#include "backend/cpu/cpu_threads.hpp"

namespace infllm::cpu {

namespace {

// How long an idle thread keeps polling before it sleeps: a decode step makes a few hundred
// parallel calls a few tens of microseconds apart, and waking a sleeping thread costs about as
// much as one call's work on a VM (futex wake plus scheduling), so the workers spin between
// calls and sleep only between steps. The OpenMP runtimes do the same (GOMP_SPINCOUNT,
// KMP_BLOCKTIME).
constexpr auto kSpin = std::chrono::microseconds(200);

// Polls `done` with a pause between reads until it holds (true), or until kSpin has passed or
// `give_up` holds (false, unless `done` holds by then).
template <typename Pred, typename GiveUp>
bool spin_until(Pred done, GiveUp give_up) {
  const auto until = std::chrono::steady_clock::now() + kSpin;
  for (;;) {
    for (int i = 0; i < 64; ++i) {
      if (done()) return true;
#if defined(__x86_64__) || defined(__i386__)
      __builtin_ia32_pause();
#endif
    }
    if (give_up() || std::chrono::steady_clock::now() >= until) return done();
  }
}

// True on a thread while it runs a job's items (the caller or a worker).
thread_local bool t_in_pool = false;
struct InPool {
  InPool() { t_in_pool = true; }
  ~InPool() { t_in_pool = false; }
  InPool(const InPool&) = delete;
  InPool& operator=(const InPool&) = delete;
};

class Pool {
 public:
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stop_.store(true);
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }

  void park() { park_.fetch_add(1); }

  void run(std::int64_t n, int threads, const std::function<void(std::int64_t)>& fn) {
    // A call from inside an item (this thread already runs the pool's items) or while another
    // thread owns the pool runs inline. The first case must not reach try_lock: locking a mutex
    // this thread holds is undefined.
    if (t_in_pool || threads <= 1 || n <= 1) {
      run_inline(n, fn);
      return;
    }
    std::unique_lock<std::mutex> busy(busy_, std::try_to_lock);
    if (!busy.owns_lock()) {
      run_inline(n, fn);
      return;
    }
    const InPool in_pool;
    const int helpers = static_cast<int>(std::min<std::int64_t>(threads, n)) - 1;
    while (static_cast<int>(workers_.size()) < helpers) {
      const int id = static_cast<int>(workers_.size());
      workers_.emplace_back([this, id] { worker(id); });
    }
    {
      // The job's fields are written before job_ is released: a worker that sees the new job,
      // polling or woken, sees them too. The generation and the helper count are one word, so
      // that a polling worker never pairs the last job's generation with the next one's count.
      std::lock_guard<std::mutex> lock(mutex_);
      fn_ = &fn;
      n_ = n;
      next_.store(0);
      pending_.store(helpers);
      error_ = nullptr;
      const std::uint64_t generation = (job_.load() >> kGenerationShift) + 1;
      job_.store(generation << kGenerationShift | static_cast<std::uint64_t>(helpers),
                 std::memory_order_release);
    }
    wake_.notify_all();
    work();
    if (!threads_may_poll() ||
        !spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; },
                    [] { return false; })) {
      std::unique_lock<std::mutex> lock(mutex_);
      done_.wait(lock, [this] { return pending_.load() == 0; });
    }
    std::lock_guard<std::mutex> lock(mutex_);
    fn_ = nullptr;
    if (error_) std::rethrow_exception(error_);
  }

 private:
  static void run_inline(std::int64_t n, const std::function<void(std::int64_t)>& fn) {
    for (std::int64_t i = 0; i < n; ++i) fn(i);
  }

  // Takes items until none are left; records the first exception.
  void work() {
    for (std::int64_t i = next_.fetch_add(1); i < n_; i = next_.fetch_add(1)) {
      try {
        (*fn_)(i);
      } catch (...) {
        std::lock_guard<std::mutex> lock(mutex_);
        if (!error_) error_ = std::current_exception();
      }
    }
  }

  void worker(int id) {
    std::uint64_t seen = 0;  // the generation of the last job this worker ran
    std::uint64_t job = 0;   // the job word last read
    // A job for this worker: a generation it has not run, needing at least id + 1 helpers.
    // Only the first `helpers` workers join a job; the others wait through it.
    const auto mine = [&] {
      job = job_.load(std::memory_order_acquire);
      return (job >> kGenerationShift) != seen &&
             static_cast<std::uint64_t>(id) < (job & kHelpersMask);
    };
    const InPool in_pool;
    // park() calls since this worker's last job: a park that comes while it works (the caller
    // may return and park before this worker is back to polling) still sends it to sleep.
    std::uint64_t parked = park_.load();
    for (;;) {
      if (!threads_may_poll() || !spin_until([&] { return stop_.load() || mine(); },
                                             [&] { return park_.load() != parked; })) {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stop_.load() || mine(); });
      }
      if (stop_.load()) return;
      seen = job >> kGenerationShift;
      parked = park_.load();
      work();
      if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        // The caller may have stopped polling: wake it under the mutex, so that it either sees
        // pending_ == 0 before it waits or is waiting when this notifies.
        std::lock_guard<std::mutex> lock(mutex_);
        done_.notify_one();
      }
    }
  }

  std::mutex busy_;  // held by the one run() that owns the workers
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  std::vector<std::thread> workers_;
  const std::function<void(std::int64_t)>* fn_ = nullptr;
  std::int64_t n_ = 0;
  std::atomic<std::int64_t> next_{0};
  std::atomic<int> pending_{0};
  // The current job: its generation (counting from 1) above kGenerationShift, its helper count
  // below.
  static constexpr int kGenerationShift = 16;
  static constexpr std::uint64_t kHelpersMask = (std::uint64_t{1} << kGenerationShift) - 1;
  std::atomic<std::uint64_t> job_{0};
  std::atomic<bool> stop_{false};
  std::atomic<std::uint64_t> park_{0};  // bumped by park(): polling workers go to sleep
  std::exception_ptr error_;
};

Pool& pool() {
  static Pool p;
  return p;
}

}  // namespace

void attention_parallel_for(std::int64_t n, int threads,
                            const std::function<void(std::int64_t)>& fn) {
  pool().run(n, threads, fn);
}

void attention_parallel_park() { pool().park(); }

}  // namespace infllm::cpu
