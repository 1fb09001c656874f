// forward_test.cpp: the forward pass over rBlocks against an independent fp64 reference.
//
// The reference (tiny_model.hpp) is the textbook Llama computation for one whole sequence at
// once: dense causal attention in double, no blocks, no batching, no chunks. The forward pass under
// test runs the same weights through rBlocks in a pool (scattered, shuffled slots), chunked prefill
// starting mid-block, decode steps, and batches mixing requests. Logits must agree within 1e-4
// relative (max abs difference / max abs logit).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "backend/cpu/cpu_backend.hpp"
#include "core/errors.hpp"
#include "model/forward/forward.hpp"
#include "tiny_model.hpp"

namespace infllm::model {
namespace {

using namespace infllm::model::testing;  // NOLINT: test helpers

// A pool whose slots are handed out in a shuffled order, so block tables are scattered.
struct Pool {
  Pool(const Forward& f, int block_tokens, int slots, KvDtype dtype, unsigned seed) : free(slots) {
    store.geometry = f.geometry(block_tokens, dtype);
    store.slot_bytes = store.geometry.block_bytes();
    store.slots = slots;
    bytes.resize(store.slot_bytes * slots);
    store.base = bytes.data();
    std::iota(free.begin(), free.end(), 0);
    std::shuffle(free.begin(), free.end(), std::mt19937(seed));
  }
  std::vector<SlotId> table(std::size_t blocks) {
    std::vector<SlotId> t;
    for (std::size_t i = 0; i < blocks; ++i) {
      t.push_back(SlotId{free.back()});
      free.pop_back();
    }
    return t;
  }
  std::vector<std::byte> bytes;
  std::vector<int> free;
  KvStore store;
};

struct Case {
  const char* name;
  int q_heads, kv_heads;
  bool bias, tied;
};

class ForwardVsReference : public ::testing::TestWithParam<Case> {};

TEST_P(ForwardVsReference, ChunkedPrefillThenDecodeMatchesEveryPosition) {
  const Case& tc = GetParam();
  const ModelConfig c = tiny_config(tc.q_heads, tc.kv_heads, tc.bias, tc.tied);
  const Weights w = random_weights(c, 11);
  cpu::CpuBackend backend;
  Forward fwd(c, w, backend);
  std::mt19937 rng(5);
  const auto tokens = random_tokens(rng, 29, int(c.vocab_size));
  const Mat want = reference_logits(c, w, tokens);

  constexpr int kBlock = 4;
  Pool pool(fwd, kBlock, 16, KvDtype::kF32, 3);
  const auto table = pool.table(8);  // 32 positions
  // Prefill 0..20 in chunks of 7 (the second and third start mid-block), then decode 21..28.
  std::size_t pos = 0;
  while (pos < tokens.size()) {
    const std::size_t n = pos < 21 ? 7 : 1;
    StepSequence seq{std::span(tokens).subspan(pos, n), std::int64_t(pos), table, true};
    const auto logits = fwd.step(std::span(&seq, 1), pool.store);
    ASSERT_EQ(logits.size(), std::size_t(c.vocab_size));
    const std::size_t last = pos + n - 1;
    EXPECT_LT(rel_error(logits.data(), &want[last * c.vocab_size], c.vocab_size), 1e-4)
        << "position " << last;
    pos += n;
  }
}

INSTANTIATE_TEST_SUITE_P(Shapes, ForwardVsReference,
                         ::testing::Values(Case{"mha", 4, 4, false, true},
                                           Case{"gqa2_untied", 4, 2, false, false},
                                           Case{"gqa4_bias", 4, 1, true, false}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(Forward, BatchMixingRequestsEqualsSeparateRuns) {
  const ModelConfig c = tiny_config(4, 2, false, false);
  const Weights w = random_weights(c, 12);
  cpu::CpuBackend backend;
  Forward fwd(c, w, backend);
  std::mt19937 rng(6);
  const auto a = random_tokens(rng, 13, int(c.vocab_size));
  const auto b = random_tokens(rng, 9, int(c.vocab_size));
  const Mat want_a = reference_logits(c, w, a), want_b = reference_logits(c, w, b);

  Pool pool(fwd, 4, 16, KvDtype::kF32, 4);
  const auto ta = pool.table(4), tb = pool.table(3);
  // Step 1: a's prefill of 12 tokens alone (no logits needed).
  StepSequence s1{std::span(a).first(12), 0, ta, false};
  EXPECT_TRUE(fwd.step(std::span(&s1, 1), pool.store).empty());
  // Step 2: a decodes its 13th token while b prefills all 9 in the same batch.
  const StepSequence batch[2] = {{std::span(a).subspan(12, 1), 12, ta, true},
                                 {std::span(b), 0, tb, true}};
  const auto logits = fwd.step(batch, pool.store);
  ASSERT_EQ(logits.size(), 2 * std::size_t(c.vocab_size));
  EXPECT_LT(rel_error(&logits[0], &want_a[12 * c.vocab_size], c.vocab_size), 1e-4);
  EXPECT_LT(rel_error(&logits[c.vocab_size], &want_b[8 * c.vocab_size], c.vocab_size), 1e-4);
}

TEST(Forward, HalfPrecisionKvStaysClose) {
  const ModelConfig c = tiny_config(4, 2, false, true);
  const Weights w = random_weights(c, 13);
  cpu::CpuBackend backend;
  Forward fwd(c, w, backend);
  std::mt19937 rng(7);
  const auto tokens = random_tokens(rng, 17, int(c.vocab_size));
  const Mat want = reference_logits(c, w, tokens);
  for (KvDtype dtype : {KvDtype::kF16, KvDtype::kBF16}) {
    SCOPED_TRACE(dtype_name(dtype));
    Pool pool(fwd, 8, 4, dtype, 5);
    const auto table = pool.table(3);
    StepSequence seq{tokens, 0, table, true};
    const auto logits = fwd.step(std::span(&seq, 1), pool.store);
    // 16-bit K/V rounding (2^-8 relative for bf16) bounds the difference, not 1e-4.
    EXPECT_LT(rel_error(logits.data(), &want[16 * c.vocab_size], c.vocab_size), 3e-2);
  }
}

TEST(Forward, PositionBeyondTheBlockTableIsMisuse) {
  const ModelConfig c = tiny_config(4, 2, false, true);
  const Weights w = random_weights(c, 14);
  cpu::CpuBackend backend;
  Forward fwd(c, w, backend);
  Pool pool(fwd, 4, 4, KvDtype::kF32, 6);
  const auto table = pool.table(1);
  const std::vector<std::int32_t> tokens(5, 1);
  StepSequence seq{tokens, 0, table, true};
  EXPECT_THROW(fwd.step(std::span(&seq, 1), pool.store), InternalError);
}

}  // namespace
}  // namespace infllm::model
