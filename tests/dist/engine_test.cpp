// engine_test.cpp: `mpiexec -n N infllm generate` run as users run it (the mpi_launch.sh of this
// build tree: Open MPI's root/oversubscribe settings, nothing else), on a generated `micro`
// model, with pools small enough that long documents borrow rBlocks from several creditors.
//
// The reference is one rank with one big pool: nothing borrowed, nothing preempted. The
// comparison follows docs/design.md (Determinism): greedy tokens agree up to the first position
// where the reference's top-2 log-probability gap is at most 1e-4.
// NOTE: GCC 12 warns -Wrestrict on std::string concatenations with literals (GCC bug 105651, a
// false positive); the concatenations here are plain.
#pragma GCC diagnostic ignored "-Wrestrict"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <thread>

#include "backend/cpu/cpu_backend.hpp"
#include "backend/cpu/cpu_threads.hpp"
#include "dist/mpi_jobs.hpp"
#include "model/engine/engine.hpp"
#include "model/formats/weights.hpp"
#include "support/run_command.hpp"
#include "support/temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using infllm::testing::CommandResult;
using nlohmann::json;

// For tests that count loans, moves or preemptions: fill steps run as long as a slower rank
// takes, so how far the all-local requests get between two boundaries (and with it where the
// gManager places and what it moves) depends on timing. Without them every step is decided at
// a boundary from the ranks' reports, the same on every run. (The fill itself is tested by the
// equivalence suite and the FillWaits and CutFill tests, on outputs.)
const std::string kDeterministic = " --fill-waits off";

using infllm::testing::doc;
using infllm::testing::launcher;
using infllm::testing::mpi_infllm;

class Engine : public ::testing::Test {
 public:  // the static helpers serve free functions too
  // A fresh directory per run: tests expect their output paths not to exist yet.
  static void SetUpTestSuite() {
    tmp_ = std::make_unique<infllm::testing::TempDir>("infllm-engine-test");
    const auto r = infllm::testing::run_infllm("make-model --preset micro --seed 5 --out " +
                                               (tmp_->path() / "micro").string());
    ASSERT_EQ(r.code, 0) << r.out;
  }
  static void TearDownTestSuite() { tmp_.reset(); }
  static std::string path(const std::string& name) { return (tmp_->path() / name).string(); }
  static std::string model() { return path("micro"); }

  static std::string write(const std::string& name, const std::string& text) {
    std::ofstream(path(name)) << text;
    return path(name);
  }
  static std::map<std::string, json> read_results(const std::string& p) {
    std::map<std::string, json> out;
    std::ifstream in(p);
    for (std::string line; std::getline(in, line);) {
      const json j = json::parse(line);
      EXPECT_TRUE(out.emplace(j["id"].get<std::string>(), j).second) << "duplicate " << j["id"];
    }
    return out;
  }
  static json read_json(const std::string& p) {
    std::ifstream in(p);
    return json::parse(in);
  }
  // Every pooled run here checks the rManagers, the gManager, the ledger and the cross-rank
  // rule at every boundary (--check-invariants; a broken one aborts the job with exit 3).
  static std::string common(const std::string& in, const std::string& out) {
    return "generate --quiet --temperature 0 --block-tokens 16 --check-invariants --model " +
           model() + " --input " + in + " --output " + out + " --overwrite";
  }

  // The single-rank reference (one pool big enough for everything), with top-2 logprobs.
  static std::map<std::string, json> reference(const std::string& in) {
    const std::string out = path(fs::path(in).stem().string() + ".ref.jsonl");
    const auto r = infllm::testing::run_infllm(common(in, out) + " --kv-pool-mb 64 --logprobs 2");
    EXPECT_EQ(r.code, 0) << r.out;
    return read_results(out);
  }

  static std::unique_ptr<infllm::testing::TempDir> tmp_;
};
std::unique_ptr<infllm::testing::TempDir> Engine::tmp_;

