// cmd_simulate.cpp: `infllm simulate` (docs/simulate.md): the cluster simulator's runs, one per
// instance count and policy, as a table on stdout and optionally CSV.
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "app/cli.hpp"
#include "core/errors.hpp"
#include "io/write_file.hpp"
#include "sim/simulator.hpp"

namespace infllm::app {

namespace {

namespace fs = std::filesystem;

// A profile given by name (a file in sim/<kind>/) or by path.
std::string profile_path(const std::string& kind, const std::string& name_or_path,
                         const char* option) {
  if (name_or_path.find('/') != std::string::npos || name_or_path.ends_with(".json")) {
    return name_or_path;
  }
  const fs::path p = fs::path(INFLLM_SIM_PROFILES) / kind / (name_or_path + ".json");
  if (!fs::exists(p)) {
    std::string known;
    for (const auto& f : fs::directory_iterator(fs::path(INFLLM_SIM_PROFILES) / kind)) {
      known += (known.empty() ? "" : ", ") + f.path().stem().string();
    }
    throw UsageError(option, "no profile '" + name_or_path + "' (known: " + known + ")");
  }
  return p.string();
}

// JSONL: one request per line, {"prompt_tokens": N, "max_new_tokens": M, "arrival_s": T}
// (arrival_s optional: 0); "tokens" (an array) may stand for the prompt, as in generate's input,
// and "id" is allowed.
std::vector<sim::SimRequest> read_workload(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw InputError(path, "", "cannot be opened");
  std::vector<sim::SimRequest> out;
  std::string line;
  for (std::int64_t n = 1; std::getline(in, line); ++n) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string where = "line " + std::to_string(n);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw InputError(path, where, std::string("is not JSON: ") + e.what());
    }
    if (!j.is_object()) throw InputError(path, where, "is not a JSON object");
    for (const auto& [k, v] : j.items()) {
      if (k != "prompt_tokens" && k != "max_new_tokens" && k != "tokens" && k != "id" &&
          k != "arrival_s") {
        throw InputError(path, where, "unknown key '" + k + "'");
      }
    }
    sim::SimRequest r;
    if (j.contains("prompt_tokens") && j.at("prompt_tokens").is_number_integer()) {
      r.prompt_tokens = j.at("prompt_tokens").get<std::int64_t>();
    } else if (j.contains("tokens") && j.at("tokens").is_array()) {
      r.prompt_tokens = static_cast<std::int64_t>(j.at("tokens").size());
    } else {
      throw InputError(path, where, "needs prompt_tokens (an integer) or tokens (an array)");
    }
    if (!j.contains("max_new_tokens") || !j.at("max_new_tokens").is_number_integer()) {
      throw InputError(path, where, "needs max_new_tokens (an integer)");
    }
    r.max_new_tokens = j.at("max_new_tokens").get<std::int64_t>();
    if (j.contains("arrival_s")) {
      const auto& a = j.at("arrival_s");
      if (!a.is_number() || !std::isfinite(a.get<double>()) || a.get<double>() < 0) {
        throw InputError(path, where, "arrival_s must be a number of seconds, at least 0");
      }
      r.arrival_s = a.get<double>();
    }
    if (r.prompt_tokens <= 0 || r.max_new_tokens <= 0) {
      throw InputError(path, where, "prompt_tokens and max_new_tokens must be positive");
    }
    out.push_back(r);
  }
  if (out.empty()) throw InputError(path, "", "has no request");
  return out;
}

struct Row {
  int instances = 0;
  KvPolicy policy = KvPolicy::kLocal;
  sim::SimResult r;
};

std::string table(const std::vector<Row>& rows, bool csv) {
  std::ostringstream os;
  os << (csv ? "instances,policy,done,not_done,makespan_s,tok_per_s,longest,median_finish_s,"
               "loans,preempt,dgfm_moves,push_GB,pull_GB,query_GB,partial_GB\n"
             : "instances    policy       done   not_done makespan_s  tok_per_s    longest "
               "median_finish_s      loans    preempt dgfm_moves    push_GB    pull_GB   "
               "query_GB partial_GB\n");
  for (const Row& row : rows) {
    const sim::SimResult& r = row.r;
    std::int64_t done = 0;
    for (const auto& q : r.requests) done += q.status == "done" ? 1 : 0;
    const auto gb = [](std::int64_t b) { return static_cast<double>(b) / 1e9; };
    const StepStats& t = r.summary.totals;
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  csv ? "%d,%s,%lld,%lld,%.3f,%.1f,%lld,%.3f,%lld,%lld,%lld,%.3f,%.3f,%.3f,%.3f\n"
                      : "%9d %9s %10lld %10lld %10.2f %10.0f %10lld %15.2f %10lld %10lld %10lld "
                        "%10.2f %10.2f %10.2f %10.2f\n",
                  row.instances, kv_policy_name(row.policy), static_cast<long long>(done),
                  static_cast<long long>(r.requests.size()) - static_cast<long long>(done),
                  r.makespan_s, r.tokens_per_s(), static_cast<long long>(r.longest_done),
                  r.median_finish_s, static_cast<long long>(r.summary.loans_total),
                  static_cast<long long>(r.summary.preemptions),
                  static_cast<long long>(r.summary.dgfm_moves), gb(t.push_bytes), gb(t.pull_bytes),
                  gb(t.query_bytes), gb(t.partial_bytes));
    os << buf;
  }
  return os.str();
}

}  // namespace

