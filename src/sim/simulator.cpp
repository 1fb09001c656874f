// simulator.cpp: see simulator.hpp.
#include "sim/simulator.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <random>

#include "core/errors.hpp"

namespace infllm::sim {

namespace {

// The driver calls every instance's phases itself; the loop only asks this port who it is.
class SimControl final : public ControlPort {
 public:
  SimControl(std::int32_t rank, std::int32_t size, std::vector<std::int32_t> nodes)
      : rank_(rank), size_(size), nodes_(std::move(nodes)) {}
  std::int32_t rank() const override { return rank_; }
  std::int32_t size() const override { return size_; }
  std::vector<std::int32_t> nodes() override { return nodes_; }
  InstanceDecision boundary(InstanceReport&&, const Decide&) override { throw misuse(); }
  void check_views(InstanceView&&, const CheckViews&) override { throw misuse(); }
  void arrive() override { throw misuse(); }
  bool all_arrived() override { throw misuse(); }
  void wait_all() override { throw misuse(); }

 private:
  static InternalError misuse() {
    return InternalError("simulator: the driver runs the boundary, not the control port");
  }
  std::int32_t rank_, size_;
  std::vector<std::int32_t> nodes_;
};

// Counts the bytes an instance sends or fetches, by whether the peer shares its node.
class SimTransport final : public BlockTransport {
 public:
  SimTransport(std::int32_t rank, std::size_t slot_bytes, std::int32_t slots,
               const std::vector<std::int32_t>& nodes)
      : rank_(rank), slot_bytes_(slot_bytes), slots_(slots), nodes_(nodes) {}
  bool carries_bytes() const override { return false; }
  std::size_t slot_bytes() const override { return slot_bytes_; }
  std::int32_t slots() const override { return slots_; }
  std::span<std::byte> local(SlotId) override { return {}; }
  void put_block(const void*, BlockRef dst) override { count(dst.rank); }
  void get_block(void*, BlockRef src) override { count(src.rank); }
  void flush_all() override {}
  void sync() override {}

  // Seconds of what was counted since the last call, on the cost model's links.
  double take_seconds(const CostModel& cost) {
    const double s = cost.link(true).seconds(node_bytes_) + cost.link(false).seconds(net_bytes_);
    node_bytes_ = net_bytes_ = 0;
    return s;
  }

 private:
  void count(RankId peer) {
    if (peer.value() == rank_) return;
    const bool same =
        nodes_[static_cast<std::size_t>(peer.value())] == nodes_[static_cast<std::size_t>(rank_)];
    (same ? node_bytes_ : net_bytes_) += static_cast<double>(slot_bytes_);
  }
  std::int32_t rank_;
  std::size_t slot_bytes_;
  std::int32_t slots_;
  const std::vector<std::int32_t>& nodes_;
  double node_bytes_ = 0, net_bytes_ = 0;
};

// What a finished request's bytes carry across the boundary.
struct Finished {
  std::int64_t generated = 0;
  double first_token_s = 0;
  double finish_s = 0;
  std::int64_t remote_max = 0;
};

// Simulated steps: each advances this instance's clock by the cost model's time.
class SimExecutor final : public StepExecutor {
 public:
  SimExecutor(const CostModel& cost, std::int32_t rank, const std::vector<std::int32_t>& nodes,
              std::vector<double>& clocks)
      : cost_(cost), rank_(rank), nodes_(nodes), clocks_(clocks) {}

  void start(const RequestSpec& spec) override {
    seqs_[spec.id] = Seq{spec.prompt_tokens, 0, spec.max_new_tokens, 0};
  }
  void drop(RequestId request) override { seqs_.erase(request); }
  std::int64_t push_bytes_per_row() const override {
    const ModelShape& m = cost_.model();
    return push_query_bytes_per_row(m.layers, m.heads, m.head_dim);
  }
  int layers() const override { return static_cast<int>(cost_.model().layers); }

