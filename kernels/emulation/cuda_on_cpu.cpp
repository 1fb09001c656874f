// cuda_on_cpu.cpp: see cuda_on_cpu.hpp. The launch engine (threads, checked barriers, warp
// exchanges) and the CUDA runtime calls the backend makes, over tracked host memory.
#include "kernels/emulation/cuda_on_cpu.hpp"

#include <barrier>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <semaphore>
#include <string>
#include <thread>
#include <vector>

namespace cuda_on_cpu {

namespace {

thread_local ThreadContext* tls_context = nullptr;
thread_local cudaError_t tls_last_error = cudaSuccess;
// One launch at a time: static __shared__ variables are one copy per process.
std::mutex launch_mutex;
const char* current_kernel = "";

[[noreturn]] void fail(const std::string& what) {
  std::fprintf(stderr, "cuda_on_cpu: kernel %s: %s\n", current_kernel, what.c_str());
  std::fflush(stderr);
  std::abort();
}

std::string block_name(const uint3& b) {
  return "block (" + std::to_string(b.x) + "," + std::to_string(b.y) + "," + std::to_string(b.z) +
         ")";
}

enum class Op : std::uint8_t { kSyncthreads, kSyncwarp, kShuffleWrite, kShuffleRead, kExit };

const char* op_name(Op op) {
  switch (op) {
    case Op::kSyncthreads:
      return "__syncthreads";
    case Op::kSyncwarp:
      return "__syncwarp";
    case Op::kShuffleWrite:
    case Op::kShuffleRead:
      return "__shfl*_sync";
    case Op::kExit:
      return "return";
  }
  return "?";
}

// A std::barrier that knows what each member arrived for. A phase is either every remaining
// member leaving the kernel, or every member (none gone) doing the same operation with a mask
// that names all of them; anything else aborts the process.
class CheckedBarrier {
 public:
  CheckedBarrier(int members, const char* scope, uint3 block)
      : scope_(scope),
        block_(block),
        ops_(static_cast<std::size_t>(members)),
        masks_(static_cast<std::size_t>(members)),
        arrived_(static_cast<std::size_t>(members)),
        gone_(static_cast<std::size_t>(members)),
        barrier_(members, Completion{this}) {}

  void arrive_and_wait(unsigned member, Op op, unsigned mask) {
    ops_[member] = op;
    masks_[member] = mask;
    arrived_[member] = 1;
    barrier_.arrive_and_wait();
  }
  // The member returned from the kernel: it counts in this phase and in none after.
  void leave(unsigned member) {
    ops_[member] = Op::kExit;
    arrived_[member] = 1;
    barrier_.arrive_and_drop();
  }

 private:
  struct Completion {
    CheckedBarrier* self;
    void operator()() noexcept { self->check(); }
  };

  void check() noexcept {
    const std::size_t n = ops_.size();
    bool any_exit = false, any_other = false;
    std::size_t first = n;
    for (std::size_t i = 0; i < n; ++i) {
      if (!arrived_[i]) continue;
      if (first == n) first = i;
      (ops_[i] == Op::kExit ? any_exit : any_other) = true;
    }
    if (any_exit && any_other) {
      std::size_t waiting = first;
      while (ops_[waiting] == Op::kExit) ++waiting;
      std::size_t gone = first;
      while (ops_[gone] != Op::kExit) ++gone;
      fail(block_name(block_) + ": " + scope_ + " thread " + std::to_string(gone) +
           " returned while thread " + std::to_string(waiting) + " waits at " +
           op_name(ops_[waiting]));
    }
    if (any_other) {
      const unsigned all = n >= 32 ? 0xffffffffu : (1u << n) - 1u;
      for (std::size_t i = 0; i < n; ++i) {
        if (!arrived_[i] || gone_[i]) {
          fail(block_name(block_) + ": " + op_name(ops_[first]) + " in " + scope_ +
               " without thread " + std::to_string(i) + (gone_[i] ? ", which returned" : ""));
        }
        if (ops_[i] != ops_[first]) {
          fail(block_name(block_) + ": " + scope_ + " threads " + std::to_string(first) + " and " +
               std::to_string(i) + " meet at different operations (" + op_name(ops_[first]) + ", " +
               op_name(ops_[i]) + ")");
        }
        if (ops_[i] != Op::kSyncthreads && (masks_[i] & all) != all) {
          fail(block_name(block_) + ": " + op_name(ops_[i]) + " with mask " +
               std::to_string(masks_[i]) + " in " + scope_ +
               ": every lane of the warp must take part");
        }
      }
    }
    for (std::size_t i = 0; i < n; ++i) {
      if (arrived_[i] && ops_[i] == Op::kExit) gone_[i] = 1;
      arrived_[i] = 0;
    }
  }

