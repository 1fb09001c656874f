// cli_test.cpp: the `infllm` command line, parsed as a pure function and run as a process.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "app/cli.hpp"
#include "core/errors.hpp"
#include "support/run_command.hpp"
#include "support/temp_dir.hpp"

namespace infllm::app {
namespace {

const std::vector<std::string> kRequired = {"--model",  "m",        "--input",
                                            "in.jsonl", "--output", "out.jsonl"};

std::vector<std::string> with_required(std::vector<std::string> extra) {
  std::vector<std::string> args = kRequired;
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

// The option a UsageError from `parse` names, or "" when parsing succeeded.
template <typename Parse>
std::string rejected_by(Parse parse, const std::vector<std::string>& args) {
  try {
    parse(args);
  } catch (const UsageError& e) {
    return e.option();
  }
  return "";
}
std::string rejected_option(const std::vector<std::string>& args) {
  return rejected_by(parse_generate, args);
}

// NaN compares false with every bound, so a range check alone let --temperature nan through
// (and silently turned on sampling). Every floating-point option refuses non-finite values.
TEST(ParseGenerate, NonFiniteNumbersAreRefusedByName) {
  for (const char* option : {"--temperature", "--top-p", "--min-p", "--kv-pool-mb",
                             "--max-lend-fraction", "--dgfm-budget-mb"}) {
    for (const char* value : {"nan", "inf", "-inf", "1e999"}) {
      EXPECT_EQ(rejected_option(with_required({option, value})), std::string(option).substr(2))
          << option << " " << value;
    }
  }
}

// One rule with a JSONL record's fields: seeds in [0, 2^63 - 1] (an unsigned option read "-1"
// as 2^64 - 1 and ran with it), and no empty stop string.
TEST(ParseGenerate, SeedAndStopFollowTheRecordsRules) {
  EXPECT_EQ(rejected_option(with_required({"--seed", "-1"})), "seed");
  EXPECT_EQ(rejected_option(with_required({"--seed", "18446744073709551615"})), "seed");
  EXPECT_EQ(rejected_option(with_required({"--seed", "9223372036854775807"})), "");
  EXPECT_EQ(rejected_option(with_required({"--stop", ""})), "stop");
  EXPECT_EQ(rejected_option(with_required({"--stop", "x", "--stop", ""})), "stop");
}

TEST(ParseGenerate, DefaultsAreTheDocumentedOnes) {
  const auto p = parse_generate(kRequired);
  ASSERT_FALSE(p.help);
  EXPECT_EQ(p.config.model, "m");
  EXPECT_EQ(p.config.temperature, 0.0);
  EXPECT_EQ(p.config.engine.policy, KvPolicy::kPooled);
  EXPECT_EQ(p.config.engine.remote, RemoteAttention::kAuto);
  EXPECT_TRUE(p.config.engine.dgfm);
  EXPECT_TRUE(p.config.engine.fill_waits);
  EXPECT_TRUE(p.config.engine.reserve_growth);
}

TEST(ParseGenerate, ReadsEveryKindOfValue) {
  const auto c = parse_generate(with_required({"--kv-pool-mb", "0.25", "--kv-policy", "local",
                                               "--remote-attention", "pull-kv", "--dgfm", "off",
                                               "--fill-waits", "off", "--admission", "optimistic",
                                               "--stop", "END", "--stop", "\n\n", "--resume"}))
                     .config;
  EXPECT_DOUBLE_EQ(c.kv_pool_mb, 0.25);
  EXPECT_EQ(c.engine.policy, KvPolicy::kLocal);
  EXPECT_EQ(c.engine.remote, RemoteAttention::kPullKv);
  EXPECT_FALSE(c.engine.dgfm);
  EXPECT_FALSE(c.engine.fill_waits);
  EXPECT_FALSE(c.engine.reserve_growth);
  EXPECT_EQ(c.stop.size(), 2u);
  EXPECT_TRUE(c.resume);
}

TEST(ParseGenerate, BackendAndWeightDtype) {
  const GenerateConfig d = parse_generate(with_required({})).config;
  EXPECT_EQ(d.backend, BackendChoice::kAuto);
  EXPECT_EQ(d.weight_dtype, WeightDtype::kAuto);
  const GenerateConfig c =
      parse_generate(with_required({"--backend", "cuda", "--weight-dtype", "f16"})).config;
  EXPECT_EQ(c.backend, BackendChoice::kCuda);
  EXPECT_EQ(c.weight_dtype, WeightDtype::kF16);
  EXPECT_EQ(rejected_option(with_required({"--backend", "gpu"})), "backend");
  EXPECT_EQ(rejected_option(with_required({"--weight-dtype", "fp8"})), "weight-dtype");
  // The CPU backend computes in f32 from the weights as stored: a narrower dtype is refused.
  EXPECT_EQ(rejected_option(with_required({"--backend", "cpu", "--weight-dtype", "bf16"})),
            "weight-dtype");
  EXPECT_EQ(rejected_option(with_required({"--backend", "cpu", "--weight-dtype", "f32"})), "");
}

TEST(ParseGenerate, HelpNeedsNoRequiredOption) {
  const auto p = parse_generate({"--help"});
  ASSERT_TRUE(p.help);
  EXPECT_NE(p.help->find("--kv-pool-mb"), std::string::npos);
  EXPECT_NE(p.help->find("--remote-attention"), std::string::npos);
}

TEST(ParseGenerate, ErrorsNameTheOption) {
  EXPECT_EQ(rejected_option({"--input", "a", "--output", "b"}), "model");
  EXPECT_EQ(rejected_option(with_required({"--top-p", "1.5"})), "top-p");
  EXPECT_EQ(rejected_option(with_required({"--block-tokens", "0"})), "block-tokens");
  EXPECT_EQ(rejected_option(with_required({"--threads", "many"})), "threads");
  EXPECT_EQ(rejected_option(with_required({"--kv-policy", "shared"})), "kv-policy");
  EXPECT_EQ(rejected_option(with_required({"--dgfm", "yes"})), "dgfm");
  EXPECT_EQ(rejected_option(with_required({"--fill-waits", "always"})), "fill-waits");
  EXPECT_EQ(rejected_option(with_required({"--admission", "greedy"})), "admission");
  EXPECT_EQ(rejected_option(with_required({"--no-such-option", "1"})), "no-such-option");
  EXPECT_EQ(rejected_option(with_required({"--resume", "--overwrite"})), "resume");
  EXPECT_EQ(rejected_option(with_required({"--min-new-tokens", "9", "--max-new-tokens", "8"})),
            "min-new-tokens");
}

TEST(ParseGenerate, ConfigFileSuppliesOptions) {
  const auto path = std::filesystem::temp_directory_path() / "infllm_cli_test.cfg";
  std::ofstream(path)
      << "model = /models/x\ninput = a.jsonl\noutput = b.jsonl\nblock-tokens = 32\n";
  const auto c = parse_generate({"--config", path.string()}).config;
  EXPECT_EQ(c.model, "/models/x");
  EXPECT_EQ(c.engine.instance.block_tokens, 32);
  EXPECT_EQ(rejected_option({"--config", "/nonexistent.cfg"}), "config");
}

std::string bench_rejects(const std::vector<std::string>& args) {
  return rejected_by(parse_bench, args);
}

TEST(ParseBench, DefaultsAndBothOptionForms) {
  const BenchConfig d = parse_bench({"mixed"}).config;
  EXPECT_EQ(d.name, "mixed");
  EXPECT_FALSE(d.full);
  EXPECT_EQ(d.ranks, 4);
  EXPECT_TRUE(d.fill_waits);
  EXPECT_TRUE(d.admission_reserve);
  EXPECT_EQ(d.remote_attention, RemoteAttention::kAuto);
  EXPECT_EQ(d.model, "");
  const BenchConfig c =
      parse_bench({"mixed", "--ranks=8", "--fill-waits", "off", "--admission=optimistic",
                   "--remote-attention", "pull-kv", "--model=/m", "--full"})
          .config;
  EXPECT_EQ(c.ranks, 8);
  EXPECT_FALSE(c.fill_waits);
  EXPECT_FALSE(c.admission_reserve);
  EXPECT_EQ(c.remote_attention, RemoteAttention::kPullKv);
  EXPECT_EQ(c.model, "/m");
  EXPECT_TRUE(c.full);
}

TEST(ParseBench, BadValuesNameTheirOption) {
  EXPECT_EQ(bench_rejects({"mixed", "--ranks=1"}), "ranks");
  EXPECT_EQ(bench_rejects({"mixed", "--ranks", "1"}), "ranks");
  EXPECT_EQ(bench_rejects({"mixed", "--ranks=65"}), "ranks");
  EXPECT_EQ(bench_rejects({"mixed", "--ranks=four"}), "ranks");
  EXPECT_EQ(bench_rejects({"forward", "--threads=-1"}), "threads");
  EXPECT_EQ(bench_rejects({"mixed", "--fill-waits=maybe"}), "fill-waits");
  EXPECT_EQ(bench_rejects({"mixed", "--admission", "eager"}), "admission");
  EXPECT_EQ(bench_rejects({"mixed", "--remote-attention=both"}), "remote-attention");
  EXPECT_EQ(bench_rejects({"mixed", "--frobnicate"}), "frobnicate");
  EXPECT_EQ(bench_rejects({"--full"}), "name");
}

TEST(ParseSimulate, DefaultsListsAndRefusals) {
  const SimulateConfig d = parse_simulate({}).config;
  EXPECT_EQ(d.device, "a100-80gb");
  EXPECT_EQ(d.instances, std::vector<int>{8});
  EXPECT_EQ(d.policies.size(), 2u);
  EXPECT_EQ(d.engine.instance.max_batch_tokens, 2048);
  const SimulateConfig c =
      parse_simulate({"--instances=2,4,32", "--policy", "pooled", "--fill-waits=off", "--tp", "2"})
          .config;
  EXPECT_EQ(c.instances, (std::vector<int>{2, 4, 32}));
  ASSERT_EQ(c.policies.size(), 1u);
  EXPECT_EQ(c.policies[0], KvPolicy::kPooled);
  EXPECT_FALSE(c.engine.fill_waits);
  EXPECT_EQ(c.tp, 2);
  const auto rejects = [](std::vector<std::string> args) {
    try {
      parse_simulate(args);
    } catch (const UsageError& e) {
      return e.option();
    }
    return std::string("(accepted)");
  };
  EXPECT_EQ(rejects({"--instances=2,,4"}), "instances");
  EXPECT_EQ(rejects({"--instances=0"}), "instances");
  EXPECT_EQ(rejects({"--policy=shared"}), "policy");
  EXPECT_EQ(rejects({"--long-min=10", "--long-max=5"}), "long-max");
  EXPECT_EQ(rejects({"--memory-fraction=nan"}), "memory-fraction");
  EXPECT_EQ(rejects({"--frobnicate"}), "frobnicate");
}

using infllm::testing::run_infllm;

TEST(InfllmExecutable, EverySubcommandHasHelp) {
  for (const auto& c : subcommands()) {
    const auto [code, out] = run_infllm(std::string(c.name) + " --help");
    EXPECT_EQ(code, 0) << c.name << ": " << out;
    EXPECT_NE(out.find(std::string("infllm ") + c.name), std::string::npos) << out;
  }
}

// `infllm simulate` as users run it: a table, the ratio line and the CSV; a JSONL workload with a
// key it does not know is refused naming the file and the key (exit 2).
TEST(InfllmExecutable, SimulateWritesItsTableAndRefusesBadWorkloads) {
  infllm::testing::TempDir tmp("infllm-simulate-test");
  const std::string csv = (tmp.path() / "sim.csv").string();
  auto [code, out] = run_infllm(
      "simulate --instances 2,4 --short 8 --long 2 --long-min 5000 "
      "--long-max 9000 --csv " +
      csv);
  EXPECT_EQ(code, 0) << out;
  EXPECT_NE(out.find("throughput pooled / local"), std::string::npos) << out;
  std::ifstream in(csv);
  int lines = 0;
  for (std::string line; std::getline(in, line);) ++lines;
  EXPECT_EQ(lines, 5);  // header + 2 counts x 2 policies
  const std::string bad = (tmp.path() / "bad.jsonl").string();
  std::ofstream(bad) << "{\"prompt_tokens\": 10, \"max_new_tokens\": 2, \"temperature\": 1}\n";
  const auto refused = run_infllm("simulate --input " + bad);
  EXPECT_EQ(refused.code, 2) << refused.out;
  EXPECT_NE(refused.out.find(bad), std::string::npos) << refused.out;
  EXPECT_NE(refused.out.find("temperature"), std::string::npos) << refused.out;
}

TEST(InfllmExecutable, HelpListsTheSubcommands) {
  const auto [code, out] = run_infllm("--help");
  EXPECT_EQ(code, 0);
  for (const auto& c : subcommands()) EXPECT_NE(out.find(c.name), std::string::npos) << c.name;
}

TEST(InfllmExecutable, BadOptionExitsTwoNamingIt) {
  const auto [code, out] =
      run_infllm("generate --model m --input i.jsonl --output o.jsonl --top-k -1");
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("--top-k"), std::string::npos) << out;
}

TEST(InfllmExecutable, BenchRanksIsCheckedInBothForms) {
  for (const char* args : {"bench mixed --ranks=1", "bench mixed --ranks 1"}) {
    const auto [code, out] = run_infllm(args);
    EXPECT_EQ(code, 2) << args;
    EXPECT_NE(out.find("--ranks"), std::string::npos) << args << ": " << out;
  }
}

TEST(InfllmExecutable, UnknownCommandExitsTwo) {
  const auto [code, out] = run_infllm("frobnicate");
  EXPECT_EQ(code, 2);
  EXPECT_NE(out.find("frobnicate"), std::string::npos);
}

}  // namespace
}  // namespace infllm::app