// docs/design.md, Determinism: equal tokens up to the first position where the reference's
// top-2 gap is at most 1e-4.
void expect_equivalent(const std::map<std::string, json>& ref,
                       const std::map<std::string, json>& got) {
  ASSERT_EQ(ref.size(), got.size());
  for (const auto& [id, r] : ref) {
    const auto it = got.find(id);
    ASSERT_NE(it, got.end()) << id << " missing";
    const json& g = it->second;
    EXPECT_EQ(g["status"], r["status"]) << id;
    const auto& a = r["tokens"];
    const auto& b = g["tokens"];
    std::size_t i = 0;
    for (; i < a.size() && i < b.size(); ++i) {
      if (a[i] == b[i]) continue;
      const auto& top = r["top_logprobs"][i];
      const double gap = top[0][1].get<double>() - top[1][1].get<double>();
      EXPECT_LE(gap, 1e-4) << id << ": token " << i << " differs (" << a[i] << " vs " << b[i]
                           << ") where the reference's top-2 gap is " << gap;
      break;
    }
    if (i == a.size() || i == b.size()) {
      EXPECT_EQ(a.size(), b.size()) << id;
    }
  }
}

// Three long documents (1,100 tokens: 70 rBlocks of 16 tokens with their output) among short
// ones. With 1 MiB pools (64 rBlocks of this model) no long one fits its home: each borrows; with
// 0.5 MiB pools (32 rBlocks, lending at most 16) a long one needs 3 creditors.
std::string mixed_input() {
  std::string text;
  for (int i = 0; i < 3; ++i) text += doc("long" + std::to_string(i), 1100, 16, i);
  for (int i = 0; i < 5; ++i) text += doc("short" + std::to_string(i), 40 + 30 * i, 12, 10 + i);
  return text;
}

struct Case {
  int ranks;
  const char* remote;
  const char* fill;  // --fill-waits
};

class Equivalence : public Engine, public ::testing::WithParamInterface<Case> {};

TEST_P(Equivalence, OutputsEqualOneRankAndTheLedgerEndsEmpty) {
  const auto [ranks, remote, fill] = GetParam();
  const auto in = write("mixed.jsonl", mixed_input());
  const auto ref = reference(in);
  const std::string tag = std::to_string(ranks) + remote + fill;
  const auto out = path("mixed." + tag + ".jsonl");
  const auto metrics = path("mixed." + tag + ".metrics.json");
  const std::string pool = ranks >= 4 ? "0.5" : "1";
  const auto r =
      mpi_infllm(ranks, common(in, out) + " --kv-pool-mb " + pool + " --remote-attention " +
                            remote + " --fill-waits " + fill + " --metrics " + metrics);
  ASSERT_EQ(r.code, 0) << r.out;
  const auto got = read_results(out);
  expect_equivalent(ref, got);
  const json m = read_json(metrics);
  EXPECT_EQ(m["ranks"], ranks);
  EXPECT_EQ(m["kv_policy"], "pooled");
  EXPECT_GT(m["loans_total"].get<int>(), 0) << "no request borrowed";
  EXPECT_GT(m["ledger_max"].get<int>(), 0);
  EXPECT_EQ(m["ledger_outstanding_end"], 0);
  if (std::string(fill) == "off") {
    EXPECT_EQ(m["fill_steps"], 0);
  }
  std::size_t most_creditors = 0;
  for (const auto& [id, g] : got) {
    if (id.rfind("long", 0) == 0) {
      EXPECT_GT(g["remote_blocks_max"].get<int>(), 0) << id << " never borrowed";
    }
    most_creditors = std::max(most_creditors, g["creditors"].size());
  }
  if (ranks >= 4) {
    EXPECT_GE(most_creditors, 2u) << "no request spread over two creditors";
  }
  // The remote attention actually moved what the mode says.
  const json& bytes = m["bytes_moved"];
  EXPECT_GT(bytes["push"].get<std::int64_t>(), 0);
  if (std::string(remote) == "pull-kv") {
    EXPECT_GT(bytes["pull"].get<std::int64_t>(), 0);
    EXPECT_EQ(bytes["query"].get<std::int64_t>(), 0);
  } else if (std::string(remote) == "push-query") {
    EXPECT_GT(bytes["query"].get<std::int64_t>(), 0);
    EXPECT_GT(bytes["partial"].get<std::int64_t>(), 0);
    EXPECT_EQ(bytes["pull"].get<std::int64_t>(), 0);
  }
}

INSTANTIATE_TEST_SUITE_P(Ranks, Equivalence,
                         ::testing::Values(Case{2, "push-query", "on"},
                                           Case{4, "push-query", "off"}, Case{4, "pull-kv", "on"},
                                           Case{4, "auto", "on"}, Case{8, "push-query", "off"}),
                         [](const auto& info) {
                           std::string name = "np" + std::to_string(info.param.ranks) + "_" +
                                              info.param.remote + "_fill" + info.param.fill;
                           std::erase(name, '-');
                           return name;
                         });