  std::vector<RequestId> step(std::span<const StepItem> items, std::span<const std::byte>, bool,
                              StepStats& stats) override {
    const double compute = cost_.step_seconds(costs(items));
    double comm = 0;
    const ModelShape& m = cost_.model();
    for (const StepItem& item : items) {
      for (const RemotePart& part : item.plan.pushed) {
        std::int64_t kv = 0;
        for (const KvBlock& b : part.blocks) kv += b.tokens;
        const std::int64_t rows = item.growth.tokens;
        serve_[part.creditor.value()] += cost_.serve_seconds(kv, rows);
        const double q = static_cast<double>(rows * m.heads * m.head_dim * 4);
        const double p = static_cast<double>(rows * m.heads * (m.head_dim + 2) * 4);
        const bool same = nodes_[static_cast<std::size_t>(part.creditor.value())] ==
                          nodes_[static_cast<std::size_t>(rank_)];
        // One query message and one answer per layer.
        comm += static_cast<double>(m.layers) *
                (cost_.link(same).seconds(q) + cost_.link(same).seconds(p));
        stats.query_bytes += static_cast<std::int64_t>(q) * m.layers;
        stats.partial_bytes += static_cast<std::int64_t>(p) * m.layers;
      }
    }
    clock() += compute + comm;
    stats.compute_s += compute;
    stats.wait_s += comm;
    return accept(items);
  }

  std::optional<std::vector<RequestId>> fill_step(std::span<const StepItem> items,
                                                  const std::function<bool(int)>& keep_going,
                                                  StepStats& stats) override {
    const double per_layer = cost_.step_seconds(costs(items)) / layers();
    for (int layer = 0; layer < layers(); ++layer) {
      if (!keep_going(layer)) return std::nullopt;
      clock() += per_layer;
      stats.compute_s += per_layer;
    }
    return accept(items);
  }

  std::vector<std::uint8_t> result(RequestId request, std::int64_t remote_max,
                                   const std::vector<std::int32_t>&) override {
    const Seq s = seqs_.at(request);
    seqs_.erase(request);
    const Finished f{s.generated, s.first_token_s, clock(), remote_max};
    std::vector<std::uint8_t> bytes(sizeof f);
    std::memcpy(bytes.data(), &f, sizeof f);
    return bytes;
  }

  // The seconds this instance spent answering others' queries since the last call.
  std::map<std::int32_t, double> take_serve() { return std::exchange(serve_, {}); }

 private:
  struct Seq {
    std::int64_t len = 0;  // prompt + generated
    std::int64_t generated = 0;
    std::int64_t max_new = 0;
    double first_token_s = 0;
  };
  double& clock() { return clocks_[static_cast<std::size_t>(rank_)]; }
  // The attention this instance computes itself: over the blocks at home and pulled ones (a
  // creditor answers for the blocks it holds, and pays for it in take_serve()).
  std::vector<ItemCost> costs(std::span<const StepItem> items) const {
    std::vector<ItemCost> out;
    for (const StepItem& item : items) {
      const Growth& g = item.growth;
      std::int64_t here = 0;
      for (const KvBlock& b : item.plan.local) here += b.tokens;
      for (const KvBlock& b : item.plan.pulled) here += b.tokens;
      out.push_back(ItemCost{g.tokens, here, g.first_pos + g.tokens == seqs_.at(g.request).len});
    }
    return out;
  }
  std::vector<RequestId> accept(std::span<const StepItem> items) {
    std::vector<RequestId> ended;
    for (const StepItem& item : items) {
      const Growth& g = item.growth;
      Seq& s = seqs_.at(g.request);
      if (g.first_pos + g.tokens != s.len) continue;  // a prefill chunk before the last
      ++s.len;
      if (++s.generated == 1) s.first_token_s = clock();
      if (s.generated >= s.max_new) ended.push_back(g.request);
    }
    return ended;
  }

