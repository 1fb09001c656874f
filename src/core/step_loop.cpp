// step_loop.cpp: see step_loop.hpp.
#include "core/step_loop.hpp"

#include <algorithm>
#include <cstring>
#include <utility>

#include "core/errors.hpp"

namespace infllm {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

}  // namespace

ManagerLoop::ManagerLoop(const GManagerConfig& config, ManagerHooks hooks)
    : gm_(config), hooks_(std::move(hooks)) {}

std::vector<InstanceDecision> ManagerLoop::decide(std::int64_t step,
                                                  std::vector<InstanceReport>&& in) {
  std::vector<StepReport> reports;
  ClusterStep cs;
  cs.step = step - 1;
  for (InstanceReport& p : in) {
    for (FinishedRequest& f : p.results) {
      hooks_.on_result(f.id, std::move(f.record), preemptions_[f.id]);
    }
    add(cs.sum, p.stats);
    cs.max_compute_s = std::max(cs.max_compute_s, p.stats.compute_s);
    reports.push_back(std::move(p.report));
  }
  const std::vector<RankDecision> ds = gm_.decide(reports);
  for (const RankDecision& d : ds) {
    for (RequestId q : d.preempt) {
      ++preemptions_[q];
      ++summary_.preemptions;
    }
    for (const Verdict& v : d.fail) hooks_.on_failed(v, preemptions_[v.request]);
  }
  const bool end = gm_.queued() == 0 && gm_.running() == 0;
  record_step(cs, ds, end);
  const bool exchange = gm_.ledger().total_blocks() > 0;
  std::vector<InstanceDecision> out;
  out.reserve(ds.size());
  for (const RankDecision& d : ds) out.push_back(InstanceDecision{d, end, exchange});
  return out;
}

void ManagerLoop::check(std::vector<InstanceView>&& views) const {
  gm_.check_invariants();
  check_cluster(gm_, views);
}

void ManagerLoop::record_step(const ClusterStep& sums, const std::vector<RankDecision>& ds,
                              bool end) {
  ClusterStep cs = sums;
  cs.ledger_blocks = gm_.ledger().total_blocks();
  cs.loans_total = gm_.counters().grants;
  cs.dgfm_moves = gm_.counters().moves;
  cs.running = static_cast<std::int64_t>(gm_.running());
  cs.queued = static_cast<std::int64_t>(gm_.queued());
  cs.wall_s = hooks_.clock ? hooks_.clock() : since(t0_);
  if (cs.step > 0) {
    // The pool figures are the peak and the cluster's size, not sums over steps.
    const std::int32_t peak = std::max(summary_.totals.pool_used, cs.sum.pool_used);
    add(summary_.totals, cs.sum);
    summary_.totals.pool_used = peak;
    summary_.totals.pool_slots = cs.sum.pool_slots;
    summary_.ledger_max = std::max(summary_.ledger_max, cs.ledger_blocks);
    summary_.per_step.push_back(cs);
    if (hooks_.on_step) hooks_.on_step(cs);
  }
  const std::int64_t boundary = cs.step + 1;
  const bool stop = std::any_of(ds.begin(), ds.end(), [](const auto& x) { return x.stop; });
  if (boundary % 16 == 0 || end || stop) {
    const auto ranks = static_cast<std::int32_t>(ds.size());
    for (std::int32_t debtor = 0; debtor < ranks; ++debtor) {
      for (const auto& [creditor, blocks] : gm_.ledger().creditors_of(RankId{debtor})) {
        summary_.ledger_snapshots.push_back({boundary, debtor, creditor, blocks});
      }
    }
  }
  summary_.loans_total = cs.loans_total;
  summary_.dgfm_moves = cs.dgfm_moves;
  summary_.ledger_outstanding_end = cs.ledger_blocks;
  summary_.prefill_tokens = summary_.totals.prefill_tokens;
  summary_.decode_tokens = summary_.totals.decode_tokens;
}