// Rank 1 sleeps 40 ms after each of its steps, so rank 0 always finishes first: with
// --fill-waits on it runs extra steps of its all-local requests until rank 1 is done; the
// outputs still equal one rank's. With off it runs none.
TEST_F(Engine, FillWaitsRunsExtraStepsWhileASlowerRankFinishes) {
  // Requests the gManager spreads over both ranks, decoding long enough to fill waits with.
  std::string text;
  for (int i = 0; i < 8; ++i) text += doc("req" + std::to_string(i), 40 + 8 * i, 40, 10 + i);
  const auto in = write("fill.jsonl", text);
  const auto ref = reference(in);
  std::map<std::string, json> m;
  for (const std::string fill : {"on", "off"}) {
    const auto out = path("fill." + fill + ".jsonl");
    const auto metrics = path("fill." + fill + ".metrics.json");
    const auto r = infllm::testing::run_command(
        "env INFLLM_TEST_DELAY_RANK=1 INFLLM_TEST_STEP_DELAY_MS=40 " + launcher(2) + " " +
        common(in, out) + " --kv-pool-mb 1 --fill-waits " + fill + " --metrics " + metrics);
    ASSERT_EQ(r.code, 0) << r.out;
    expect_equivalent(ref, read_results(out));
    m[fill] = read_json(metrics);
    EXPECT_EQ(m[fill]["ledger_outstanding_end"], 0) << fill;
  }
  EXPECT_GT(m["on"]["fill_steps"].get<int>(), 0);
  EXPECT_EQ(m["off"]["fill_steps"].get<int>(), 0);
  EXPECT_EQ(m["off"]["fill_cuts"].get<int>(), 0);
}

// A fill step that the last rank's arrival cuts short is dropped whole: here every fill step is
// cut at its last layer (INFLLM_TEST_CUT_FILLS), after it wrote KV past its requests' committed
// lengths in every earlier layer. Nothing of it may show: the outputs equal one rank's, and no
// fill step counts as done.
TEST_F(Engine, CutFillStepsAreDroppedWhole) {
  std::string text;
  for (int i = 0; i < 6; ++i) text += doc("req" + std::to_string(i), 40 + 8 * i, 30, 20 + i);
  const auto in = write("cut.jsonl", text);
  const auto ref = reference(in);
  const auto out = path("cut.out.jsonl");
  const auto metrics = path("cut.metrics.json");
  const auto r = infllm::testing::run_command(
      "env INFLLM_TEST_CUT_FILLS=1 INFLLM_TEST_DELAY_RANK=1 INFLLM_TEST_STEP_DELAY_MS=30 " +
      launcher(2) + " " + common(in, out) + " --kv-pool-mb 1 --fill-waits on --metrics " + metrics);
  ASSERT_EQ(r.code, 0) << r.out;
  expect_equivalent(ref, read_results(out));
  const json m = read_json(metrics);
  EXPECT_GT(m["fill_cuts"].get<int>(), 0);
  EXPECT_EQ(m["fill_steps"].get<int>(), 0);
  EXPECT_EQ(m["ledger_outstanding_end"], 0);
}

// Two medium requests fill rank 0's pool; a long one placed beside them borrows from rank 1
// (optimistic admission: reserving the mediums' growth would keep it queued until they end).
// When the first medium one finishes, its home has room: DGFM brings the borrowed blocks home
// while the long one still decodes. Without DGFM they stay remote until it ends.
std::string dgfm_input() {
  return doc("mediumA", 300, 4, 1) + doc("mediumB", 300, 4, 2) + doc("long", 480, 60, 3);
}

std::vector<std::int64_t> ledger_by_step(const json& m) {
  std::vector<std::int64_t> v;
  for (const auto& s : m["per_step"]) v.push_back(s["ledger_blocks"].get<std::int64_t>());
  return v;
}

