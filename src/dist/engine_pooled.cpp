// engine_pooled.cpp: Engine::run_pooled, `--kv-policy pooled` on several ranks (docs/design.md,
// "The distributed engine"): class PooledRun, the step loop of one rank.
#include "dist/engine.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "core/cluster_check.hpp"
#include "core/errors.hpp"
#include "core/g_manager.hpp"
#include "core/r_manager.hpp"
#include "dist/control_mpi.hpp"
#include "dist/dist_attention.hpp"
#include "dist/mpi_check.hpp"
#include "dist/rma_pool.hpp"

namespace infllm::dist {

namespace {

using Clock = std::chrono::steady_clock;
double since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

model::GenResult ended(const model::GenRequest& r, model::GenStatus status, std::string reason) {
  model::GenResult g;
  g.id = r.id;
  g.status = status;
  g.reason = std::move(reason);
  if (status == model::GenStatus::kDone) g.finish_reason = "length";
  g.prompt_tokens = static_cast<std::int64_t>(r.prompt.size());
  return g;
}

// One request this rank is home to.
struct Seq {
  const model::GenRequest* req = nullptr;
  std::vector<std::int32_t> all;  // prompt + generated
  model::GenResult result;
  bool first_token = false;
  std::int64_t remote_max = 0;
  std::set<std::int32_t> creditors;
};

// The pooled engine on one rank: its pool window, rManager and batch, and on rank 0 the
// gManager. One object per Engine::run; run() is the step loop:
//
//   boundary()          report -> gather -> (rank 0) decide -> scatter -> rManager.apply
//   start_data_ops()    scratch writes of committed moves, placements, pushes, DGFM copies
//   run_step()          grow, plan the remote attention, forward pass, sample, flush
//   fill_wait()         extra all-home steps until every rank has arrived (--fill-waits)
class PooledRun {
 public:
  PooledRun(MPI_Comm comm, MPI_Comm attn_comm, model::Forward& forward,
            const model::Tokenizer* tokenizer, const EngineOptions& options,
            const std::vector<model::GenRequest>& requests, const EngineHooks& hooks);
  EngineSummary run(const std::vector<std::size_t>& to_run);

 private:
  // The boundary before step `step`; false when the run ends here.
  bool boundary(std::int64_t step);
  // --check-invariants: every component, and the cross-rank rule on rank 0.
  void check_invariants();
  // Rank 0: the gManager's side of a boundary, from every rank's report to every decision.
  std::vector<std::vector<std::uint8_t>> decide(std::int64_t step,
                                                const std::vector<std::vector<std::uint8_t>>& in);
  void record_step(std::int64_t step, const ClusterStep& cs, const std::vector<RankDecision>& ds,
                   bool end);
  void submit(const std::vector<std::size_t>& to_run);
  void start_data_ops(const RankDecision& d);
  void write_committed_scratch(const RankDecision& d);
  void start_moves(const RankDecision& d);
  void run_step();
  // One batch item's attention plan and its block slots; the pulls go to `pulls`.
  SeqPlan plan_item(const Growth& g, std::vector<SlotId>& slots, std::vector<BlockRef>& pulls);
  model::StepSequence step_sequence(const Growth& g, std::span<const SlotId> slots);
  // Sampling and stopping after a forward pass of `batch` (grown as `growth`).
  void accept(const std::vector<Growth>& growth, const std::vector<model::StepSequence>& batch,
              std::vector<float>& logits);
  void finish(RequestId id, Seq& q, const std::string& finish_reason);
  void fill_wait();
  // One fill step; false when there was none to run or it was cut.
  bool fill_step(MPI_Request& all_done);

  MPI_Comm comm_;
  int rank_ = 0, size_ = 1;
  model::Forward& forward_;
  const model::Tokenizer* tokenizer_;
  const EngineOptions& options_;
  const std::vector<model::GenRequest>& requests_;
  const EngineHooks& hooks_;
  const Clock::time_point t0_ = Clock::now();
  const std::int64_t max_pos_;
  const BlockGeometry geometry_;
  const std::size_t block_bytes_;
  RmaPool pool_;
  KvStore store_;
  DistAttention attention_;
  RManager rmanager_;
  std::optional<GManager> gmanager_;      // rank 0
  std::map<RequestId, int> preemptions_;  // rank 0: per request

