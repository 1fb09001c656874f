// cuda_backend_test.cpp: the CUDA backend (src/backend/cuda) built over the CUDA-on-CPU layer:
// Blas keeps cublasGemmEx's contract (checked against fp64), one forward step gives the CPU
// backend's logits, and the engine on three instances that borrow rBlocks (push-query and
// pull-KV) gives the CPU backend's greedy tokens, compared up to the first near tie.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cuda/cuda_backend.hpp"
#include "backend/cuda/gemm.hpp"
#include "core/errors.hpp"
#include "core/half.hpp"
#include "kernels/device_buffer.hpp"
#include "model/borrowing_run.hpp"
#include "model/engine/engine.hpp"
#include "model/forward/forward.hpp"

namespace infllm::cuda {
namespace {

using test::DeviceBuffer;

std::vector<float> random_values(std::size_t n, std::uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// Column-major op(A) (m, k) . op(B) (k, n) in fp64 from the values as stored.
TEST(Blas, GemmKeepsCublasGemmExContract) {
  const int m = 5, n = 7, k = 9, lda = 11, ldb = 12, ldc = 8;
  for (const bool ta : {false, true}) {
    for (const bool tb : {false, true}) {
      for (const GemmType type : {GemmType::kF32, GemmType::kBF16}) {
        SCOPED_TRACE(std::string(ta ? "T" : "N") + (tb ? "T" : "N") +
                     (type == GemmType::kF32 ? " f32" : " bf16"));
        const int a_cols = ta ? m : k, b_cols = tb ? k : n;
        std::vector<float> a = random_values(static_cast<std::size_t>(lda) * a_cols, 1);
        std::vector<float> b = random_values(static_cast<std::size_t>(ldb) * b_cols, 2);
        std::vector<float> c0 = random_values(static_cast<std::size_t>(ldc) * n, 3);
        std::vector<std::uint16_t> a16(a.size()), b16(b.size());
        if (type == GemmType::kBF16) {
          for (std::size_t i = 0; i < a.size(); ++i) a16[i] = to_bf16(a[i]).bits;
          for (std::size_t i = 0; i < b.size(); ++i) b16[i] = to_bf16(b[i]).bits;
          for (std::size_t i = 0; i < a.size(); ++i) a[i] = to_f32(bf16{a16[i]});
          for (std::size_t i = 0; i < b.size(); ++i) b[i] = to_f32(bf16{b16[i]});
        }
        DeviceBuffer<float> da(a), db(b), dc(c0);
        DeviceBuffer<std::uint16_t> da16(a16), db16(b16);
        const void* pa = type == GemmType::kF32 ? static_cast<const void*>(da.get()) : da16.get();
        const void* pb = type == GemmType::kF32 ? static_cast<const void*>(db.get()) : db16.get();
        Blas blas(nullptr);
        const float alpha = 0.5f, beta = 2.0f;
        blas.gemm(ta, tb, m, n, k, alpha, pa, lda, pb, ldb, type, beta, dc.get(), ldc);
        const std::vector<float> c = dc.download();
        for (int j = 0; j < n; ++j) {
          for (int i = 0; i < ldc; ++i) {
            const float got = c[i + j * ldc];
            if (i >= m) {  // rows past m in the leading dimension are not C's
              EXPECT_EQ(got, c0[i + j * ldc]);
              continue;
            }
            double sum = 0.0;
            for (int p = 0; p < k; ++p) {
              const double x = ta ? a[p + i * lda] : a[i + p * lda];
              const double y = tb ? b[j + p * ldb] : b[p + j * ldb];
              sum += x * y;
            }
            const double want = alpha * sum + beta * c0[i + j * ldc];
            ASSERT_NEAR(got, want, 1e-5 * (1.0 + std::abs(want))) << i << "," << j;
          }
        }
      }
    }
  }
}

TEST(Blas, BetaZeroDoesNotReadCAndBadLeadingDimensionsThrow) {
  DeviceBuffer<float> a(std::vector<float>(6, 1.0f)), b(std::vector<float>(6, 1.0f)), c(4);
  c.poison();  // NaN
  Blas blas(nullptr);
  blas.gemm(false, false, 2, 2, 3, 1.0f, a.get(), 2, b.get(), 3, GemmType::kF32, 0.0f, c.get(), 2);
  EXPECT_EQ(c.download(), std::vector<float>(4, 3.0f));
  EXPECT_THROW(blas.gemm(false, false, 2, 2, 3, 1.0f, a.get(), 1, b.get(), 3, GemmType::kF32, 0.0f,
                         c.get(), 2),
               InternalError);
#if defined(INFLLM_CUDA_ON_CPU)
  // The twin also refuses an operand outside device memory (cuBLAS would fault on the GPU).
  std::vector<float> host(4);
  EXPECT_THROW(blas.gemm(false, false, 2, 2, 3, 1.0f, a.get(), 2, b.get(), 3, GemmType::kF32, 0.0f,
                         host.data(), 2),
               InternalError);
#endif
}

using namespace infllm::model;           // NOLINT: the model's types
using namespace infllm::model::testing;  // NOLINT: test helpers

class CudaBackendModel : public ::testing::Test, protected BorrowingRun {
 protected:
  // The CPU backend's logits after `tokens` (one prefill of the whole sequence).
  std::vector<float> cpu_logits(const std::vector<std::int32_t>& tokens) {
    const BlockGeometry g = kv_geometry(config_, 4, KvDtype::kF32);
    const int slots = static_cast<int>(tokens.size() / 4 + 1);
    cpu::CpuBackend cpu;
    const auto pool = cpu.allocate(g.block_bytes() * slots, MemoryUse::kKvPool);
    KvStore store{pool->data(), g.block_bytes(), slots, g};
    std::vector<SlotId> table;
    for (int s = 0; s < slots; ++s) table.push_back(SlotId{s});
    Forward forward(config_, weights_, cpu);
    const StepSequence seq{tokens, 0, table, true};
    return forward.step(std::span(&seq, 1), store);
  }
};

// Logits of a prefill chunk and then a decode step that reads it back from a bf16 pool.
std::vector<float> chunk_then_decode(const ModelConfig& config, const Weights& weights,
                                     Backend& backend, const std::vector<std::int32_t>& prompt) {
  const BlockGeometry g = kv_geometry(config, 4, KvDtype::kBF16);
  std::vector<SlotId> slots;
  for (std::int32_t s = 0; s < 16; ++s) slots.push_back(SlotId{15 - s});
  const auto pool = backend.allocate(g.block_bytes() * 16, MemoryUse::kKvPool);
  KvStore store{pool->data(), g.block_bytes(), 16, g};
  Forward forward(config, weights, backend);
  const std::span<const std::int32_t> all(prompt);
  const StepSequence chunk{all.first(all.size() - 1), 0, slots, false};
  forward.step(std::span(&chunk, 1), store);
  const StepSequence decode{all.last(1), static_cast<std::int64_t>(all.size() - 1), slots, true};
  return forward.step(std::span(&decode, 1), store);
}

TEST_F(CudaBackendModel, ForwardStepWithF32WeightsGivesTheCpuBackendsLogits) {
  CudaBackend device(0, GemmType::kF32);
  cpu::CpuBackend cpu;
  const std::vector<float> got = chunk_then_decode(config_, weights_, device, requests_[3].prompt);
  const std::vector<float> want = chunk_then_decode(config_, weights_, cpu, requests_[3].prompt);
  ASSERT_EQ(got.size(), want.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 1e-4 * (1.0 + std::abs(want[i]))) << "logit " << i;
  }
}

// Weights held as bf16 (the default) or f16: the CPU backend on the same rounded weights is the
// reference; what remains is the GEMMs' inputs rounded to the weight type, within 2% of the
// logits' scale.
TEST_F(CudaBackendModel, ForwardStepWithNarrowWeightsStaysWithinTheirRounding) {
  for (const GemmType type : {GemmType::kBF16, GemmType::kF16}) {
    SCOPED_TRACE(type == GemmType::kBF16 ? "bf16" : "f16");
    Weights rounded = random_weights(config_, 33);
    auto round = [&](Tensor& t) {
      if (t.shape.size() != 2) return;
      for (float& x : t.data) {
        x = type == GemmType::kBF16 ? to_f32(to_bf16(x)) : to_f32(to_f16(x));
      }
    };
    round(rounded.embed);
    if (!rounded.lm_head.empty()) round(rounded.lm_head);
    for (LayerWeights& l : rounded.layers) {
      for (Tensor* t : {&l.q, &l.k, &l.v, &l.o, &l.gate, &l.up, &l.down}) round(*t);
    }
    CudaBackend device(0, type);
    cpu::CpuBackend cpu;
    const std::vector<float> got =
        chunk_then_decode(config_, weights_, device, requests_[3].prompt);
    const std::vector<float> want = chunk_then_decode(config_, rounded, cpu, requests_[3].prompt);
    ASSERT_EQ(got.size(), want.size());
    float scale = 0.0f;
    for (float x : want) scale = std::max(scale, std::abs(x));
    for (std::size_t i = 0; i < got.size(); ++i) {
      ASSERT_NEAR(got[i], want[i], 0.02 * scale) << "logit " << i;
    }
  }
}

// Greedy tokens: equal to the CPU backend's up to and including the first step whose top-2
// logit gap (on the CPU) is a near tie, below which either order is a correct answer.
TEST_F(CudaBackendModel, EngineWithBorrowedBlocksGivesTheCpuBackendsTokens) {
  constexpr float kNearTie = 1e-3f;
  for (const RemoteAttention mode : {RemoteAttention::kPushQuery, RemoteAttention::kPullKv}) {
    SCOPED_TRACE(remote_attention_name(mode));
    cpu::CpuBackend cpu;
    const auto want = run(cpu, mode);
    CudaBackend device(0, GemmType::kF32);
    device.set_blocks_per_split(2);  // long requests split over several thread blocks
    const auto got = run(device, mode);
    EXPECT_GT(summary_.loans_total, 0);
    EXPECT_GT(summary_.totals.remote_blocks, 0);
    ASSERT_EQ(got.size(), requests_.size());
    for (const GenRequest& r : requests_) {
      SCOPED_TRACE(r.id);
      const auto& w = want.at(r.id);
      const auto& g = got.at(r.id);
      ASSERT_EQ(g.size(), w.size());
      std::vector<std::int32_t> seq = r.prompt;
      for (std::size_t i = 0; i < w.size(); ++i) {
        EXPECT_EQ(g[i], w[i]) << "token " << i;
        std::vector<float> logits = cpu_logits(seq);
        std::partial_sort(logits.begin(), logits.begin() + 2, logits.end(), std::greater<>());
        if (g[i] != w[i] || logits[0] - logits[1] < kNearTie) break;
        seq.push_back(w[i]);
      }
    }
  }
}

}  // namespace
}  // namespace infllm::cuda