TEST_F(Engine, DgfmBringsBorrowedBlocksHomeOutputsUnchanged) {
  const auto in = write("dgfm.jsonl", dgfm_input());
  const auto ref = reference(in);
  std::map<std::string, std::vector<std::int64_t>> ledger;
  for (const std::string mode : {"on", "off"}) {
    const auto out = path("dgfm." + mode + ".jsonl");
    const auto metrics = path("dgfm." + mode + ".metrics.json");
    const auto r =
        mpi_infllm(2, common(in, out) + kDeterministic + " --kv-pool-mb 0.625 --admission " +
                          "optimistic --dgfm " + mode + " --metrics " + metrics);
    ASSERT_EQ(r.code, 0) << r.out;
    expect_equivalent(ref, read_results(out));
    const json m = read_json(metrics);
    ledger[mode] = ledger_by_step(m);
    if (mode == "on") {
      EXPECT_GT(m["dgfm_moves"].get<int>(), 0);
      EXPECT_GT(m["bytes_moved"]["dgfm"].get<std::int64_t>(), 0);
    } else {
      EXPECT_EQ(m["dgfm_moves"], 0);
    }
  }
  // With DGFM the remote count reaches zero while the long request still runs (steps remain
  // after it); without, it stays up until the end.
  const auto& on = ledger["on"];
  const auto& off = ledger["off"];
  ASSERT_FALSE(on.empty());
  const auto peak_on = std::max_element(on.begin(), on.end());
  ASSERT_GT(*peak_on, 0) << "the long request never borrowed";
  const auto zero_on = std::find(peak_on, on.end(), 0);
  ASSERT_NE(zero_on, on.end());
  EXPECT_GT(std::distance(zero_on, on.end()), 10) << "KV came home only at the very end";
  const auto peak_off = std::max_element(off.begin(), off.end());
  ASSERT_GT(*peak_off, 0);
  const auto zero_off = std::find(peak_off, off.end(), 0);
  EXPECT_LT(std::distance(zero_off, off.end()), std::distance(zero_on, on.end()));
}

// The DGFM's byte budget per boundary counts whole rBlocks: below one rBlock (16 KiB for micro),
// no move at all.
TEST_F(Engine, DgfmBudgetBelowOneRBlockMovesNothing) {
  const auto in = write("budget.jsonl", dgfm_input());
  const auto metrics = path("budget.metrics.json");
  const auto r =
      mpi_infllm(2, common(in, path("budget.jsonl.out.jsonl")) + kDeterministic +
                        " --kv-pool-mb 0.625 --admission optimistic --dgfm-budget-mb 0.01 "
                        "--metrics " +
                        metrics);
  ASSERT_EQ(r.code, 0) << r.out;
  const json m = read_json(metrics);
  EXPECT_GT(m["loans_total"].get<int>(), 0);
  EXPECT_EQ(m["dgfm_moves"], 0);
  // The peak of the cluster's pool use: at most both pools.
  EXPECT_GT(m["pool_used_hwm"].get<int>(), 0);
  EXPECT_LE(m["pool_used_hwm"].get<int>(), 2 * m["pool_slots"].get<int>());
}

// 2,000 tokens + 8 new: 126 rBlocks. One 1.5 MiB pool holds 96; 4 pools lending half hold 240.
TEST_F(Engine, PooledServesWhatLocalRejects) {
  const auto in = write("big.jsonl", doc("big", 2000, 8, 7) + doc("small", 50, 8, 8));
  const auto ref = reference(in);
  const auto pooled = path("big.pooled.jsonl");
  auto r = mpi_infllm(4, common(in, pooled) + " --kv-pool-mb 1.5 --kv-policy pooled");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto got = read_results(pooled);
  expect_equivalent(ref, got);
  EXPECT_GT(got.at("big")["remote_blocks_max"].get<int>(), 0);

  const auto local = path("big.local.jsonl");
  r = mpi_infllm(4, common(in, local) + " --kv-pool-mb 1.5 --kv-policy local");
  EXPECT_EQ(r.code, 1) << r.out;
  const auto loc = read_results(local);
  ASSERT_EQ(loc.size(), 2u);
  EXPECT_EQ(loc.at("big")["status"], "rejected");
  EXPECT_EQ(loc.at("big")["reason"], "kv_capacity");
  EXPECT_EQ(loc.at("small")["status"], "done");
  EXPECT_EQ(loc.at("small")["tokens"], ref.at("small")["tokens"]);
}

