// device_memory_test.cpp: the forward pass, DistAttention and the engine on a backend whose
// memory is not host memory (Backend::host_memory() false), as a device backend's is.
//
// The test backend computes with the CPU backend's kernels but keeps a registry of the memory
// it allocated ("device memory") and checks every pointer each call takes: a compute call given
// host memory, or an upload / download whose sides are not one host and one device pointer,
// fails the test with the call's name. So weights, activations, the KV pools, queries and
// partial states must reach the kernels only through the backend's memory and its staging
// copies, as on a GPU; and the results must equal the CPU backend's.
#include <gtest/gtest.h>

#include <map>
#include <mutex>
#include <random>
#include <string>

#include "backend/cpu/cpu_backend.hpp"
#include "borrowing_run.hpp"
#include "core/errors.hpp"
#include "model/engine/engine.hpp"
#include "model/forward/forward.hpp"

namespace infllm::model {
namespace {

using namespace infllm::model::testing;  // NOLINT: test helpers

class CheckedDeviceBackend final : public Backend {
 public:
  const char* name() const override { return "checked-device"; }
  bool host_memory() const override { return false; }

  std::unique_ptr<BackendMemory> allocate(std::size_t bytes, MemoryUse use) override {
    auto m = std::make_unique<Tracked>(*this, cpu_.allocate(bytes, use));
    const std::lock_guard lock(mu_);
    ranges_[m->data()] = bytes;
    return m;
  }
  void upload(void* dst, const void* src, std::size_t bytes) override {
    need(dst, bytes, "upload destination");
    need_host(src, "upload source");
    cpu_.upload(dst, src, bytes);
    ++uploads;
  }
  void download(void* dst, const void* src, std::size_t bytes) override {
    need(src, bytes, "download source");
    need_host(dst, "download destination");
    cpu_.download(dst, src, bytes);
    ++downloads;
  }
  void gather_rows(const float* table, std::span<const std::int32_t> rows, std::size_t n,
                   float* y) override {
    need(table, 1, "gather_rows table");
    need(y, rows.size() * n * sizeof(float), "gather_rows output");
    cpu_.gather_rows(table, rows, n, y);
  }
  void store_kv(const KvStore& pool, int layer, std::span<const KvRowDest> rows, const float* k,
                const float* v) override {
    need(pool.base, 1, "store_kv pool");
    need(k, 1, "store_kv k");
    need(v, 1, "store_kv v");
    cpu_.store_kv(pool, layer, rows, k, v);
  }
  void matmul(const float* x, const float* w, float* y, std::size_t m, std::size_t n, std::size_t k,
              bool accumulate) override {
    need(x, m * k * sizeof(float), "matmul x");
    need(w, n * k * sizeof(float), "matmul w");
    need(y, m * n * sizeof(float), "matmul y");
    cpu_.matmul(x, w, y, m, n, k, accumulate);
  }
  void rms_norm(const float* x, const float* gain, float* y, std::size_t rows, std::size_t dim,
                float eps) override {
    need(x, rows * dim * sizeof(float), "rms_norm x");
    need(gain, dim * sizeof(float), "rms_norm gain");
    need(y, rows * dim * sizeof(float), "rms_norm y");
    cpu_.rms_norm(x, gain, y, rows, dim, eps);
  }
  void rope(float* x, const std::int64_t* positions, std::size_t rows, int heads, int head_dim,
            const float* inv_freq, float scale) override {
    need(x, rows * heads * head_dim * sizeof(float), "rope x");
    need(inv_freq, 1, "rope inv_freq");
    need_host(positions, "rope positions");
    cpu_.rope(x, positions, rows, heads, head_dim, inv_freq, scale);
  }
  void silu_mul(float* gate, const float* up, std::size_t n) override {
    need(gate, n * sizeof(float), "silu_mul gate");
    need(up, n * sizeof(float), "silu_mul up");
    cpu_.silu_mul(gate, up, n);
  }
  void add_bias(float* y, const float* bias, std::size_t rows, std::size_t n) override {
    need(y, rows * n * sizeof(float), "add_bias y");
    need(bias, n * sizeof(float), "add_bias bias");
    cpu_.add_bias(y, bias, rows, n);
  }
  void attention(const KvPool& pool, const MaParams& params, std::span<const MaQuery> queries,
                 std::span<const MaOutput> outputs) override {
    need(pool.base, 1, "attention pool");
    for (std::size_t i = 0; i < queries.size(); ++i) {
      need(queries[i].q, 1, "attention query");
      need(outputs[i].o, 1, "attention output o");
      if (params.result == MaResult::kPartial) {
        need(outputs[i].m, 1, "attention output m");
        need(outputs[i].l, 1, "attention output l");
      }
    }
    cpu_.attention(pool, params, queries, outputs);
  }
  void merge_partials_into(const MaOutput& acc, const PartialsView& part, std::int64_t rows,
                           int head_dim) override {
    for (const void* p : {static_cast<const void*>(acc.o), static_cast<const void*>(acc.m),
                          static_cast<const void*>(acc.l), static_cast<const void*>(part.o),
                          static_cast<const void*>(part.m), static_cast<const void*>(part.l)}) {
      need(p, 1, "merge_partials_into");
    }
    cpu_.merge_partials_into(acc, part, rows, head_dim);
  }
  void normalize_partials(const PartialsView& states, std::int64_t rows, int head_dim,
                          float* out) override {
    need(states.o, 1, "normalize_partials o");
    need(out, 1, "normalize_partials out");
    cpu_.normalize_partials(states, rows, head_dim, out);
  }