  std::string scope_;
  uint3 block_;
  std::vector<Op> ops_;
  std::vector<unsigned> masks_;
  std::vector<char> arrived_;
  std::vector<char> gone_;
  std::barrier<Completion> barrier_;
};

}  // namespace

class Warp {
 public:
  Warp(int lanes, uint3 block) : lanes_(lanes), barrier_(lanes, "warp", block) {}
  int lanes() const { return lanes_; }
  CheckedBarrier& barrier() { return barrier_; }
  std::uint64_t value(int lane) const { return values_[static_cast<std::size_t>(lane)]; }
  void set_value(int lane, std::uint64_t bits) { values_[static_cast<std::size_t>(lane)] = bits; }

 private:
  int lanes_;
  CheckedBarrier barrier_;
  std::uint64_t values_[32] = {};
};

class Block {
 public:
  Block(unsigned threads, uint3 index)
      : index_(index), barrier_(static_cast<int>(threads), "block", index) {
    for (unsigned first = 0; first < threads; first += 32) {
      const int lanes = static_cast<int>(std::min(32u, threads - first));
      warps_.push_back(std::make_unique<Warp>(lanes, index));
    }
  }
  uint3 index() const { return index_; }
  CheckedBarrier& barrier() { return barrier_; }
  Warp* warp(unsigned tid) { return warps_[tid / 32].get(); }

 private:
  uint3 index_;
  CheckedBarrier barrier_;
  std::vector<std::unique_ptr<Warp>> warps_;
};

ThreadContext& context() {
  if (tls_context == nullptr)
    fail("a device built-in (threadIdx, __syncthreads, ...) used outside a kernel");
  return *tls_context;
}

void syncthreads() {
  ThreadContext& c = context();
  c.block->barrier().arrive_and_wait(c.tid, Op::kSyncthreads, 0xffffffffu);
}

void syncwarp(unsigned mask) {
  ThreadContext& c = context();
  c.warp->barrier().arrive_and_wait(c.lane, Op::kSyncwarp, mask);
}

std::uint64_t shuffle(unsigned mask, std::uint64_t bits, ShuffleKind kind, int arg, int width) {
  ThreadContext& c = context();
  if (width <= 0 || width > 32 || (width & (width - 1)) != 0) {
    fail(block_name(c.block->index()) + ": shuffle width " + std::to_string(width) +
         " is not a power of two up to 32");
  }
  Warp& w = *c.warp;
  const int lane = static_cast<int>(c.lane);
  w.set_value(lane, bits);
  w.barrier().arrive_and_wait(c.lane, Op::kShuffleWrite, mask);
  // CUDA's rules: lanes form groups of `width`; a source outside the caller's group (down, up)
  // leaves the caller's own value, an index wraps within the group.
  const int group = lane & ~(width - 1);
  int src = lane;
  switch (kind) {
    case ShuffleKind::kIndex:
      src = group + (arg & (width - 1));
      break;
    case ShuffleKind::kXor:
      src = lane ^ arg;
      if ((src & ~(width - 1)) != group) src = lane;
      break;
    case ShuffleKind::kDown:
      src = lane + arg;
      if (src >= group + width) src = lane;
      break;
    case ShuffleKind::kUp:
      src = lane - arg;
      if (src < group) src = lane;
      break;
  }
  const std::uint64_t out = src < w.lanes() ? w.value(src) : bits;
  w.barrier().arrive_and_wait(c.lane, Op::kShuffleRead, mask);
  return out;
}

namespace {

cudaError_t check_config(const LaunchConfig& config) {
  const dim3& b = config.block;
  const dim3& g = config.grid;
  const std::uint64_t threads = std::uint64_t{b.x} * b.y * b.z;
  if (threads == 0 || threads > 1024 || b.z > 64 || g.x == 0 || g.y == 0 || g.z == 0 ||
      g.x > 0x7fffffffu || g.y > 65535 || g.z > 65535) {
    return cudaErrorInvalidConfiguration;
  }
  // The default limit of dynamic shared memory without cudaFuncSetAttribute.
  if (config.shared_bytes > 48 * 1024) return cudaErrorInvalidValue;
  return cudaSuccess;
}

}  // namespace

namespace {

// One launch as its threads see it. The blocks follow each other through one barrier phase: its
// completion (run by the last thread to arrive, before any leaves) sets up the next block.
struct Launch {
  struct NextBlock {
    Launch* launch;
    void operator()() noexcept { launch->next(); }
  };

