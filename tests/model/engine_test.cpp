// engine_test.cpp: the engine (the step loop with the model, model/engine/engine.hpp) in one
// process, on one instance and on several through the in-process ports, against the fp64
// reference's greedy continuations: under chunking, batching, tight pools (preemption), the
// capacity rules, and with pools so small that the long requests borrow from every other instance:
// push-query, pull-KV, DGFM moves and fill steps, with the real forward pass.
#include <gtest/gtest.h>

#include <map>

#include "backend/cpu/cpu_backend.hpp"
#include "model/engine/engine.hpp"
#include "tiny_model.hpp"

namespace infllm::model {
namespace {

using namespace infllm::model::testing;  // NOLINT: test helpers

// Greedy continuation of `prompt` by the fp64 reference; `gaps` receives each step's top-2 gap.
std::vector<std::int32_t> reference_greedy(const ModelConfig& c, const Weights& w,
                                           std::vector<std::int32_t> seq, int n,
                                           std::vector<double>* gaps) {
  std::vector<std::int32_t> out;
  for (int i = 0; i < n; ++i) {
    const Mat logits = reference_logits(c, w, seq);
    const double* last = &logits[(seq.size() - 1) * c.vocab_size];
    std::vector<double> row(last, last + c.vocab_size);
    const auto best = std::max_element(row.begin(), row.end()) - row.begin();
    const double top = row[best];
    row[best] = -INFINITY;
    gaps->push_back(top - *std::max_element(row.begin(), row.end()));
    out.push_back(static_cast<std::int32_t>(best));
    seq.push_back(static_cast<std::int32_t>(best));
  }
  return out;
}

class EngineTest : public ::testing::Test {
 protected:
  EngineTest() : config_(tiny_config(4, 2, false, false)), weights_(random_weights(config_, 21)) {
    std::mt19937 rng(9);
    for (int i = 0; i < 5; ++i) {
      GenRequest r;
      r.id = "req" + std::to_string(i);
      r.prompt = random_tokens(rng, 5 + 7 * i, static_cast<int>(config_.vocab_size));
      r.max_new_tokens = 6 + i;
      requests_.push_back(r);
      std::vector<double> gaps;
      want_[r.id] = reference_greedy(config_, weights_, r.prompt, r.max_new_tokens, &gaps);
      gaps_[r.id] = gaps;
    }
  }

  // One instance with `instance`'s pool and limits; optimistic admission, so that tight pools
  // preempt.
  std::map<std::string, GenResult> run(InstanceOptions instance, RunSummary* summary = nullptr) {
    EngineOptions o;
    o.instance = instance;
    o.policy = KvPolicy::kLocal;
    o.reserve_growth = false;
    o.check_invariants = true;
    return run_on(o, 1, summary);
  }

  std::map<std::string, GenResult> run_on(const EngineOptions& o, std::int32_t instances,
                                          RunSummary* summary = nullptr,
                                          const LoopOptions& loop = {}) {
    cpu::CpuBackend backend;
    std::map<std::string, GenResult> out;
    InProcessHooks hooks;
    hooks.on_result = [&](GenResult&& r) {
      EXPECT_EQ(out.count(r.id), 0u) << "reported twice: " << r.id;
      out[r.id] = std::move(r);
    };
    const RunSummary s = run_in_process(config_, weights_, backend, nullptr, requests_, o,
                                        instances, /*per_node=*/2, hooks, loop);
    if (summary) *summary = s;
    return out;
  }

  // Tokens equal the reference's up to the first step whose top-2 gap is at most 1e-4.
  void expect_reference_tokens(const std::map<std::string, GenResult>& got) {
    ASSERT_EQ(got.size(), requests_.size());
    for (const auto& r : requests_) {
      SCOPED_TRACE(r.id);
      const GenResult& g = got.at(r.id);
      ASSERT_EQ(g.status, GenStatus::kDone) << g.reason;
      EXPECT_EQ(g.finish_reason, "length");
      ASSERT_EQ(g.tokens.size(), want_[r.id].size());
      for (std::size_t i = 0; i < g.tokens.size(); ++i) {
        if (gaps_[r.id][i] <= 1e-4) break;
        EXPECT_EQ(g.tokens[i], want_[r.id][i]) << "token " << i;
      }
    }
  }