  std::int64_t uploads = 0, downloads = 0;

 private:
  class Tracked final : public BackendMemory {
   public:
    Tracked(CheckedDeviceBackend& owner, std::unique_ptr<BackendMemory> inner)
        : owner_(owner), inner_(std::move(inner)) {}
    ~Tracked() override {
      const std::lock_guard lock(owner_.mu_);
      owner_.ranges_.erase(inner_->data());
    }
    std::byte* data() override { return inner_->data(); }
    std::size_t bytes() const override { return inner_->bytes(); }

   private:
    CheckedDeviceBackend& owner_;
    std::unique_ptr<BackendMemory> inner_;
  };

  bool registered(const void* p, std::size_t bytes) {
    const std::lock_guard lock(mu_);
    const auto* b = static_cast<const std::byte*>(p);
    auto it = ranges_.upper_bound(const_cast<std::byte*>(b));
    if (it == ranges_.begin()) return false;
    --it;
    return b >= it->first && b + bytes <= it->first + it->second;
  }
  void need(const void* p, std::size_t bytes, const char* what) {
    if (!registered(p, bytes)) {
      throw InternalError(std::string("checked-device backend: ") + what +
                          " is not in the backend's memory");
    }
  }
  void need_host(const void* p, const char* what) {
    if (registered(p, 1)) {
      throw InternalError(std::string("checked-device backend: ") + what +
                          " is in the backend's memory, not the host's");
    }
  }

  cpu::CpuBackend cpu_;
  std::mutex mu_;
  std::map<std::byte*, std::size_t> ranges_;
};

class DeviceMemory : public ::testing::Test, protected BorrowingRun {};

// One step of the forward pass: the logits equal the CPU backend's bit for bit (the same
// kernels), and everything the kernels touched was the backend's memory.
TEST_F(DeviceMemory, ForwardStepReadsOnlyBackendMemory) {
  const BlockGeometry g = kv_geometry(config_, 4, KvDtype::kF32);
  const auto prompt = requests_[2].prompt;
  std::vector<SlotId> slots;
  for (std::int32_t s = 0; s < 16; ++s) slots.push_back(SlotId{s});
  const auto logits_on = [&](Backend& backend) {
    const std::unique_ptr<BackendMemory> pool =
        backend.allocate(g.block_bytes() * 16, MemoryUse::kKvPool);
    KvStore store{pool->data(), g.block_bytes(), 16, g};
    Forward forward(config_, weights_, backend);
    const StepSequence seq{prompt, 0, slots, true};
    return forward.step(std::span(&seq, 1), store);
  };
  CheckedDeviceBackend device;
  cpu::CpuBackend cpu;
  const std::vector<float> a = logits_on(device);
  const std::vector<float> b = logits_on(cpu);
  ASSERT_EQ(a.size(), b.size());
  EXPECT_EQ(a, b);
  EXPECT_GT(device.uploads, 0);    // the weights
  EXPECT_GT(device.downloads, 0);  // the logits
}

// The engine on three instances whose pools cannot hold the longest requests: queries and
// partial states staged through the backend's copies (push-query), pulled blocks uploaded
// (pull-KV); the tokens are the CPU backend's.
TEST_F(DeviceMemory, BorrowedBlocksStageThroughTheBackend) {
  for (const RemoteAttention mode : {RemoteAttention::kPushQuery, RemoteAttention::kPullKv}) {
    SCOPED_TRACE(remote_attention_name(mode));
    cpu::CpuBackend cpu;
    const auto want = run(cpu, mode);
    CheckedDeviceBackend device;
    const auto got = run(device, mode);
    EXPECT_GT(summary_.loans_total, 0);
    EXPECT_GT(summary_.totals.remote_blocks, 0);
    EXPECT_EQ(got, want);
    EXPECT_EQ(got.size(), requests_.size());
  }
}

}  // namespace
}  // namespace infllm::model
