// generator_test.cpp: the single-instance engine against the fp64 reference's greedy
// continuations, under chunking, batching, tight pools (preemption) and the capacity rules.
#include <gtest/gtest.h>

#include <map>

#include "backend/cpu/cpu_backend.hpp"
#include "model/generator.hpp"
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

class GeneratorTest : public ::testing::Test {
 protected:
  GeneratorTest() : config_(tiny_config(4, 2, false, false)), weights_(random_weights(config_, 21)) {
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

  std::map<std::string, GenResult> run(GeneratorOptions options, GeneratorStats* stats = nullptr) {
    cpu::CpuBackend backend;
    Forward forward(config_, weights_, backend);
    Generator gen(forward, nullptr, options);
    std::map<std::string, GenResult> out;
    const GeneratorStats s = gen.run(requests_, [&](GenResult&& r) {
      EXPECT_EQ(out.count(r.id), 0u) << "reported twice: " << r.id;
      out[r.id] = std::move(r);
    });
    if (stats) *stats = s;
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

TEST_F(GeneratorTest, LargePoolBigBatchMatchesReference) {
  expect_reference_tokens(run({.block_tokens = 4, .pool_slots = 64, .max_batch_tokens = 512}));
}

TEST_F(GeneratorTest, SmallChunksAndOneSequenceAtATimeMatchReference) {
  expect_reference_tokens(run({.block_tokens = 4, .pool_slots = 64, .max_batch_tokens = 3,
                               .max_num_seqs = 1}));
}

TEST_F(GeneratorTest, TightPoolPreemptsAndStillMatchesReference) {
  GeneratorStats stats;
  // The longest request needs ceil((33 + 10) / 4) = 11 blocks; 12 slots force preemptions.
  const auto got = run({.block_tokens = 4, .pool_slots = 12, .max_batch_tokens = 16}, &stats);
  expect_reference_tokens(got);
  EXPECT_GT(stats.preemptions, 0);
  EXPECT_LE(stats.pool_used_hwm, 12);
}

TEST_F(GeneratorTest, RequestLargerThanThePoolIsRejectedOthersFinish) {
  const auto got = run({.block_tokens = 4, .pool_slots = 9, .max_batch_tokens = 64});
  // req3 needs ceil((26 + 9) / 4) = 9 blocks: fits; req4 needs ceil((33 + 10) / 4) = 11: no.
  EXPECT_EQ(got.at("req4").status, GenStatus::kRejected);
  EXPECT_EQ(got.at("req4").reason, "kv_capacity");
  for (const char* id : {"req0", "req1", "req2", "req3"}) {
    EXPECT_EQ(got.at(id).status, GenStatus::kDone) << id;
  }
}

TEST_F(GeneratorTest, EosStopsUnlessIgnoredOrBelowMinimum) {
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

TEST_F(GeneratorTest, PromptBeyondContextFailsWithReason) {
  requests_[2].prompt.assign(static_cast<std::size_t>(config_.max_position_embeddings) + 1, 3);
  const auto got = run({.block_tokens = 4, .pool_slots = 64});
  EXPECT_EQ(got.at("req2").status, GenStatus::kFailed);
  EXPECT_EQ(got.at("req2").reason, "prompt_too_long");
  EXPECT_EQ(got.at("req1").status, GenStatus::kDone);
}

}  // namespace
}  // namespace infllm::model