// The same loop in one process: N instances on threads through the in-process ports, with the
// real forward pass, take the decisions the N-rank `mpirun` run takes (no fill waits: nothing
// depends on timing) and give the same tokens, loans, DGFM moves and bytes moved.
TEST_F(Engine, InProcessInstancesMatchTheMpirunRun) {
  // Every document ignores EOS, so the in-process run needs no tokenizer.
  std::string text = dgfm_input() + doc("short", 40, 12, 4);
  for (std::size_t at = 0; (at = text.find('}', at)) != std::string::npos; at += 24) {
    text.insert(at, ", \"ignore_eos\": true");
  }
  const auto in = write("inproc.jsonl", text);
  const auto out = path("inproc.out.jsonl");
  const auto metrics = path("inproc.metrics.json");
  const double pool_mb = 0.625;
  for (const std::string remote : {"push-query", "pull-kv"}) {
    SCOPED_TRACE(remote);
    const auto r = mpi_infllm(2, common(in, out) + kDeterministic + " --kv-pool-mb 0.625 " +
                                     "--admission optimistic --remote-attention " + remote +
                                     " --metrics " + metrics);
    ASSERT_EQ(r.code, 0) << r.out;
    const auto want = read_results(out);
    const json m = read_json(metrics);

    infllm::cpu::set_threads(1);
    const infllm::model::LoadedModel lm = infllm::model::load_model(model());
    infllm::cpu::CpuBackend backend;
    std::vector<infllm::model::GenRequest> requests;
    {
      std::ifstream f(in);
      for (std::string line; std::getline(f, line);) {
        const json j = json::parse(line);
        infllm::model::GenRequest q;
        q.id = j["id"];
        q.prompt = j["tokens"].get<std::vector<std::int32_t>>();
        q.max_new_tokens = j["max_new_tokens"];
        q.ignore_eos = true;
        requests.push_back(q);
      }
    }
    infllm::EngineOptions o;
    o.instance.block_tokens = 16;
    const infllm::BlockGeometry g{16, static_cast<int>(lm.config.num_layers),
                                  static_cast<int>(lm.config.num_kv_heads),
                                  static_cast<int>(lm.config.head_dim), infllm::KvDtype::kF32};
    o.instance.pool_slots =
        static_cast<std::int32_t>(pool_mb * 1048576.0 / double(g.block_bytes()));
    o.policy = infllm::KvPolicy::kPooled;
    o.remote = remote == "push-query" ? infllm::RemoteAttention::kPushQuery
                                      : infllm::RemoteAttention::kPullKv;
    o.fill_waits = false;
    o.reserve_growth = false;
    o.check_invariants = true;
    std::map<std::string, std::vector<std::int32_t>> got;
    infllm::model::InProcessHooks hooks;
    hooks.on_result = [&](infllm::model::GenResult&& res) { got[res.id] = res.tokens; };
    const infllm::RunSummary sum = infllm::model::run_in_process(lm.config, lm.weights, backend,
                                                                 nullptr, requests, o, 2, 2, hooks);
    ASSERT_EQ(got.size(), want.size());
    for (const auto& [id, j] : want) {
      EXPECT_EQ(got.at(id), j["tokens"].get<std::vector<std::int32_t>>()) << id;
    }
    EXPECT_EQ(sum.loans_total, m["loans_total"].get<std::int64_t>());
    EXPECT_EQ(sum.dgfm_moves, m["dgfm_moves"].get<std::int64_t>());
    EXPECT_EQ(sum.preemptions, m["preemptions"].get<std::int64_t>());
    EXPECT_EQ(sum.steps, m["steps"].get<std::int64_t>());
    EXPECT_GT(sum.loans_total, 0);
    for (const char* kind : {"push", "pull", "query", "partial", "dgfm"}) {
      std::int64_t bytes = 0;
      infllm::for_each_field(sum.totals, [&](std::string_view name, const auto& v) {
        if (name == std::string(kind) + "_bytes") bytes = static_cast<std::int64_t>(v);
      });
      EXPECT_EQ(bytes, m["bytes_moved"][kind].get<std::int64_t>()) << kind;
    }
  }
}

// Local policy: every request runs on one rank, results all reach rank 0's output.
TEST_F(Engine, LocalPolicyServesEveryRequestOnce) {
  const auto in = write("loc.jsonl", mixed_input());
  const auto ref = reference(in);
  const auto out = path("loc.out.jsonl");
  const auto r = mpi_infllm(4, common(in, out) + " --kv-pool-mb 2 --kv-policy local");
  ASSERT_EQ(r.code, 0) << r.out;
  expect_equivalent(ref, read_results(out));
}

