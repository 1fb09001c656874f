// simulator_test.cpp: the cluster simulator (src/sim) on small clusters.
//
// - the shipped profiles load, and a profile that hides a figure's source, names an unknown key
//   or gives a fraction above 1 is refused naming the file and the key;
// - the event order: every done request's first token comes before its finish, and both before
//   the end of the run; the cluster steps' times never go back;
// - the local policy never borrows, and rejects what one pool cannot hold;
// - with fill waits off no decision depends on time, so a simulated run must take the decisions a
//   real in-process run of the model takes (tests/model's tiny model on 3 instances): the same
//   steps, loans, DGFM moves, preemptions, debt at every step, and blocks moved by kind.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>

#include "backend/cpu/cpu_backend.hpp"
#include "core/errors.hpp"
#include "model/engine/engine.hpp"
#include "model/tiny_model.hpp"
#include "sim/simulator.hpp"
#include "support/temp_dir.hpp"

namespace infllm::sim {
namespace {

namespace fs = std::filesystem;

const fs::path kProfiles = fs::path(INFLLM_SOURCE_DIR) / "sim";

CostModel a100_llama7b() {
  return CostModel(load_device((kProfiles / "devices/a100-80gb.json").string()),
                   load_model_shape((kProfiles / "models/llama2-7b.json").string()),
                   load_link((kProfiles / "links/nvlink3.json").string()),
                   load_link((kProfiles / "links/ib-hdr.json").string()));
}

TEST(SimProfiles, EveryShippedProfileLoads) {
  int n = 0;
  for (const char* kind : {"devices", "links", "models"}) {
    for (const auto& f : fs::directory_iterator(kProfiles / kind)) {
      SCOPED_TRACE(f.path().string());
      if (std::string(kind) == "devices") {
        EXPECT_GT(load_device(f.path().string()).hbm_bytes_per_s, 0);
      } else if (std::string(kind) == "links") {
        EXPECT_GT(load_link(f.path().string()).bytes_per_s, 0);
      } else {
        EXPECT_GT(load_model_shape(f.path().string()).layers, 0);
      }
      ++n;
    }
  }
  EXPECT_GE(n, 15);
}

TEST(SimProfiles, BadProfilesAreRefusedByFileAndKey) {
  infllm::testing::TempDir tmp("infllm-sim-test");
  std::ifstream in(kProfiles / "devices/h100.json");
  const std::string good((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto refused = [&](const std::string& text) {
    const std::string p = (tmp.path() / "d.json").string();
    std::ofstream(p) << text;
    try {
      load_device(p);
    } catch (const InputError& e) {
      EXPECT_EQ(e.file(), p);
      return e.where();
    }
    return std::string("(accepted)");
  };
  EXPECT_EQ(refused(good), "(accepted)");
  std::string no_source = good;
  no_source.replace(no_source.find("\"source\""), 8, "\"origin\"");
  EXPECT_EQ(refused(no_source), "memory_bytes");
  std::string unknown = good;
  unknown.insert(unknown.find('{') + 1, "\"fp8_flops\": 1,");
  EXPECT_EQ(refused(unknown), "fp8_flops");
  std::string fraction = good;
  const auto at = fraction.find("\"value\": 0.7");
  ASSERT_NE(at, std::string::npos);
  fraction.replace(at, 12, "\"value\": 1.7");
  EXPECT_EQ(refused(fraction), "gemm_efficiency");
}

SimOptions small_cluster(KvPolicy policy) {
  SimOptions o;
  o.instances = 4;
  o.per_node = 2;
  o.engine.policy = policy;
  o.engine.instance.block_tokens = 16;
  o.engine.instance.pool_slots = 64;  // 1,024 tokens a pool
  o.engine.instance.max_batch_tokens = 256;
  o.engine.instance.max_num_seqs = 8;
  o.engine.check_invariants = true;
  return o;
}

std::vector<SimRequest> mixed(std::uint64_t seed) {
  WorkloadSpec w;
  w.short_count = 24;
  w.short_prompt = 100;
  w.short_new = 20;
  w.long_count = 4;
  w.long_min = 600;
  w.long_max = 1700;  // beyond one pool: only pooled serves them
  w.long_new = 8;
  w.seed = seed;
  return make_workload(w);
}

TEST(Simulator, EventsComeInOrder) {
  const CostModel cost = a100_llama7b();
  for (const bool fill : {false, true}) {
    SimOptions o = small_cluster(KvPolicy::kPooled);
    o.engine.fill_waits = fill;
    const SimResult r = simulate(cost, mixed(3), o);
    EXPECT_GT(r.makespan_s, 0);
    int done = 0;
    for (const RequestOutcome& q : r.requests) {
      if (q.status != "done") continue;
      ++done;
      EXPECT_GT(q.first_token_s, 0) << q.id;
      EXPECT_LE(q.first_token_s, q.finish_s) << q.id;
      EXPECT_LE(q.finish_s, r.makespan_s) << q.id;
    }
    EXPECT_EQ(done, 28);
    for (std::size_t s = 1; s < r.summary.per_step.size(); ++s) {
      EXPECT_LE(r.summary.per_step[s - 1].wall_s, r.summary.per_step[s].wall_s) << s;
    }
    EXPECT_GT(r.summary.loans_total, 0);
  }
}

// Arrivals at a rate: no request starts before it arrives, an idle cluster waits for the next
// one, and every request is served.
TEST(Simulator, RequestsArriveAtARate) {
  const CostModel cost = a100_llama7b();
  WorkloadSpec w;
  w.short_count = 20;
  w.short_prompt = 100;
  w.short_new = 10;
  w.long_count = 2;
  w.long_min = 600;
  w.long_max = 900;
  w.rate = 0.5;  // one every 2 s: far apart for these steps
  w.seed = 9;
  const std::vector<SimRequest> requests = make_workload(w);
  double last = 0;
  for (const SimRequest& r : requests) {
    EXPECT_GE(r.arrival_s, last);
    last = r.arrival_s;
  }
  EXPECT_GT(last, 10);
  const SimResult r = simulate(cost, requests, small_cluster(KvPolicy::kPooled));
  for (const RequestOutcome& q : r.requests) {
    ASSERT_EQ(q.status, "done") << q.id;
    EXPECT_GE(q.first_token_s, q.arrival_s) << q.id;
    EXPECT_LE(q.finish_s, r.makespan_s) << q.id;
  }
  EXPECT_GE(r.makespan_s, last);
  // Each request alone on the cluster: completion is a short request's own time, far below
  // the run.
  EXPECT_LT(r.median_finish_s, 1.0);
}

TEST(Simulator, LocalPolicyNeverBorrows) {
  const CostModel cost = a100_llama7b();
  const SimResult r = simulate(cost, mixed(3), small_cluster(KvPolicy::kLocal));
  EXPECT_EQ(r.summary.loans_total, 0);
  EXPECT_EQ(r.summary.ledger_max, 0);
  const StepStats& t = r.summary.totals;
  EXPECT_EQ(t.push_bytes + t.pull_bytes + t.query_bytes + t.dgfm_bytes, 0);
  int not_done = 0;
  for (const RequestOutcome& q : r.requests) {
    if (q.status == "done") {
      EXPECT_LE(q.prompt_tokens + q.generated, 1024) << q.id;
    } else {
      ++not_done;
    }
  }
  EXPECT_GT(not_done, 0);  // the documents longer than one pool
  EXPECT_LT(r.longest_done,
            simulate(cost, mixed(3), small_cluster(KvPolicy::kPooled)).longest_done);
}

// The same workload on the real model (tiny, 3 in-process instances, fill waits off) and in the
// simulator with the same engine options: every decision the same.
TEST(Simulator, TakesTheDecisionsOfARealInProcessRun) {
  using namespace infllm::model;           // NOLINT
  using namespace infllm::model::testing;  // NOLINT
  const ModelConfig config = tiny_config(4, 2, false, false);
  const Weights weights = random_weights(config, 8);
  std::mt19937 rng(5);
  std::vector<GenRequest> real;
  std::vector<SimRequest> simulated;
  for (int i = 0; i < 8; ++i) {
    GenRequest g;
    g.id = "r";
    g.id += std::to_string(i);
    g.prompt = random_tokens(rng, 6 + static_cast<std::size_t>(9 * (i % 5)), 61);
    g.max_new_tokens = 4 + i % 3;
    real.push_back(g);
    simulated.push_back(SimRequest{static_cast<std::int64_t>(g.prompt.size()), g.max_new_tokens});
  }
  for (const RemoteAttention mode : {RemoteAttention::kPushQuery, RemoteAttention::kPullKv}) {
    SCOPED_TRACE(remote_attention_name(mode));
    EngineOptions e;
    e.instance = {.block_tokens = 4, .pool_slots = 8, .max_batch_tokens = 16, .max_num_seqs = 4};
    e.policy = KvPolicy::kPooled;
    e.remote = mode;
    e.fill_waits = false;
    e.reserve_growth = false;  // optimistic: more loans, preemptions and moves to compare
    e.dgfm_budget_bytes = 1 << 30;
    e.check_invariants = true;
    cpu::CpuBackend backend;
    InProcessHooks hooks;
    hooks.on_result = [](GenResult&&) {};
    const RunSummary a = run_in_process(config, weights, backend, nullptr, real, e, 3, 3, hooks);

    SimOptions o;
    o.instances = 3;
    o.per_node = 3;
    o.engine = e;
    const CostModel cost = a100_llama7b();
    const SimResult b = simulate(cost, simulated, o);
    EXPECT_EQ(b.summary.steps, a.steps);
    EXPECT_EQ(b.summary.loans_total, a.loans_total);
    EXPECT_EQ(b.summary.dgfm_moves, a.dgfm_moves);
    EXPECT_EQ(b.summary.preemptions, a.preemptions);
    EXPECT_GT(a.loans_total, 0);
    ASSERT_EQ(b.summary.per_step.size(), a.per_step.size());
    for (std::size_t s = 0; s < a.per_step.size(); ++s) {
      EXPECT_EQ(b.summary.per_step[s].ledger_blocks, a.per_step[s].ledger_blocks) << s;
      EXPECT_EQ(b.summary.per_step[s].sum.decode_tokens, a.per_step[s].sum.decode_tokens) << s;
      EXPECT_EQ(b.summary.per_step[s].sum.remote_blocks, a.per_step[s].sum.remote_blocks) << s;
    }
    // Bytes by kind, in rBlocks of each run's own size.
    const double real_block =
        static_cast<double>(kv_geometry(config, 4, KvDtype::kF32).block_bytes());
    const double sim_block = static_cast<double>(cost.block_bytes(4));
    EXPECT_EQ(a.totals.push_bytes / real_block, b.summary.totals.push_bytes / sim_block);
    EXPECT_EQ(a.totals.pull_bytes / real_block, b.summary.totals.pull_bytes / sim_block);
    EXPECT_EQ(a.totals.dgfm_bytes / real_block, b.summary.totals.dgfm_bytes / sim_block);
  }
}

}  // namespace
}  // namespace infllm::sim