InstanceLoop::InstanceLoop(ControlPort& control, BlockTransport& blocks, StepExecutor& executor,
                           const RManagerConfig& config, const LoopOptions& options,
                           ManagerLoop* manager)
    : control_(control),
      blocks_(blocks),
      executor_(executor),
      options_(options),
      manager_(manager),
      rmanager_(config),
      me_(config.rank) {
  if ((manager_ != nullptr) != (control_.rank() == 0)) {
    throw InternalError("step loop: instance 0, and only it, hosts the gManager");
  }
  if (config.rank.value() != control_.rank() || config.capacity != blocks_.slots()) {
    throw InternalError("step loop: the rManager's rank and pool differ from the ports'");
  }
}

InstanceLoop::Ran InstanceLoop::run() {
  for (std::int64_t step = 1;; ++step) {
    const ControlPort::Decide decide = [this, step](std::vector<InstanceReport>&& reports) {
      return manager_->decide(step, std::move(reports));
    };
    const bool go = apply(control_.boundary(report(step), decide));
    if (options_.check_invariants) check_invariants();
    if (!go) {
      if (manager_ != nullptr) {
        manager_->summary().steps = step - 1;
        manager_->summary().stopped = stopped_;
      }
      return Ran{step - 1, stopped_};
    }
    run_step();
    if (options_.fill_waits && control_.size() > 1) fill_wait();
    end_step();
  }
}

InstanceReport InstanceLoop::report(std::int64_t step) {
  boundary_start_ = Clock::now();
  if (options_.stop && options_.stop()) rmanager_.request_stop();
  InstanceReport report{rmanager_.make_report(step), stats_, std::move(finished_)};
  finished_.clear();
  return report;
}

bool InstanceLoop::apply(const InstanceDecision& mine) {
  const RankDecision& d = mine.decision;
  rmanager_.apply(d);
  if (mine.end || d.stop) {
    stopped_ = d.stop && !mine.end;
    return false;
  }
  stats_ = StepStats{};
  exchange_ = mine.exchange;
  for (RequestId q : d.preempt) {
    executor_.drop(q);
    remote_.erase(q);
  }
  for (const Verdict& v : d.fail) {
    executor_.drop(v.request);
    remote_.erase(v.request);
  }
  for (const Placement& p : d.placements) executor_.start(p.spec);
  start_data_ops(d);
  stats_.comm_s += since(boundary_start_);
  return true;
}

void InstanceLoop::end_step() {
  stats_.pool_used = rmanager_.stats().used;
  stats_.pool_slots = rmanager_.config().capacity;
}

void InstanceLoop::check_invariants() {
  rmanager_.check_invariants();
  control_.check_views(instance_view(rmanager_, me_), [this](std::vector<InstanceView>&& views) {
    manager_->check(std::move(views));
  });
}

void InstanceLoop::start_data_ops(const RankDecision& d) {
  write_committed_scratch(d);
  std::erase_if(staged_,
                [&](const auto& kv) { return rmanager_.requests().count(kv.second.first) == 0; });
  // Pushes granted at this boundary: full local blocks go to their creditor slots.
  const auto bytes = static_cast<std::int64_t>(blocks_.slot_bytes());
  for (const auto& [id, p] : rmanager_.requests()) {
    for (const BlockEntry& e : p.table.entries()) {
      if (e.state != BlockState::kPushing) continue;
      blocks_.put_block(blocks_.local(e.ref.slot).data(), e.target);
      stats_.push_bytes += bytes;
    }
  }
  start_moves(d);
  blocks_.sync();
}

// Committed moves that went through scratch: their copy goes into the vacated slot now.
void InstanceLoop::write_committed_scratch(const RankDecision& d) {
  bool wrote = false;
  for (const BlockMove& m : d.commits) {
    if (m.home != me_ || !m.via_scratch) continue;
    const auto it = staged_.find(m.id.value());
    if (it == staged_.end()) continue;
    if (m.to.rank == me_) {
      if (blocks_.carries_bytes()) {
        std::memcpy(blocks_.local(m.to.slot).data(), it->second.second.data(),
                    blocks_.slot_bytes());
      }
    } else {
      blocks_.put_block(it->second.second.data(), m.to);
      wrote = true;
    }
    stats_.dgfm_bytes += static_cast<std::int64_t>(blocks_.slot_bytes());
    staged_.erase(it);
  }
  if (wrote) blocks_.flush_all();  // the scratch writes land before anyone reads them this step
}