// More than the cluster holds at once: everything finishes through preemption (or is rejected
// with a reason); the run ends (ctest and mpirun bound its time). Lending is capped at 10% of a
// pool, so two 45-60-block requests placed on one 64-block rank cannot both grow: the younger
// one is preempted and recomputed.
TEST_F(Engine, ExhaustionFinishesEverythingThroughPreemption) {
  std::string text;
  for (int i = 0; i < 6; ++i) text += doc("x" + std::to_string(i), 700 + 50 * i, 10, 20 + i);
  text += doc("huge", 4000, 10, 30);  // 251 rBlocks: more than the whole cluster lends
  const auto in = write("exhaust.jsonl", text);
  const auto out = path("exhaust.out.jsonl");
  const auto metrics = path("exhaust.metrics.json");
  const auto r = mpi_infllm(
      4, common(in, out) + kDeterministic +
             " --kv-pool-mb 1 --max-lend-fraction 0.1 --admission optimistic --metrics " + metrics);
  EXPECT_EQ(r.code, 1) << r.out;
  const auto got = read_results(out);
  ASSERT_EQ(got.size(), 7u);
  EXPECT_EQ(got.at("huge")["status"], "rejected");
  EXPECT_EQ(got.at("huge")["reason"], "kv_capacity");
  for (int i = 0; i < 6; ++i) {
    EXPECT_EQ(got.at("x" + std::to_string(i))["status"], "done");
  }
  EXPECT_GT(read_json(metrics)["preemptions"].get<int>(), 0);
}

// The same six documents without the oversized one: with the default admission (reserve the
// running requests' remaining growth, lending caps counted) none is ever preempted and every
// prompt is prefilled exactly once; the optimistic admission preempts and recomputes.
TEST_F(Engine, ReservingAdmissionNeverPreemptsWhereOptimisticDoes) {
  std::string text;
  for (int i = 0; i < 6; ++i) text += doc("x" + std::to_string(i), 700 + 50 * i, 10, 20 + i);
  const auto in = write("admission.jsonl", text);
  const auto ref = reference(in);
  std::map<std::string, json> m;
  for (const std::string admission : {"reserve", "optimistic"}) {
    const auto out = path("admission." + admission + ".jsonl");
    const auto metrics = path("admission." + admission + ".metrics.json");
    const auto r = mpi_infllm(4, common(in, out) +
                                     " --kv-pool-mb 1 --max-lend-fraction 0.1 --fill-waits off "
                                     "--admission " +
                                     admission + " --metrics " + metrics);
    ASSERT_EQ(r.code, 0) << r.out;
    expect_equivalent(ref, read_results(out));
    m[admission] = read_json(metrics);
  }
  EXPECT_EQ(m["reserve"]["preemptions"], 0);
  EXPECT_EQ(m["reserve"]["prefill_tokens_computed"], m["reserve"]["prompt_tokens"]);
  EXPECT_GT(m["optimistic"]["preemptions"].get<int>(), 0);
  EXPECT_GT(m["optimistic"]["prefill_tokens_computed"].get<int>(),
            m["optimistic"]["prompt_tokens"].get<int>());
}

// The HDF5 output of a pooled run, read by an independent reader (h5dump): results with where
// their KV lived, per-step metrics, and ledger snapshots that saw the loans.
TEST_F(Engine, HdfOutputHoldsStepsAndLedgerSnapshots) {
  const auto in = write("h5.jsonl", mixed_input());
  const auto out = path("h5.out.h5");
  const auto r = mpi_infllm(4, common(in, out) + kDeterministic + " --kv-pool-mb 0.5");
  ASSERT_EQ(r.code, 0) << r.out;
  const auto dump = [&](const std::string& what) {
    return infllm::testing::run_command("h5dump " + what + " " + out);
  };
  const auto steps = dump("-d /steps/ledger_blocks -d /steps/loans_total -d /steps/step");
  ASSERT_EQ(steps.code, 0) << steps.out;
  EXPECT_NE(steps.out.find("DATASET \"/steps/ledger_blocks\""), std::string::npos);
  const auto ledger =
      dump("-d /ledger/step -d /ledger/debtor -d /ledger/creditor -d /ledger/blocks");
  ASSERT_EQ(ledger.code, 0) << ledger.out;
  // At least one snapshot row: some debtor owed some creditor.
  EXPECT_EQ(ledger.out.find("SIMPLE { ( 0 )"), std::string::npos) << ledger.out;
  const auto results = dump("-d /results/creditors -d /results/remote_blocks_max -a /complete");
  ASSERT_EQ(results.code, 0) << results.out;
  EXPECT_NE(results.out.find("ATTRIBUTE \"complete\""), std::string::npos);
}