  const LaunchConfig* config = nullptr;
  const std::function<void()>* body = nullptr;
  unsigned threads = 0;
  std::byte* dynamic_shared = nullptr;
  std::size_t dynamic_bytes = 0;
  std::unique_ptr<Block> block;  // the block running now
  std::uint64_t index = 0;       // its linear index, x fastest
  bool done = false;
  std::unique_ptr<std::barrier<NextBlock>> between;

  void start() {
    index = 0;
    set_up_block();
  }
  void next() noexcept {
    const dim3 g = config->grid;
    if (++index == std::uint64_t{g.x} * g.y * g.z) {
      done = true;
      block.reset();
      return;
    }
    set_up_block();
  }
  void set_up_block() noexcept {
    const dim3 g = config->grid;
    const auto x = static_cast<unsigned>(index % g.x);
    const auto y = static_cast<unsigned>((index / g.x) % g.y);
    const auto z = static_cast<unsigned>(index / (std::uint64_t{g.x} * g.y));
    block = std::make_unique<Block>(threads, uint3{x, y, z});
    // Shared memory holds garbage at a block's start on a GPU: here NaN (0xff bytes).
    std::memset(dynamic_shared, 0xff, dynamic_bytes);
  }
};

// The OS threads that play CUDA threads, kept between launches (creating a block's threads for
// every launch costs more than most test kernels). Thread t plays thread t of every launch whose
// blocks have more than t threads; the pool grows to the largest block launched.
class WorkerPool {
 public:
  ~WorkerPool() {
    shutdown_ = true;
    for (auto& w : wake_) w->release();
    for (std::thread& t : workers_) t.join();
  }

  // Runs every block of `launch` in turn on workers 0 .. launch.threads - 1 (only they are
  // woken); returns when none of them touches the launch any more.
  void run(Launch& launch) {
    while (workers_.size() < launch.threads) {
      const auto tid = static_cast<unsigned>(workers_.size());
      wake_.push_back(std::make_unique<std::binary_semaphore>(0));
      // The worker gets its semaphore, not the vector, which grows while it starts.
      workers_.emplace_back([this, tid, wake = wake_.back().get()] { work(tid, *wake); });
    }
    launch_ = &launch;
    {
      std::lock_guard lock(mutex_);
      busy_ = launch.threads;
    }
    launch.start();
    for (unsigned t = 0; t < launch.threads; ++t) wake_[t]->release();
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [&] { return busy_ == 0; });
    launch_ = nullptr;
  }

 private:
  void work(unsigned tid, std::binary_semaphore& wake) {
    for (;;) {
      wake.acquire();  // released for a launch with more than tid threads, or shutdown
      if (shutdown_) return;
      play(tid, *launch_);
      std::lock_guard lock(mutex_);
      if (--busy_ == 0) idle_.notify_all();
    }
  }

  static void play(unsigned tid, Launch& launch) {
    const dim3 bd = launch.config->block;
    ThreadContext c;
    c.tid = tid;
    c.lane = tid % 32;
    c.thread_idx = uint3{tid % bd.x, (tid / bd.x) % bd.y, tid / (bd.x * bd.y)};
    c.block_dim = bd;
    c.grid_dim = launch.config->grid;
    c.dynamic_shared = launch.dynamic_shared;
    tls_context = &c;
    while (!launch.done) {
      c.block = launch.block.get();
      c.block_idx = c.block->index();
      c.warp = c.block->warp(tid);
      try {
        (*launch.body)();
      } catch (const std::exception& e) {
        fail(block_name(c.block_idx) + ": thread " + std::to_string(tid) + " threw: " + e.what());
      } catch (...) {
        fail(block_name(c.block_idx) + ": thread " + std::to_string(tid) + " threw");
      }
      c.warp->barrier().leave(c.lane);
      c.block->barrier().leave(tid);
      launch.between->arrive_and_wait();  // the last to arrive sets up the next block
    }
    tls_context = nullptr;
  }