// DGFM moves this instance carries out (it is the block's home): copy from the source, which
// stays authoritative until the commit.
void InstanceLoop::start_moves(const RankDecision& d) {
  const std::size_t bytes = blocks_.slot_bytes();
  std::vector<std::pair<std::vector<std::byte>, BlockRef>> relay;
  for (const BlockMove& m : d.moves) {
    if (m.home != me_) continue;
    if (m.via_scratch) {
      auto& buf = staged_[m.id.value()];
      buf.first = m.request;
      if (blocks_.carries_bytes()) buf.second.resize(bytes);
      blocks_.get_block(buf.second.data(), m.from);
    } else if (m.to.rank == me_) {
      blocks_.get_block(blocks_.local(m.to.slot).data(), m.from);
      stats_.dgfm_bytes += static_cast<std::int64_t>(bytes);
    } else {
      relay.emplace_back(std::vector<std::byte>(blocks_.carries_bytes() ? bytes : 0), m.to);
      blocks_.get_block(relay.back().first.data(), m.from);
      stats_.dgfm_bytes += static_cast<std::int64_t>(bytes);
    }
  }
  if (!d.moves.empty()) blocks_.flush_all();
  for (const auto& [buf, to] : relay) blocks_.put_block(buf.data(), to);
}

StepItem InstanceLoop::plan_item(const Growth& g, std::vector<BlockRef>& pulls) {
  const std::int32_t bt = rmanager_.config().block_tokens;
  const BlockTable& table = rmanager_.requests().at(g.request).table;
  const std::int64_t end = g.first_pos + g.tokens;
  RemoteUse& use = remote_[g.request];
  StepItem item{g, {}, {}};
  std::map<std::int32_t, std::vector<KvBlock>> remote;
  for (std::int32_t i = 0; i < table.size(); ++i) {
    const BlockEntry& e = table.at(i);
    const std::int64_t first = static_cast<std::int64_t>(i) * bt;
    const auto ntok = static_cast<std::int32_t>(std::min<std::int64_t>(bt, end - first));
    if (ntok <= 0) break;
    if (e.ref.rank == me_) {
      item.slots.push_back(e.ref.slot);
      item.plan.local.push_back(KvBlock{e.ref.slot, first, ntok});
    } else {
      item.slots.push_back(SlotId{0});  // never written: only tails are, at home
      remote[e.ref.rank.value()].push_back(KvBlock{e.ref.slot, first, ntok});
      use.creditors.insert(e.ref.rank.value());
    }
  }
  use.max = std::max<std::int64_t>(use.max, table.remote_blocks());
  // auto: pull when the blocks' bytes are fewer than the step's queries and partial states.
  const auto block_bytes = static_cast<std::int64_t>(blocks_.slot_bytes());
  for (auto& [c, list] : remote) {
    bool pull = options_.remote == RemoteAttention::kPullKv;
    if (options_.remote == RemoteAttention::kAuto) {
      pull = static_cast<std::int64_t>(list.size()) * block_bytes <
             g.tokens * executor_.push_bytes_per_row();
    }
    stats_.remote_blocks += static_cast<std::int64_t>(list.size());
    if (!pull) {
      item.plan.pushed.push_back(RemotePart{RankId{c}, std::move(list)});
      continue;
    }
    for (KvBlock b : list) {
      pulls.push_back(BlockRef{RankId{c}, b.slot});
      b.slot = SlotId{static_cast<std::int32_t>(pulls.size() - 1)};
      item.plan.pulled.push_back(b);
    }
  }
  stats_.local_blocks += static_cast<std::int64_t>(item.plan.local.size());
  return item;
}