// An exception on one rank in the middle of the run ends the whole job with exit 3 and a
// message naming that rank, instead of leaving the other ranks blocked in an exchange.
TEST_F(Engine, AnExceptionOnOneRankAbortsTheJobWithExitThree) {
  const auto in = write("fail.jsonl", mixed_input());
  const auto out = path("fail.out.jsonl");
  const auto start = std::chrono::steady_clock::now();
  const auto r =
      infllm::testing::run_command("env INFLLM_TEST_FAIL_RANK=2 INFLLM_TEST_FAIL_STEP=5 " +
                                   launcher(4) + " " + common(in, out) + " --kv-pool-mb 0.5");
  EXPECT_EQ(r.code, 3) << r.out;
  EXPECT_NE(r.out.find("rank 2"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("injected failure"), std::string::npos) << r.out;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(100))
      << "the other ranks were left waiting";
}

TEST_F(Engine, BadInputOnEveryRankExitsTwoWithOneMessage) {
  const auto r = mpi_infllm(4, common(path("missing.jsonl"), path("never.jsonl")));
  EXPECT_EQ(r.code, 2) << r.out;
  std::size_t messages = 0;
  for (std::size_t at = 0; (at = r.out.find("missing.jsonl", at)) != std::string::npos; ++at) {
    ++messages;
  }
  EXPECT_EQ(messages, 1u) << r.out;
  EXPECT_FALSE(fs::exists(path("never.jsonl")));
}

// An HDF5 input that crashes libhdf5 (tests/data/fuzz/) is read in a child process on every
// rank: the job ends exit 2 with the file named, nothing written. With Open MPI's inherited
// crash handler the child hung on malloc's lock (the heap libhdf5 had corrupted), and so did
// the job; the child now dies at once.
TEST_F(Engine, HdfInputThatCrashesLibHdf5EndsTheJobExitTwo) {
  const std::string in =
      std::string(INFLLM_SOURCE_DIR) + "/tests/data/fuzz/hdf5_libhdf5_local_heap_crash.h5";
  const auto r = mpi_infllm(2, common(in, path("never.jsonl")));
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("libhdf5 crashed reading the file"), std::string::npos) << r.out;
  EXPECT_FALSE(fs::exists(path("never.jsonl")));
}

// An existing output is refused by rank 0 alone; every rank still exits 2.
TEST_F(Engine, ExistingOutputRefusedOnRankZeroEndsEveryRank) {
  const auto in = write("tiny.jsonl", doc("t", 20, 2, 1));
  const auto out = write("exists.jsonl", "");
  const auto r =
      mpi_infllm(2, "generate --quiet --model " + model() + " --input " + in + " --output " + out);
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("exists.jsonl"), std::string::npos) << r.out;
}

// ---- The job's life under mpirun (issue: the batch job).

// Whole lines (ending in a newline) in `p` now.
std::size_t whole_lines(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  std::size_t n = 0;
  for (char c; in.get(c);) n += c == '\n';
  return n;
}

// Waits until `p` holds at least `n` whole lines (false after `seconds`).
bool wait_lines(const std::string& p, std::size_t n, double seconds) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  while (whole_lines(p) < n) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

// id -> (status, tokens, text).
std::map<std::string, json> outcome(const std::map<std::string, json>& results) {
  std::map<std::string, json> out;
  for (const auto& [id, r] : results) out[id] = json{r["status"], r["tokens"], r["text"]};
  return out;
}

// Twelve requests, slow enough (20 ms per step) to be interrupted mid-run.
std::string job_input() {
  std::string text;
  for (int i = 0; i < 12; ++i) text += doc("j" + std::to_string(i), 200 + 60 * i, 24, 40 + i);
  return text;
}

// A 4-rank job over job_input(): its uninterrupted output, and the same job started in the
// background (20 ms per step) once its output holds `lines` records.
struct SlowJob {
  std::string args, full, out;
  pid_t pid = -1;
};

SlowJob start_slow_job(const std::string& tag, std::size_t lines) {
  SlowJob j;
  const auto in = Engine::write(tag + ".jsonl", job_input());
  j.full = Engine::path(tag + ".full.jsonl");
  j.out = Engine::path(tag + ".out.jsonl");
  j.args =
      "generate --quiet --temperature 0 --ignore-eos --kv-pool-mb 0.75 --max-num-seqs 2 "
      "--model " +
      Engine::path("micro") + " --input " + in;
  const auto full = mpi_infllm(4, j.args + " --output " + j.full);
  EXPECT_EQ(full.code, 0) << full.out;
  j.pid = infllm::testing::spawn_command(
      "env INFLLM_TEST_STEP_DELAY_MS=20 " + launcher(4) + " " + j.args + " --output " + j.out,
      Engine::path(tag + ".log"));
  EXPECT_TRUE(wait_lines(j.out, lines, 120)) << "no record appeared";
  return j;
}