  std::map<RequestId, Seq> seqs_;
  std::vector<std::pair<RequestId, io::ResultRecord>> finished_;  // ride in the next report
  std::map<std::int64_t, std::pair<RequestId, std::vector<std::byte>>> staged_;  // move -> copy
  bool exchange_ = true;  // this step's DecisionPacket::exchange
  StepStats stats_;       // this rank's, for the step under way
  EngineSummary summary_;
};

// The rManager's settings for this engine.
RManagerConfig rmanager_config(RankId me, const EngineOptions& o) {
  RManagerConfig rc;
  rc.rank = me;
  rc.capacity = o.instance.pool_slots;
  rc.block_tokens = o.instance.block_tokens;
  rc.max_lend_fraction = o.max_lend_fraction;
  // NOTE: the engine caps a prefill chunk at a quarter of the pool in new blocks, so a request
  // can always make room for its next chunk by pushing full blocks out: a chunk as large as the
  // pool would need more pushable blocks than the request has, which the gManager counts as
  // unmet (and would fail a request that fits). A configuration choice of this engine, not an
  // rManager rule: the rManager's own tests drive tiny pools with whole-pool chunks on purpose.
  const std::int64_t bt = o.instance.block_tokens;
  const std::int64_t max_chunk = std::max<std::int64_t>(
      bt, std::min<std::int64_t>(o.instance.max_batch_tokens, bt * o.instance.pool_slots / 4));
  rc.batch = BatchLimits{o.instance.max_batch_tokens, o.instance.max_num_seqs, max_chunk};
  return rc;
}

GManagerConfig gmanager_config(int ranks, std::size_t block_bytes, const EngineOptions& o,
                               std::vector<std::int32_t> nodes) {
  GManagerConfig gc;
  gc.shape.capacity.assign(static_cast<std::size_t>(ranks), o.instance.pool_slots);
  gc.shape.max_lend_fraction = o.max_lend_fraction;
  gc.node_of_rank = std::move(nodes);  // the launcher's real mapping, whatever it was
  gc.reserve_growth = o.reserve_growth;
  gc.policy = KvPolicy::kPooled;
  gc.block_tokens = o.instance.block_tokens;
  // The byte budget in whole rBlocks: below one rBlock, no move (as --dgfm off).
  gc.dgfm_max_moves = o.dgfm ? o.dgfm_budget_bytes / static_cast<std::int64_t>(block_bytes) : 0;
  return gc;
}

int comm_rank(MPI_Comm comm) {
  int r = 0;
  INFLLM_MPI_CHECK(MPI_Comm_rank(comm, &r));
  return r;
}

PooledRun::PooledRun(MPI_Comm comm, MPI_Comm attn_comm, model::Forward& forward,
                     const model::Tokenizer* tokenizer, const EngineOptions& options,
                     const std::vector<model::GenRequest>& requests, const EngineHooks& hooks)
    : comm_(comm),
      rank_(comm_rank(comm)),
      forward_(forward),
      tokenizer_(tokenizer),
      options_(options),
      requests_(requests),
      hooks_(hooks),
      max_pos_(forward.config().max_position_embeddings),
      geometry_(forward.geometry(options.instance.block_tokens, options.instance.kv_dtype)),
      block_bytes_(geometry_.block_bytes()),
      pool_(comm, block_bytes_, options.instance.pool_slots,
            [&forward](std::byte* base, std::size_t bytes) {
              forward.backend().prepare_kv(base, bytes);
            }),
      store_{pool_.local(SlotId{0}).data(), block_bytes_, options.instance.pool_slots, geometry_},
      attention_(attn_comm, forward.backend(), store_.view(),
                 static_cast<int>(forward.config().num_heads)),
      rmanager_(rmanager_config(RankId{rank_}, options)) {
  INFLLM_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  std::vector<std::int32_t> nodes = node_indices(comm_, rank_, size_);
  if (rank_ == 0) gmanager_.emplace(gmanager_config(size_, block_bytes_, options_, nodes));
}

EngineSummary PooledRun::run(const std::vector<std::size_t>& to_run) {
  if (rank_ == 0) submit(to_run);
  for (std::int64_t step = 1;; ++step) {
    if (!boundary(step)) {
      summary_.steps = step - 1;
      break;
    }
    run_step();
    if (options_.fill_waits && size_ > 1) fill_wait();
    stats_.pool_used = rmanager_.stats().used;
    stats_.pool_slots = options_.instance.pool_slots;
  }
  summary_.prefill_tokens = summary_.totals.prefill_tokens;
  summary_.decode_tokens = summary_.totals.decode_tokens;
  return std::move(summary_);
}

void PooledRun::submit(const std::vector<std::size_t>& to_run) {
  for (std::size_t idx : to_run) {
    const model::GenRequest& r = requests_.at(idx);
    if (const auto v = model::admission_verdict(r, max_pos_)) {
      hooks_.on_result(to_record(ended(r, v->first, v->second)));
      continue;
    }
    const auto prompt = static_cast<std::int64_t>(r.prompt.size());
    const RequestSpec spec{RequestId{static_cast<std::int64_t>(idx)}, prompt,
                           std::min<std::int64_t>(r.max_new_tokens, max_pos_ - prompt),
                           static_cast<std::int64_t>(idx)};
    if (const auto v = gmanager_->submit(spec)) {
      hooks_.on_result(
          to_record(ended(r, model::GenStatus::kRejected, end_reason_name(v->reason))));
    }
  }
}

bool PooledRun::boundary(std::int64_t step) {
  const auto tb = Clock::now();
  if (hooks_.stop && hooks_.stop()) rmanager_.request_stop();
  const ReportPacket report{rmanager_.make_report(step), stats_, std::move(finished_)};
  finished_.clear();
  const auto reports = gather_bytes(comm_, rank_, size_, encode(report));
  const auto decisions =
      rank_ == 0 ? decide(step, reports) : std::vector<std::vector<std::uint8_t>>{};
  const auto mine_bytes = scatter_bytes(comm_, rank_, size_, decisions);
  const DecisionPacket mine = decode_decision(mine_bytes.data(), mine_bytes.size());
  const RankDecision& d = mine.decision;
  rmanager_.apply(d);
  if (options_.check_invariants) check_invariants();
  if (mine.end || d.stop) {
    summary_.stopped = d.stop && !mine.end;
    return false;
  }
  stats_ = StepStats{};
  exchange_ = mine.exchange;
  for (RequestId q : d.preempt) seqs_.erase(q);
  for (const Verdict& v : d.fail) seqs_.erase(v.request);
  start_data_ops(d);
  stats_.comm_s += since(tb);
  return true;
}

void PooledRun::check_invariants() {
  rmanager_.check_invariants();
  const auto views =
      gather_bytes(comm_, rank_, size_, encode(instance_view(rmanager_, RankId{rank_})));
  if (rank_ != 0) return;
  gmanager_->check_invariants();
  std::vector<InstanceView> decoded;
  for (const auto& bytes : views) decoded.push_back(decode_view(bytes.data(), bytes.size()));
  check_cluster(*gmanager_, decoded);
}

std::vector<std::vector<std::uint8_t>> PooledRun::decide(
    std::int64_t step, const std::vector<std::vector<std::uint8_t>>& in) {
  std::vector<StepReport> reports;
  ClusterStep cs;
  cs.step = step - 1;
  for (const auto& bytes : in) {
    ReportPacket p = decode_report(bytes.data(), bytes.size());
    for (auto& [id, res] : p.results) {
      res.preemptions = preemptions_[id];
      hooks_.on_result(std::move(res));
    }
    add(cs.sum, p.stats);
    cs.max_compute_s = std::max(cs.max_compute_s, p.stats.compute_s);
    reports.push_back(std::move(p.report));
  }
  GManager& gm = *gmanager_;
  const std::vector<RankDecision> ds = gm.decide(reports);
  for (const RankDecision& d : ds) {
    for (RequestId q : d.preempt) {
      ++preemptions_[q];
      ++summary_.preemptions;
    }
    for (const Verdict& v : d.fail) {
      auto res = ended(requests_.at(static_cast<std::size_t>(v.request.value())),
                       model::GenStatus::kFailed, end_reason_name(v.reason));
      res.preemptions = preemptions_[v.request];
      hooks_.on_result(to_record(std::move(res)));
    }
  }
  const bool end = gm.queued() == 0 && gm.running() == 0;
  record_step(step, cs, ds, end);
  const bool exchange = gm.ledger().total_blocks() > 0;
  std::vector<std::vector<std::uint8_t>> out;
  for (const RankDecision& d : ds) out.push_back(encode(DecisionPacket{d, end, exchange}));
  return out;
}

void PooledRun::record_step(std::int64_t step, const ClusterStep& sums,
                            const std::vector<RankDecision>& ds, bool end) {
  const GManager& gm = *gmanager_;
  ClusterStep cs = sums;
  cs.ledger_blocks = gm.ledger().total_blocks();
  cs.loans_total = gm.counters().grants;
  cs.dgfm_moves = gm.counters().moves;
  cs.running = static_cast<std::int64_t>(gm.running());
  cs.queued = static_cast<std::int64_t>(gm.queued());
  cs.wall_s = since(t0_);
  if (step > 1) {
    add(summary_.totals, cs.sum);
    summary_.totals.pool_used = std::max(summary_.totals.pool_used, cs.sum.pool_used);
    summary_.ledger_max = std::max(summary_.ledger_max, cs.ledger_blocks);
    summary_.per_step.push_back(cs);
    if (hooks_.on_step) hooks_.on_step(cs);
  }
  const bool stop = std::any_of(ds.begin(), ds.end(), [](const auto& x) { return x.stop; });
  if (step % 16 == 0 || end || stop) {
    for (std::int32_t debtor = 0; debtor < size_; ++debtor) {
      for (const auto& [creditor, blocks] : gm.ledger().creditors_of(RankId{debtor})) {
        summary_.ledger_snapshots.push_back({step, debtor, creditor, blocks});
      }
    }
  }
  summary_.loans_total = cs.loans_total;
  summary_.dgfm_moves = cs.dgfm_moves;
  summary_.ledger_outstanding_end = cs.ledger_blocks;
}

void PooledRun::start_data_ops(const RankDecision& d) {
  write_committed_scratch(d);
  std::erase_if(staged_, [&](const auto& kv) { return seqs_.count(kv.second.first) == 0; });
  for (const Placement& p : d.placements) {
    Seq s;
    s.req = &requests_.at(static_cast<std::size_t>(p.spec.id.value()));
    s.all = s.req->prompt;
    s.result.id = s.req->id;
    s.result.prompt_tokens = static_cast<std::int64_t>(s.req->prompt.size());
    s.result.queue_s = since(t0_);
    seqs_.emplace(p.spec.id, std::move(s));
  }
  // Pushes granted at this boundary: full local blocks go to their creditor slots.
  for (const auto& [id, p] : rmanager_.requests()) {
    for (const BlockEntry& e : p.table.entries()) {
      if (e.state != BlockState::kPushing) continue;
      pool_.put(pool_.local(e.ref.slot).data(), block_bytes_, e.target);
      stats_.push_bytes += static_cast<std::int64_t>(block_bytes_);
    }
  }
  start_moves(d);
  pool_.sync();
}

// Committed moves that went through scratch: their copy goes into the vacated slot now.
void PooledRun::write_committed_scratch(const RankDecision& d) {
  const RankId me{rank_};
  bool wrote = false;
  for (const BlockMove& m : d.commits) {
    if (m.home != me || !m.via_scratch) continue;
    const auto it = staged_.find(m.id.value());
    if (it == staged_.end()) continue;
    if (m.to.rank == me) {
      std::memcpy(pool_.local(m.to.slot).data(), it->second.second.data(), block_bytes_);
    } else {
      pool_.put(it->second.second.data(), block_bytes_, m.to);
      wrote = true;
    }
    stats_.dgfm_bytes += static_cast<std::int64_t>(block_bytes_);
    staged_.erase(it);
  }
  if (wrote) pool_.flush_all();  // the scratch writes land before anyone reads them this step
}

// DGFM moves this rank carries out (it is the block's home): copy from the source, which stays
// authoritative until the commit.
void PooledRun::start_moves(const RankDecision& d) {
  const RankId me{rank_};
  std::vector<std::pair<std::vector<std::byte>, BlockRef>> relay;
  for (const BlockMove& m : d.moves) {
    if (m.home != me) continue;
    if (m.via_scratch) {
      auto& buf = staged_[m.id.value()];
      buf.first = m.request;
      buf.second.resize(block_bytes_);
      pool_.get(buf.second.data(), block_bytes_, m.from);
    } else if (m.to.rank == me) {
      pool_.get(pool_.local(m.to.slot).data(), block_bytes_, m.from);
      stats_.dgfm_bytes += static_cast<std::int64_t>(block_bytes_);
    } else {
      relay.emplace_back(std::vector<std::byte>(block_bytes_), m.to);
      pool_.get(relay.back().first.data(), block_bytes_, m.from);
      stats_.dgfm_bytes += static_cast<std::int64_t>(block_bytes_);
    }
  }
  if (!d.moves.empty()) pool_.flush_all();
  for (const auto& [buf, to] : relay) pool_.put(buf.data(), block_bytes_, to);
}

SeqPlan PooledRun::plan_item(const Growth& g, std::vector<SlotId>& slots,
                             std::vector<BlockRef>& pulls) {
  const model::ModelConfig& mc = forward_.config();
  const RankId me{rank_};
  const int bt = options_.instance.block_tokens;
  Seq& q = seqs_.at(g.request);
  const BlockTable& table = rmanager_.requests().at(g.request).table;
  const std::int64_t end = g.first_pos + g.tokens;
  SeqPlan plan;
  std::map<std::int32_t, std::vector<KvBlock>> remote;
  for (std::int32_t i = 0; i < table.size(); ++i) {
    const BlockEntry& e = table.at(i);
    const std::int64_t first = static_cast<std::int64_t>(i) * bt;
    const auto ntok = static_cast<std::int32_t>(std::min<std::int64_t>(bt, end - first));
    if (ntok <= 0) break;
    if (e.ref.rank == me) {
      slots.push_back(e.ref.slot);
      plan.local.push_back(KvBlock{e.ref.slot, first, ntok});
    } else {
      slots.push_back(SlotId{0});  // never written: only tails are, at home
      remote[e.ref.rank.value()].push_back(KvBlock{e.ref.slot, first, ntok});
      q.creditors.insert(e.ref.rank.value());
    }
  }
  q.remote_max = std::max<std::int64_t>(q.remote_max, table.remote_blocks());
  // auto: pull when the blocks' bytes are fewer than the step's queries and partial states.
  const std::int64_t push_cost_per_row = static_cast<std::int64_t>(mc.num_layers) * mc.num_heads *
                                         (2 * static_cast<std::int64_t>(mc.head_dim) + 2) * 4;
  for (auto& [c, blocks] : remote) {
    bool pull = options_.remote == RemoteAttention::kPullKv;
    if (options_.remote == RemoteAttention::kAuto) {
      pull = static_cast<std::int64_t>(blocks.size() * block_bytes_) < g.tokens * push_cost_per_row;
    }
    stats_.remote_blocks += static_cast<std::int64_t>(blocks.size());
    if (!pull) {
      plan.pushed.push_back(RemotePart{RankId{c}, std::move(blocks)});
      continue;
    }
    for (KvBlock b : blocks) {
      pulls.push_back(BlockRef{RankId{c}, b.slot});
      b.slot = SlotId{static_cast<std::int32_t>(pulls.size() - 1)};
      plan.pulled.push_back(b);
    }
  }
  stats_.local_blocks += static_cast<std::int64_t>(plan.local.size());
  return plan;
}

model::StepSequence PooledRun::step_sequence(const Growth& g, std::span<const SlotId> slots) {
  Seq& q = seqs_.at(g.request);
  const bool last = g.first_pos + g.tokens == static_cast<std::int64_t>(q.all.size());
  return model::StepSequence{std::span(q.all).subspan(static_cast<std::size_t>(g.first_pos),
                                                      static_cast<std::size_t>(g.tokens)),
                             g.first_pos, slots, last};
}

void PooledRun::run_step() {
  const auto tp = Clock::now();
  const std::vector<Growth> growth = rmanager_.grow_step();
  const std::size_t n = growth.size();
  std::vector<model::StepSequence> batch(n);
  std::vector<std::vector<SlotId>> slot_lists(n);
  std::vector<SeqPlan> plans(n);
  std::vector<std::int64_t> tokens(n), first_pos(n);
  std::vector<BlockRef> pulls;
  for (std::size_t s = 0; s < n; ++s) {
    plans[s] = plan_item(growth[s], slot_lists[s], pulls);
    tokens[s] = growth[s].tokens;
    first_pos[s] = growth[s].first_pos;
    batch[s] = step_sequence(growth[s], slot_lists[s]);
    (growth[s].prefill ? stats_.prefill_tokens : stats_.decode_tokens) += growth[s].tokens;
  }
  std::vector<std::byte> pulled_mem(pulls.size() * block_bytes_);
  const KvPool pulled{pulled_mem.data(), block_bytes_, static_cast<std::int32_t>(pulls.size()),
                      geometry_};
  for (std::size_t k = 0; k < pulls.size(); ++k) {
    pool_.get(pulled_mem.data() + k * block_bytes_, block_bytes_, pulls[k]);
  }
  if (!pulls.empty()) pool_.flush_all();
  stats_.pull_bytes += static_cast<std::int64_t>(pulled_mem.size());
  attention_.reset_traffic();
  attention_.plan(std::move(plans), std::move(tokens), std::move(first_pos),
                  pulls.empty() ? nullptr : &pulled, exchange_);
  // A home that wrote a committed move's block into this pool flushed it before sending its
  // query headers, which plan() has just received: make what landed visible before serving.
  pool_.sync();
  stats_.comm_s += since(tp);
  const auto tf = Clock::now();
  std::vector<float> logits;
  if (n > 0) {
    logits = forward_.step(batch, store_, attention_);
  } else if (attention_.serving()) {
    const int layers = static_cast<int>(forward_.config().num_layers);
    for (int layer = 0; layer < layers; ++layer) attention_.serve_layer(layer);
  }
  const double forward_s = since(tf);
  stats_.wait_s = attention_.traffic().wait_s;
  stats_.compute_s = forward_s - stats_.wait_s;
  stats_.query_bytes = attention_.traffic().query_bytes;
  stats_.partial_bytes = attention_.traffic().partial_bytes;
  stats_.batch = static_cast<std::int32_t>(n);
  accept(growth, batch, logits);
  const auto tc = Clock::now();
  pool_.flush_all();  // pushes and moves complete before the report says so
  stats_.comm_s += since(tc);
  if (hooks_.after_step) hooks_.after_step();
}

void PooledRun::accept(const std::vector<Growth>& growth,
                       const std::vector<model::StepSequence>& batch, std::vector<float>& logits) {
  const auto vocab = static_cast<std::size_t>(forward_.config().vocab_size);
  std::size_t row = 0;
  for (std::size_t s = 0; s < growth.size(); ++s) {
    if (!batch[s].want_logits) continue;
    const RequestId id = growth[s].request;
    Seq& q = seqs_.at(id);
    std::span<float> l(logits.data() + row * vocab, vocab);
    ++row;
    if (!q.first_token) {
      q.first_token = true;
      q.result.first_token_s = since(t0_);
    }
    const std::string finish_reason = model::accept_token(*q.req, l, options_.instance.eos_ids,
                                                          tokenizer_, max_pos_, q.all, q.result);
    if (!finish_reason.empty()) finish(id, q, finish_reason);
  }
}

void PooledRun::finish(RequestId id, Seq& q, const std::string& finish_reason) {
  model::GenResult& r = q.result;
  r.status = model::GenStatus::kDone;
  r.finish_reason = finish_reason;
  r.total_s = since(t0_);
  if (tokenizer_ != nullptr && r.text.empty()) {
    r.text = tokenizer_->decode_text(r.tokens, /*skip_special=*/true);
  }
  r.remote_blocks_max = q.remote_max;
  r.creditors.assign(q.creditors.begin(), q.creditors.end());
  rmanager_.finish_request(id);
  finished_.emplace_back(id, to_record(std::move(r)));
  seqs_.erase(id);
}

// The attention of a fill step: the local one, abandoning the step (Forward::try_step) once
// every rank has arrived at the nonblocking barrier.
class FillAttention final : public model::Attention {
 public:
  FillAttention(MPI_Request& all_done, int last_layer, bool always)
      : all_done_(all_done), last_layer_(last_layer), always_(always) {}
  bool keep_going(int layer) override {
    int done = 0;
    INFLLM_MPI_CHECK(MPI_Test(&all_done_, &done, MPI_STATUS_IGNORE));
    return done == 0 && !(always_ && layer == last_layer_);
  }