void InstanceLoop::run_step() {
  const auto tp = Clock::now();
  const std::vector<Growth> growth = rmanager_.grow_step();
  std::vector<StepItem> items;
  items.reserve(growth.size());
  std::vector<BlockRef> pulls;
  for (const Growth& g : growth) {
    items.push_back(plan_item(g, pulls));
    (g.prefill ? stats_.prefill_tokens : stats_.decode_tokens) += g.tokens;
  }
  const std::size_t bytes = blocks_.slot_bytes();
  // A transport that counts instead of moving (the simulator's) gets no buffers.
  const bool carries = blocks_.carries_bytes();
  std::vector<std::byte> pulled(carries ? pulls.size() * bytes : 0);
  for (std::size_t k = 0; k < pulls.size(); ++k) {
    blocks_.get_block(carries ? pulled.data() + k * bytes : nullptr, pulls[k]);
  }
  if (!pulls.empty()) blocks_.flush_all();
  stats_.pull_bytes += static_cast<std::int64_t>(pulls.size() * bytes);
  stats_.comm_s += since(tp);
  stats_.batch = static_cast<std::int32_t>(items.size());
  finish(executor_.step(items, pulled, exchange_, stats_));
  const auto tc = Clock::now();
  blocks_.flush_all();  // pushes and moves complete before the report says so
  stats_.comm_s += since(tc);
  if (options_.after_step) options_.after_step();
}

void InstanceLoop::finish(const std::vector<RequestId>& ended) {
  for (RequestId id : ended) {
    const RemoteUse use = remote_[id];
    finished_.push_back(FinishedRequest{
        id,
        executor_.result(id, use.max,
                         std::vector<std::int32_t>(use.creditors.begin(), use.creditors.end()))});
    rmanager_.finish_request(id);
    remote_.erase(id);
  }
}

// Filling the wait for slower instances (fill waits): after its step, an instance marks its
// arrival and, until every instance has arrived, runs extra steps of the requests whose KV is
// all in its own pool. They touch no other instance's memory and no block of the last
// boundary's decisions (RManager::plan_home_step), so the boundary that follows sees them as
// part of this step. Fill steps take the full token budget: smaller ones (an eighth was tried)
// cost more per token than the last instance to arrive saves by waiting less. Instead, a fill
// step checks the arrivals before each layer's attention and, once every instance has arrived,
// is cut: its work is dropped (nothing was committed: the growth is recorded and the tokens
// sampled only after a whole step; the KV it wrote lies past every request's committed length
// and is written again when those positions are computed), so the last instance to arrive
// waits for the rest of one layer of it (and its logits and sampling) at most, not for a whole
// step. Its work counts in compute_s.
void InstanceLoop::fill_wait() {
  control_.arrive();
  const int last_layer = executor_.layers() - 1;
  const auto keep_going = [this, last_layer](int layer) {
    return !control_.all_arrived() && !(options_.cut_every_fill_step && layer == last_layer);
  };
  while (!control_.all_arrived()) {
    if (!fill_step(keep_going)) break;
  }
  const auto tw = Clock::now();
  control_.wait_all();
  stats_.comm_s += since(tw);
}

bool InstanceLoop::fill_step(const std::function<bool(int layer)>& keep_going) {
  const std::vector<Growth> growth = rmanager_.plan_home_step(rmanager_.config().batch);
  if (growth.empty()) return false;
  std::vector<StepItem> items;
  items.reserve(growth.size());
  std::int64_t blocks = 0;
  const std::int32_t bt = rmanager_.config().block_tokens;
  for (const Growth& g : growth) {
    StepItem item{g, {}, {}};
    const std::int64_t end = g.first_pos + g.tokens;
    const auto& entries = rmanager_.requests().at(g.request).table.entries();
    for (std::size_t i = 0; i < entries.size(); ++i) {
      item.slots.push_back(entries[i].ref.slot);
      const std::int64_t first = static_cast<std::int64_t>(i) * bt;
      const auto ntok = static_cast<std::int32_t>(std::min<std::int64_t>(bt, end - first));
      if (ntok > 0) item.plan.local.push_back(KvBlock{entries[i].ref.slot, first, ntok});
    }
    blocks += static_cast<std::int64_t>(entries.size());
    items.push_back(std::move(item));
  }
  const std::optional<std::vector<RequestId>> ended =
      executor_.fill_step(items, keep_going, stats_);
  if (!ended) {
    ++stats_.fill_cuts;
    return false;
  }
  rmanager_.commit_growth(growth);
  for (const Growth& g : growth) {
    (g.prefill ? stats_.prefill_tokens : stats_.decode_tokens) += g.tokens;
  }
  stats_.local_blocks += blocks;
  finish(*ended);
  ++stats_.fill_steps;
  return true;
}

}  // namespace infllm