  std::mutex mutex_;
  std::condition_variable idle_;
  // workers_ and wake_ grow only in run(), under the launch mutex; a worker touches only its
  // own semaphore.
  std::vector<std::thread> workers_;
  std::vector<std::unique_ptr<std::binary_semaphore>> wake_;
  Launch* launch_ = nullptr;  // set before the workers are released, which orders it for them
  unsigned busy_ = 0;
  std::atomic<bool> shutdown_{false};
};

}  // namespace

void run_grid(const LaunchConfig& config, const std::function<void()>& body) {
  if (const cudaError_t rc = check_config(config); rc != cudaSuccess) {
    tls_last_error = rc;
    return;
  }
  std::lock_guard lock(launch_mutex);
  static WorkerPool pool;
  current_kernel = config.name;
  const dim3 bd = config.block;
  Launch launch;
  launch.config = &config;
  launch.body = &body;
  launch.threads = bd.x * bd.y * bd.z;
  std::vector<std::byte> dynamic_shared(config.shared_bytes + 16);
  launch.dynamic_shared = dynamic_shared.data();
  launch.dynamic_bytes = dynamic_shared.size();
  launch.between = std::make_unique<std::barrier<Launch::NextBlock>>(
      static_cast<std::ptrdiff_t>(launch.threads), Launch::NextBlock{&launch});
  pool.run(launch);
  current_kernel = "";
}

// ---- device memory: host allocations the layer tracks, so that copies can check their kind ----

namespace {

struct Allocations {
  std::mutex mutex;
  std::map<std::uintptr_t, std::size_t> device;      // start -> bytes
  std::map<std::uintptr_t, std::size_t> registered;  // cudaHostRegister'd host memory
};

Allocations& allocations() {
  static Allocations a;
  return a;
}

// True when [p, p + bytes) lies inside one device allocation.
bool is_device(const void* p, std::size_t bytes) {
  Allocations& a = allocations();
  std::lock_guard lock(a.mutex);
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  auto it = a.device.upper_bound(addr);
  if (it == a.device.begin()) return false;
  --it;
  return addr >= it->first && addr + bytes <= it->first + it->second;
}

// True when [p, p + bytes) touches no device allocation.
bool is_host(const void* p, std::size_t bytes) {
  Allocations& a = allocations();
  std::lock_guard lock(a.mutex);
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  auto it = a.device.upper_bound(addr + (bytes == 0 ? 0 : bytes - 1));
  if (it == a.device.begin()) return true;
  --it;
  return it->first + it->second <= addr;
}

cudaError_t record(cudaError_t rc) {
  if (rc != cudaSuccess) tls_last_error = rc;
  return rc;
}

}  // namespace

bool is_device_memory(const void* p, std::size_t bytes) { return is_device(p, bytes); }

}  // namespace cuda_on_cpu

using cuda_on_cpu::is_device;
using cuda_on_cpu::is_host;
using cuda_on_cpu::record;