  ModelConfig config_;
  Weights weights_;
  std::vector<GenRequest> requests_;
  std::map<std::string, std::vector<std::int32_t>> want_;
  std::map<std::string, std::vector<double>> gaps_;
};

TEST_F(EngineTest, LargePoolBigBatchMatchesReference) {
  expect_reference_tokens(run({.block_tokens = 4, .pool_slots = 64, .max_batch_tokens = 512}));
}

TEST_F(EngineTest, SmallChunksAndOneSequenceAtATimeMatchReference) {
  expect_reference_tokens(
      run({.block_tokens = 4, .pool_slots = 64, .max_batch_tokens = 3, .max_num_seqs = 1}));
}

TEST_F(EngineTest, TightPoolPreemptsAndStillMatchesReference) {
  RunSummary summary;
  // The longest request needs ceil((33 + 10) / 4) = 11 blocks; 12 slots force preemptions.
  const auto got = run({.block_tokens = 4, .pool_slots = 12, .max_batch_tokens = 16}, &summary);
  expect_reference_tokens(got);
  EXPECT_GT(summary.preemptions, 0);
  EXPECT_LE(summary.totals.pool_used, 12);
}

TEST_F(EngineTest, RequestLargerThanThePoolIsRejectedOthersFinish) {
  const auto got = run({.block_tokens = 4, .pool_slots = 9, .max_batch_tokens = 64});
  // req3 needs ceil((26 + 9) / 4) = 9 blocks: fits; req4 needs ceil((33 + 10) / 4) = 11: no.
  EXPECT_EQ(got.at("req4").status, GenStatus::kRejected);
  EXPECT_EQ(got.at("req4").reason, "kv_capacity");
  for (const char* id : {"req0", "req1", "req2", "req3"}) {
    EXPECT_EQ(got.at(id).status, GenStatus::kDone) << id;
  }
}

TEST_F(EngineTest, EosStopsUnlessIgnoredOrBelowMinimum) {
  const std::int32_t first = want_["req0"][0];
  requests_.resize(1);
  auto stopped = run({.block_tokens = 4, .pool_slots = 16, .eos_ids = {first}});
  EXPECT_EQ(stopped.at("req0").finish_reason, "stop");
  EXPECT_EQ(stopped.at("req0").tokens, std::vector<std::int32_t>{first});

  requests_[0].ignore_eos = true;
  auto ignored = run({.block_tokens = 4, .pool_slots = 16, .eos_ids = {first}});
  EXPECT_EQ(ignored.at("req0").finish_reason, "length");
  EXPECT_EQ(ignored.at("req0").tokens.size(), 6u);

  requests_[0].ignore_eos = false;
  requests_[0].min_new_tokens = 2;
  auto minimum = run({.block_tokens = 4, .pool_slots = 16, .eos_ids = {first}});
  EXPECT_NE(minimum.at("req0").tokens[0], first) << "EOS is masked below min_new_tokens";
}

TEST_F(EngineTest, PromptBeyondContextFailsWithReason) {
  requests_[2].prompt.assign(static_cast<std::size_t>(config_.max_position_embeddings) + 1, 3);
  const auto got = run({.block_tokens = 4, .pool_slots = 64});
  EXPECT_EQ(got.at("req2").status, GenStatus::kFailed);
  EXPECT_EQ(got.at("req2").reason, "prompt_too_long");
  EXPECT_EQ(got.at("req1").status, GenStatus::kDone);
}

// Several instances whose 8-slot pools (32 tokens) cannot hold the longest requests (up to 43
// tokens): they borrow from the others' pools, with every way of attending over remote blocks.
class EngineRemote : public EngineTest, public ::testing::WithParamInterface<RemoteAttention> {};

TEST_P(EngineRemote, BorrowedBlocksGiveTheReferenceTokens) {
  EngineOptions o;
  o.instance = {.block_tokens = 4, .pool_slots = 8, .max_batch_tokens = 16, .max_num_seqs = 4};
  o.policy = KvPolicy::kPooled;
  o.remote = GetParam();
  o.fill_waits = false;
  o.check_invariants = true;
  RunSummary summary;
  expect_reference_tokens(run_on(o, 4, &summary));
  EXPECT_GT(summary.loans_total, 0);
  EXPECT_GT(summary.totals.remote_blocks, 0);
  if (GetParam() == RemoteAttention::kPushQuery) {
    EXPECT_GT(summary.totals.query_bytes, 0);
    EXPECT_GT(summary.totals.partial_bytes, 0);
    EXPECT_EQ(summary.totals.pull_bytes, 0);
  }
  if (GetParam() == RemoteAttention::kPullKv) {
    EXPECT_GT(summary.totals.pull_bytes, 0);
    EXPECT_EQ(summary.totals.query_bytes, 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, EngineRemote,
                         ::testing::Values(RemoteAttention::kPushQuery, RemoteAttention::kPullKv,
                                           RemoteAttention::kAuto));

// Two instances and optimistic admission: requests are preempted, blocks come home by DGFM,
// and the tokens are still the reference's.
TEST_F(EngineTest, PreemptionAndDgfmOnTwoInstancesGiveTheReferenceTokens) {
  EngineOptions o;
  o.instance = {.block_tokens = 4, .pool_slots = 10, .max_batch_tokens = 16, .max_num_seqs = 4};
  o.policy = KvPolicy::kPooled;
  o.reserve_growth = false;
  o.fill_waits = false;
  o.check_invariants = true;
  o.dgfm_budget_bytes = 1 << 20;
  RunSummary summary;
  expect_reference_tokens(run_on(o, 2, &summary));
  EXPECT_GT(summary.loans_total, 0);
  EXPECT_GT(summary.preemptions + summary.dgfm_moves, 0);
}

// Fill steps (and cut ones) while the instances wait for each other: same tokens.
TEST_F(EngineTest, FillStepsGiveTheReferenceTokens) {
  EngineOptions o;
  o.instance = {.block_tokens = 4, .pool_slots = 16, .max_batch_tokens = 8, .max_num_seqs = 4};
  o.policy = KvPolicy::kPooled;
  o.fill_waits = true;
  o.check_invariants = true;
  expect_reference_tokens(run_on(o, 3));
  LoopOptions cut;
  cut.cut_every_fill_step = true;
  RunSummary summary;
  expect_reference_tokens(run_on(o, 3, &summary, cut));
  EXPECT_EQ(summary.totals.fill_steps, 0);
}

// The local policy on several instances: nothing borrowed, a request larger than one pool
// rejected, the others the reference's.
TEST_F(EngineTest, LocalPolicyOnSeveralInstancesNeverBorrows) {
  EngineOptions o;
  o.instance = {.block_tokens = 4, .pool_slots = 10, .max_batch_tokens = 16, .max_num_seqs = 4};
  o.policy = KvPolicy::kLocal;
  o.fill_waits = false;
  o.check_invariants = true;
  RunSummary summary;
  const auto got = run_on(o, 3, &summary);
  EXPECT_EQ(summary.loans_total, 0);
  EXPECT_EQ(got.at("req4").status, GenStatus::kRejected);  // 11 blocks
  EXPECT_EQ(got.at("req4").reason, "kv_capacity");
  for (const char* id : {"req0", "req1", "req2", "req3"}) {
    EXPECT_EQ(got.at(id).status, GenStatus::kDone) << id;
    EXPECT_EQ(got.at(id).tokens, want_[id]) << id;
  }
}

}  // namespace
}  // namespace infllm::model