 private:
  MPI_Request& all_done_;
  int last_layer_;
  bool always_;  // test hook: cut at the last layer even when nobody has arrived
};

// Filling the wait for slower ranks (--fill-waits): after its step, a rank posts a nonblocking
// barrier and, until every rank has posted it, runs extra steps of the requests whose KV is all
// in its own pool. They touch no other rank's memory and no block of the last boundary's
// decisions (RManager::plan_home_step), so the boundary that follows sees them as part of this
// step. Fill steps take the full token budget: smaller ones (an eighth was tried) cost more per
// token than the last rank to arrive saves by waiting less. Instead, a fill step checks the
// barrier before each layer's attention and, once it has completed, is cut: its work is
// dropped (nothing was committed: the growth is recorded and the tokens sampled only after a
// whole step; the KV it wrote lies past every request's committed length and is written again
// when those positions are computed), so the last rank to arrive waits for the rest of one
// layer of it (and its logits and sampling) at most, not for a whole step. Its work counts in
// compute_s.
void PooledRun::fill_wait() {
  MPI_Request all_done = MPI_REQUEST_NULL;
  INFLLM_MPI_CHECK(MPI_Ibarrier(comm_, &all_done));
  for (;;) {
    int done = 0;
    INFLLM_MPI_CHECK(MPI_Test(&all_done, &done, MPI_STATUS_IGNORE));
    if (done != 0) return;
    if (!fill_step(all_done)) break;
  }
  const auto tw = Clock::now();
  INFLLM_MPI_CHECK(MPI_Wait(&all_done, MPI_STATUS_IGNORE));
  stats_.comm_s += since(tw);
}

bool PooledRun::fill_step(MPI_Request& all_done) {
  const std::vector<Growth> growth = rmanager_.plan_home_step(rmanager_.config().batch);
  if (growth.empty()) return false;
  const auto tf = Clock::now();
  std::vector<model::StepSequence> batch(growth.size());
  std::vector<std::vector<SlotId>> slot_lists(growth.size());
  std::int64_t blocks = 0;
  for (std::size_t s = 0; s < growth.size(); ++s) {
    for (const BlockEntry& e : rmanager_.requests().at(growth[s].request).table.entries()) {
      slot_lists[s].push_back(e.ref.slot);
    }
    batch[s] = step_sequence(growth[s], slot_lists[s]);
    blocks += static_cast<std::int64_t>(slot_lists[s].size());
  }
  FillAttention attention(all_done, static_cast<int>(forward_.config().num_layers) - 1,
                          hooks_.cut_every_fill_step);
  std::optional<std::vector<float>> logits = forward_.try_step(batch, store_, attention);
  if (!logits) {
    stats_.compute_s += since(tf);
    ++stats_.fill_cuts;
    return false;
  }
  rmanager_.commit_growth(growth);
  for (const Growth& g : growth) {
    (g.prefill ? stats_.prefill_tokens : stats_.decode_tokens) += g.tokens;
  }
  stats_.local_blocks += blocks;
  accept(growth, batch, *logits);
  stats_.compute_s += since(tf);
  ++stats_.fill_steps;
  return true;
}

}  // namespace

EngineSummary Engine::run_pooled(const std::vector<model::GenRequest>& requests,
                                 const std::vector<std::size_t>& to_run, const EngineHooks& hooks) {
  PooledRun run(comm_, attn_comm_, forward_, tokenizer_, options_, requests, hooks);
  return run.run(to_run);
}

}  // namespace infllm::dist