cudaError_t cudaMalloc(void** ptr, size_t size) {
  if (ptr == nullptr) return record(cudaErrorInvalidValue);
  // 256-byte aligned like cudaMalloc, never null, filled with 0xff (NaN as f32 or bf16) so that
  // a kernel reading what nobody wrote sees NaN.
  const std::size_t bytes = (std::max<std::size_t>(size, 1) + 255) / 256 * 256;
  void* p = std::aligned_alloc(256, bytes);
  if (p == nullptr) return record(cudaErrorMemoryAllocation);
  std::memset(p, 0xff, bytes);
  auto& a = cuda_on_cpu::allocations();
  std::lock_guard lock(a.mutex);
  a.device[reinterpret_cast<std::uintptr_t>(p)] = size;
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cudaFree(void* ptr) {
  if (ptr == nullptr) return cudaSuccess;
  auto& a = cuda_on_cpu::allocations();
  {
    std::lock_guard lock(a.mutex);
    auto it = a.device.find(reinterpret_cast<std::uintptr_t>(ptr));
    if (it == a.device.end()) return record(cudaErrorInvalidValue);
    a.device.erase(it);
  }
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMallocHost(void** ptr, size_t size) {
  if (ptr == nullptr) return record(cudaErrorInvalidValue);
  *ptr = std::aligned_alloc(256, (std::max<std::size_t>(size, 1) + 255) / 256 * 256);
  return *ptr == nullptr ? record(cudaErrorMemoryAllocation) : cudaSuccess;
}

cudaError_t cudaFreeHost(void* ptr) {
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  if (count == 0) return cudaSuccess;
  bool ok = true;
  switch (kind) {
    case cudaMemcpyHostToDevice:
      ok = is_device(dst, count) && is_host(src, count);
      break;
    case cudaMemcpyDeviceToHost:
      ok = is_host(dst, count) && is_device(src, count);
      break;
    case cudaMemcpyDeviceToDevice:
      ok = is_device(dst, count) && is_device(src, count);
      break;
    case cudaMemcpyHostToHost:
      ok = is_host(dst, count) && is_host(src, count);
      break;
    case cudaMemcpyDefault:
      break;
  }
  if (!ok) return record(cudaErrorInvalidValue);
  std::memmove(dst, src, count);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  (void)stream;
  return cudaMemcpy(dst, src, count, kind);
}

cudaError_t cudaMemset(void* ptr, int value, size_t count) {
  if (count == 0) return cudaSuccess;
  if (!is_device(ptr, count)) return record(cudaErrorInvalidValue);
  std::memset(ptr, value, count);
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* ptr, int value, size_t count, cudaStream_t stream) {
  (void)stream;
  return cudaMemset(ptr, value, count);
}

cudaError_t cudaGetLastError(void) {
  const cudaError_t rc = cuda_on_cpu::tls_last_error;
  cuda_on_cpu::tls_last_error = cudaSuccess;
  return rc;
}

cudaError_t cudaPeekAtLastError(void) { return cuda_on_cpu::tls_last_error; }

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    default:
      return "cudaError (cuda_on_cpu: unnamed)";
  }
}

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    default:
      return "unknown error (cuda_on_cpu)";
  }
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  if (stream == nullptr) return record(cudaErrorInvalidValue);
  // A distinct non-null handle; every call on it completes before it returns.
  *stream = reinterpret_cast<cudaStream_t>(new char);
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  delete reinterpret_cast<char*>(stream);
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  (void)stream;
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void) { return cudaSuccess; }

// One emulated device, device 0.
cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return record(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return record(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}

// The emulated device has 4 SMs (what the backend's work splitting reads) and, like every GPU
// on a 64-bit Linux host, uses registered host memory at its host address; other attributes are
// not emulated.
cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int device) {
  if (value == nullptr || device != 0) return record(cudaErrorInvalidValue);
  switch (attr) {
    case cudaDevAttrMultiProcessorCount:
      *value = 4;
      return cudaSuccess;
    case cudaDevAttrCanUseHostPointerForRegisteredMem:
      *value = 1;
      return cudaSuccess;
    default:
      return record(cudaErrorInvalidValue);
  }
}

// Registered host memory stays host memory for copies; a range registered twice, or
// unregistered without being registered, is an error as in CUDA.
cudaError_t cudaHostRegister(void* ptr, size_t size, unsigned int flags) {
  (void)flags;
  if (ptr == nullptr || size == 0 || !is_host(ptr, size)) return record(cudaErrorInvalidValue);
  auto& a = cuda_on_cpu::allocations();
  std::lock_guard lock(a.mutex);
  if (!a.registered.emplace(reinterpret_cast<std::uintptr_t>(ptr), size).second) {
    return record(cudaErrorHostMemoryAlreadyRegistered);
  }
  return cudaSuccess;
}

cudaError_t cudaHostUnregister(void* ptr) {
  auto& a = cuda_on_cpu::allocations();
  std::lock_guard lock(a.mutex);
  if (a.registered.erase(reinterpret_cast<std::uintptr_t>(ptr)) == 0) {
    return record(cudaErrorHostMemoryNotRegistered);
  }
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : record(cudaErrorInvalidDevice);
}