int run_simulate(const SimulateConfig& c) {
  sim::ModelShape shape = sim::load_model_shape(profile_path("models", c.model, "model"));
  shape.tp = c.tp;
  const sim::CostModel cost(sim::load_device(profile_path("devices", c.device, "device")), shape,
                            sim::load_link(profile_path("links", c.node_link, "node-link")),
                            sim::load_link(profile_path("links", c.net_link, "net-link")));
  if (c.tp > c.per_node) throw UsageError("tp", "an instance's devices must share a node");
  std::vector<sim::SimRequest> workload;
  if (!c.input.empty()) {
    workload = read_workload(c.input);
  } else {
    sim::WorkloadSpec w;
    w.short_count = c.short_count;
    w.short_prompt = c.short_prompt;
    w.short_new = c.short_new;
    w.long_count = c.long_count;
    w.long_min = c.long_min;
    w.long_max = c.long_max;
    w.long_new = c.long_new;
    w.rate = c.rate;
    w.seed = c.seed;
    workload = sim::make_workload(w);
    if (workload.empty()) throw UsageError("short", "the generated workload has no request");
  }
  sim::SimOptions o;
  o.per_node = c.per_node / c.tp;  // instances per node
  o.engine = c.engine;
  const int bt = c.engine.instance.block_tokens;
  const std::int64_t blocks =
      c.pool_blocks > 0 ? c.pool_blocks : cost.pool_blocks(bt, c.memory_fraction);
  if (blocks < 2) {
    throw UsageError("pool-blocks",
                     "the device memory left after the weights holds fewer than 2 rBlocks");
  }
  o.engine.instance.pool_slots = static_cast<std::int32_t>(std::min<std::int64_t>(blocks, 1 << 30));

  std::int64_t prompt = 0, longest = 0;
  for (const auto& r : workload) {
    prompt += r.prompt_tokens;
    longest = std::max(longest, r.prompt_tokens + r.max_new_tokens);
  }
  std::cout << "# simulate: " << shape.name << " on " << cost.device().name
            << (c.tp > 1 ? " x" + std::to_string(c.tp) + " (tensor parallel)" : std::string())
            << ", " << o.per_node << " instances per node (" << cost.link(true).name << "; "
            << cost.link(false).name << " between nodes); pool " << o.engine.instance.pool_slots
            << " rBlocks of " << bt << " tokens per instance (" << o.engine.instance.pool_slots * bt
            << " tokens, "
            << static_cast<double>(o.engine.instance.pool_slots) *
                   static_cast<double>(cost.block_bytes(bt)) * c.tp / 1e9
            << " GB); " << workload.size() << " requests, " << prompt
            << " prompt tokens, the longest " << longest << " tokens\n";
  std::vector<Row> rows;
  for (int n : c.instances) {
    o.instances = n;
    for (KvPolicy p : c.policies) {
      o.engine.policy = p;
      rows.push_back(Row{n, p, sim::simulate(cost, workload, o)});
    }
  }
  std::cout << table(rows, false);
  for (std::size_t i = 0; i + 1 < rows.size(); ++i) {
    if (rows[i].instances != rows[i + 1].instances || rows[i].policy != KvPolicy::kLocal ||
        rows[i + 1].policy != KvPolicy::kPooled) {
      continue;
    }
    const double tl = rows[i].r.tokens_per_s(), tp = rows[i + 1].r.tokens_per_s();
    std::printf(
        "# %d instances: throughput pooled / local %.2fx; longest done %lld / %lld tokens "
        "(%.2fx)\n",
        rows[i].instances, tl > 0 ? tp / tl : 0.0,
        static_cast<long long>(rows[i + 1].r.longest_done),
        static_cast<long long>(rows[i].r.longest_done),
        rows[i].r.longest_done > 0
            ? double(rows[i + 1].r.longest_done) / double(rows[i].r.longest_done)
            : 0.0);
  }
  if (!c.csv.empty()) io::write_file(c.csv, table(rows, true));
  return 0;
}

}  // namespace infllm::app