TEST_F(Engine, KilledRankOfAFourRankJobResumesToTheUninterruptedOutput) {
  const SlowJob job = start_slow_job("job", 2);
  if (HasFailure()) return;
  const pid_t launcher_pid = job.pid;
  const std::string& args = job.args;
  const std::string& out = job.out;
  const std::string& full = job.full;
  // kill -9 one rank: a child of mpirun (mpi_launch.sh execs mpirun, so launcher_pid is it).
  const auto ranks = infllm::testing::run_command("pgrep -P " + std::to_string(launcher_pid));
  std::vector<int> pids;
  for (std::size_t at = 0; at < ranks.out.size();) {
    const auto nl = ranks.out.find('\n', at);
    const std::string line = ranks.out.substr(at, nl - at);
    if (!line.empty()) pids.push_back(std::stoi(line));
    at = nl == std::string::npos ? ranks.out.size() : nl + 1;
  }
  ASSERT_GE(pids.size(), 4u) << ranks.out;
  ASSERT_EQ(kill(pids.back(), SIGKILL), 0);
  const auto code = infllm::testing::wait_exit(launcher_pid, 60);
  ASSERT_TRUE(code.has_value()) << "the job did not end after one rank was killed";
  EXPECT_NE(*code, 0);
  const auto before = read_results(out);  // whole records only, no duplicates
  EXPECT_LT(before.size(), 12u);
  const auto resumed = mpi_infllm(4, args + " --resume --output " + out);
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  EXPECT_EQ(whole_lines(out), 12u);
  EXPECT_EQ(outcome(read_results(out)), outcome(read_results(full)));
}

TEST_F(Engine, SigusrToMpirunStopsEveryRankExitFourAndResumeFinishes) {
  const SlowJob job = start_slow_job("sig", 1);
  if (HasFailure()) return;
  const pid_t pid = job.pid;
  const std::string& args = job.args;
  const std::string& out = job.out;
  const std::string& full = job.full;
  ASSERT_EQ(kill(pid, SIGUSR1), 0);
  const auto code = infllm::testing::wait_exit(pid, 10.0);
  ASSERT_TRUE(code.has_value()) << "no exit within 10 s of SIGUSR1";
  EXPECT_EQ(*code, 4);
  const auto stopped = read_results(out);
  EXPECT_LT(stopped.size(), 12u);
  const auto resumed = mpi_infllm(4, args + " --resume --output " + out);
  ASSERT_EQ(resumed.code, 0) << resumed.out;
  EXPECT_EQ(outcome(read_results(out)), outcome(read_results(full)));
}

TEST_F(Engine, ResumeWithAnotherModelExitsTwoNamingIt) {
  const auto in = write("other.jsonl", doc("a", 30, 4, 1) + doc("b", 40, 4, 2));
  const auto out = path("other.out.jsonl");
  ASSERT_EQ(mpi_infllm(2, common(in, out)).code, 0);
  const auto other = path("micro2");
  ASSERT_EQ(infllm::testing::run_infllm("make-model --preset micro --seed 6 --out " + other).code,
            0);
  const auto r = mpi_infllm(
      2, "generate --quiet --model " + other + " --input " + in + " --output " + out + " --resume");
  EXPECT_EQ(r.code, 2) << r.out;
  EXPECT_NE(r.out.find("model"), std::string::npos) << r.out;
  EXPECT_EQ(whole_lines(out), 2u);
}

// Thirty-two ranks on two cores: long documents spread over many small pools (a few seconds,
// so it runs in CI with the other `mpi` tests).
TEST_F(Engine, ThirtyTwoRanksOversubscribedComplete) {
  const auto in = write("np32.jsonl", mixed_input());
  const auto ref = reference(in);
  const auto out = path("np32.out.jsonl");
  const auto r =
      mpi_infllm(32, common(in, out) + " --kv-pool-mb 0.25 --metrics " + path("np32.metrics.json"));
  ASSERT_EQ(r.code, 0) << r.out;
  expect_equivalent(ref, read_results(out));
  EXPECT_GT(read_json(path("np32.metrics.json"))["loans_total"].get<int>(), 0);
}

}  // namespace