  const CostModel& cost_;
  std::int32_t rank_;
  const std::vector<std::int32_t>& nodes_;
  std::vector<double>& clocks_;
  std::map<RequestId, Seq> seqs_;
  std::map<std::int32_t, double> serve_;
};

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const std::size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

SimResult simulate(const CostModel& cost, const std::vector<SimRequest>& requests,
                   const SimOptions& o) {
  const std::int32_t n = o.instances;
  const EngineOptions& e = o.engine;
  if (n <= 0 || e.instance.pool_slots <= 1) {
    throw InternalError("simulate: instances and a pool of at least 2 rBlocks are needed");
  }
  std::vector<std::int32_t> nodes;
  for (std::int32_t r = 0; r < n; ++r) nodes.push_back(r / std::max<std::int32_t>(1, o.per_node));
  const auto block_bytes = static_cast<std::size_t>(cost.block_bytes(e.instance.block_tokens));
  std::vector<double> clocks(static_cast<std::size_t>(n), 0.0);
  double now = 0;

  SimResult out;
  out.requests.resize(requests.size());
  for (std::size_t i = 0; i < requests.size(); ++i) {
    out.requests[i].id = static_cast<std::int64_t>(i);
    out.requests[i].prompt_tokens = requests[i].prompt_tokens;
    out.requests[i].arrival_s = requests[i].arrival_s;
  }
  ManagerHooks mh;
  mh.on_result = [&](RequestId id, std::vector<std::uint8_t>&& bytes, int preemptions) {
    Finished f;
    std::memcpy(&f, bytes.data(), sizeof f);
    RequestOutcome& r = out.requests.at(static_cast<std::size_t>(id.value()));
    r.status = "done";
    r.generated = f.generated;
    r.first_token_s = f.first_token_s;
    r.finish_s = f.finish_s;
    r.preemptions = preemptions;
    r.remote_blocks_max = f.remote_max;
  };
  mh.on_failed = [&](const Verdict& v, int preemptions) {
    RequestOutcome& r = out.requests.at(static_cast<std::size_t>(v.request.value()));
    r.status = "failed";
    r.preemptions = preemptions;
  };
  mh.clock = [&] { return now; };
  // The managers' settings are the engine's own (core/engine_options.hpp).
  const GManagerConfig gc = gmanager_config(n, block_bytes, e, nodes);
  ManagerLoop manager(gc, mh);
  // Requests in arrival order (stable: equal arrivals keep their order, which is their age).
  std::vector<std::size_t> arrivals(requests.size());
  for (std::size_t i = 0; i < arrivals.size(); ++i) arrivals[i] = i;
  std::stable_sort(arrivals.begin(), arrivals.end(), [&](std::size_t a, std::size_t b) {
    return requests[a].arrival_s < requests[b].arrival_s;
  });
  std::size_t arrived = 0;
  // Submits every request that has arrived by `now`.
  const auto admit_arrivals = [&] {
    for (; arrived < arrivals.size() && requests[arrivals[arrived]].arrival_s <= now; ++arrived) {
      const std::size_t i = arrivals[arrived];
      const RequestSpec spec{RequestId{static_cast<std::int64_t>(i)}, requests[i].prompt_tokens,
                             requests[i].max_new_tokens, static_cast<std::int64_t>(arrived)};
      if (manager.submit(spec)) out.requests[i].status = "rejected";
    }
  };

  LoopOptions lo;
  lo.remote = e.remote;
  std::vector<std::unique_ptr<SimControl>> controls;
  std::vector<std::unique_ptr<SimTransport>> transports;
  std::vector<std::unique_ptr<SimExecutor>> executors;
  std::vector<std::unique_ptr<InstanceLoop>> loops;
  for (std::int32_t r = 0; r < n; ++r) {
    controls.push_back(std::make_unique<SimControl>(r, n, nodes));
    transports.push_back(
        std::make_unique<SimTransport>(r, block_bytes, e.instance.pool_slots, nodes));
    executors.push_back(std::make_unique<SimExecutor>(cost, r, nodes, clocks));
    loops.push_back(std::make_unique<InstanceLoop>(*controls.back(), *transports.back(),
                                                   *executors.back(), rmanager_config(RankId{r}, e),
                                                   lo, r == 0 ? &manager : nullptr));
  }
  const double boundary_s =
      2.0 * cost.link(n <= o.per_node).latency_s * std::ceil(std::log2(std::max(2, n)));
  const auto ranks = static_cast<std::size_t>(n);
  for (std::int64_t step = 1;; ++step) {
    std::vector<InstanceReport> reports;
    for (auto& loop : loops) reports.push_back(loop->report(step));
    now = *std::max_element(clocks.begin(), clocks.end()) + boundary_s;
    // An idle cluster waits for the next request.
    const GManager& gm = manager.gmanager();
    if (gm.queued() == 0 && gm.running() == 0 && arrived < arrivals.size()) {
      now = std::max(now, requests[arrivals[arrived]].arrival_s);
    }
    std::fill(clocks.begin(), clocks.end(), now);
    admit_arrivals();
    const std::vector<InstanceDecision> ds = manager.decide(step, std::move(reports));
    bool go = true;
    for (std::size_t r = 0; r < ranks; ++r) go = loops[r]->apply(ds[r]) && go;
    if (e.check_invariants) {
      std::vector<InstanceView> views;
      for (std::size_t r = 0; r < ranks; ++r) {
        loops[r]->rmanager().check_invariants();
        views.push_back(instance_view(loops[r]->rmanager(), RankId{static_cast<std::int32_t>(r)}));
      }
      manager.check(std::move(views));
    }
    if (!go && arrived == arrivals.size()) {
      manager.summary().steps = step - 1;
      break;
    }
    if (!go) continue;  // nothing left until the next arrival
    for (std::size_t r = 0; r < ranks; ++r) clocks[r] += transports[r]->take_seconds(cost);
    for (std::size_t r = 0; r < ranks; ++r) {
      loops[r]->run_step();
      clocks[r] += transports[r]->take_seconds(cost);  // pulls
    }
    for (std::size_t r = 0; r < ranks; ++r) {
      for (const auto& [creditor, s] : executors[r]->take_serve()) {
        clocks[static_cast<std::size_t>(creditor)] += s;
      }
    }
    if (e.fill_waits && n > 1) {
      const double arrival = *std::max_element(clocks.begin(), clocks.end());
      for (std::size_t r = 0; r < ranks; ++r) {
        const auto behind = [&clocks, r, arrival](int) { return clocks[r] < arrival; };
        while (clocks[r] < arrival && loops[r]->fill_step(behind)) {
        }
      }
    }
    for (auto& loop : loops) loop->end_step();
  }
  out.summary = std::move(manager.summary());
  out.makespan_s = now;
  std::vector<double> finishes;
  for (RequestOutcome& r : out.requests) {
    if (r.status != "done") continue;
    const std::int64_t total = r.prompt_tokens + r.generated;
    out.done_tokens += total;
    out.longest_done = std::max(out.longest_done, total);
    finishes.push_back(r.finish_s - r.arrival_s);
  }
  out.median_finish_s = median(finishes);
  return out;
}

std::vector<SimRequest> make_workload(const WorkloadSpec& spec) {
  std::mt19937_64 rng(spec.seed);
  std::vector<SimRequest> out;
  for (std::int64_t i = 0; i < spec.short_count; ++i) {
    out.push_back(SimRequest{spec.short_prompt, spec.short_new, 0});
  }
  std::uniform_int_distribution<std::int64_t> len(spec.long_min,
                                                  std::max(spec.long_min, spec.long_max));
  for (std::int64_t i = 0; i < spec.long_count; ++i) {
    out.push_back(SimRequest{len(rng), spec.long_new, 0});
  }
  std::shuffle(out.begin(), out.end(), rng);
  if (spec.rate > 0) {
    std::exponential_distribution<double> gap(spec.rate);
    double t = 0;
    for (SimRequest& r : out) r.arrival_s = t += gap(rng);
  }
  return out;
}

}  // namespace infllm::sim
