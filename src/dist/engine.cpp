// engine.cpp: see engine.hpp. The pooled engine (run_pooled); `--kv-policy local` is in
// engine_local.cpp.
#include "dist/engine.hpp"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <exception>
#include <map>
#include <memory>
#include <numeric>
#include <optional>
#include <set>

#include "core/errors.hpp"
#include "core/g_manager.hpp"
#include "core/r_manager.hpp"
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

// Byte vectors gathered to / scattered from rank 0.
std::vector<std::vector<std::uint8_t>> gather_bytes(MPI_Comm comm, int rank, int size,
                                                    const std::vector<std::uint8_t>& mine) {
  const int n = static_cast<int>(mine.size());
  std::vector<int> sizes(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
  INFLLM_MPI_CHECK(MPI_Gather(&n, 1, MPI_INT, sizes.data(), 1, MPI_INT, 0, comm));
  std::vector<std::uint8_t> all;
  if (rank == 0) {
    std::exclusive_scan(sizes.begin(), sizes.end(), displs.begin(), 0);
    all.resize(static_cast<std::size_t>(displs.back() + sizes.back()));
  }
  INFLLM_MPI_CHECK(MPI_Gatherv(mine.data(), n, MPI_BYTE, all.data(), sizes.data(), displs.data(),
                               MPI_BYTE, 0, comm));
  std::vector<std::vector<std::uint8_t>> out;
  if (rank == 0) {
    for (int r = 0; r < size; ++r) {
      const auto* p = all.data() + displs[static_cast<std::size_t>(r)];
      out.emplace_back(p, p + sizes[static_cast<std::size_t>(r)]);
    }
  }
  return out;
}

std::vector<std::uint8_t> scatter_bytes(MPI_Comm comm, int rank, int size,
                                        const std::vector<std::vector<std::uint8_t>>& parts) {
  std::vector<int> sizes(static_cast<std::size_t>(size)), displs(static_cast<std::size_t>(size));
  std::vector<std::uint8_t> all;
  if (rank == 0) {
    for (int r = 0; r < size; ++r) {
      sizes[static_cast<std::size_t>(r)] =
          static_cast<int>(parts[static_cast<std::size_t>(r)].size());
    }
    std::exclusive_scan(sizes.begin(), sizes.end(), displs.begin(), 0);
    for (const auto& p : parts) all.insert(all.end(), p.begin(), p.end());
  }
  int n = 0;
  INFLLM_MPI_CHECK(MPI_Scatter(sizes.data(), 1, MPI_INT, &n, 1, MPI_INT, 0, comm));
  std::vector<std::uint8_t> mine(static_cast<std::size_t>(n));
  INFLLM_MPI_CHECK(MPI_Scatterv(all.data(), sizes.data(), displs.data(), MPI_BYTE, mine.data(), n,
                                MPI_BYTE, 0, comm));
  return mine;
}

// The node index (0, 1, ... in order of first rank) of every rank of `comm`, as the launcher
// placed them: ranks that share memory share a node. Collective; the result on rank 0 only.
std::vector<std::int32_t> node_indices(MPI_Comm comm, int rank, int size) {
  MPI_Comm node = MPI_COMM_NULL;
  INFLLM_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node));
  int leader = rank;  // the lowest rank of this node
  INFLLM_MPI_CHECK(MPI_Bcast(&leader, 1, MPI_INT, 0, node));
  INFLLM_MPI_CHECK(MPI_Comm_free(&node));
  std::vector<int> leaders(static_cast<std::size_t>(size));
  INFLLM_MPI_CHECK(MPI_Gather(&leader, 1, MPI_INT, leaders.data(), 1, MPI_INT, 0, comm));
  std::vector<std::int32_t> out;
  if (rank != 0) return out;
  std::map<int, std::int32_t> index;
  for (int l : leaders) {
    index.emplace(l, static_cast<std::int32_t>(index.size()));
    out.push_back(index.at(l));
  }
  return out;
}

}  // namespace

io::ResultRecord to_record(model::GenResult&& g) {
  io::ResultRecord r;
  r.id = std::move(g.id);
  r.status = model::status_name(g.status);
  r.reason = std::move(g.reason);
  r.finish_reason = std::move(g.finish_reason);
  r.tokens = std::move(g.tokens);
  r.text = std::move(g.text);
  r.prompt_tokens = g.prompt_tokens;
  r.queue_s = g.queue_s;
  r.first_token_s = g.first_token_s;
  r.total_s = g.total_s;
  r.preemptions = g.preemptions;
  r.remote_blocks_max = g.remote_blocks_max;
  r.creditors = std::move(g.creditors);
  r.top_logprobs = std::move(g.top_logprobs);
  return r;
}

Engine::Engine(MPI_Comm comm, model::Forward& forward, const model::Tokenizer* tokenizer,
               const EngineOptions& options)
    : forward_(forward), tokenizer_(tokenizer), options_(options) {
  INFLLM_MPI_CHECK(MPI_Comm_dup(comm, &comm_));
  INFLLM_MPI_CHECK(MPI_Comm_dup(comm, &attn_comm_));
  INFLLM_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  INFLLM_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  if (options_.pool_slots < 2) {
    throw UsageError(
        "kv-pool-mb",
        "a pool needs at least 2 rBlocks of " +
            std::to_string(
                forward_.geometry(options_.block_tokens, options_.kv_dtype).block_bytes()) +
            " bytes");
  }
}

Engine::~Engine() {
  if (std::uncaught_exceptions() > 0) return;  // collective frees: see ~RmaPool
  MPI_Comm_free(&attn_comm_);
  MPI_Comm_free(&comm_);
}

EngineSummary Engine::run(const std::vector<model::GenRequest>& requests,
                          const std::vector<std::size_t>& to_run, const EngineHooks& hooks) {
  return options_.policy == KvPolicy::kLocal ? run_local(requests, to_run, hooks)
                                             : run_pooled(requests, to_run, hooks);
}

EngineSummary Engine::run_pooled(const std::vector<model::GenRequest>& requests,
                                 const std::vector<std::size_t>& to_run, const EngineHooks& hooks) {
  const auto t0 = Clock::now();
  const int bt = options_.block_tokens;
  const model::ModelConfig& mc = forward_.config();
  const std::int64_t max_pos = mc.max_position_embeddings;
  const std::size_t vocab = static_cast<std::size_t>(mc.vocab_size);
  const BlockGeometry geometry = forward_.geometry(bt, options_.kv_dtype);
  const std::size_t block_bytes = geometry.block_bytes();
  const RankId me{rank_};

  Backend& backend = forward_.backend();
  RmaPool pool(comm_, block_bytes, options_.pool_slots,
               [&](std::byte* base, std::size_t bytes) { backend.prepare_kv(base, bytes); });
  KvStore store{pool.local(SlotId{0}).data(), block_bytes, options_.pool_slots, geometry};
  DistAttention attention(attn_comm_, backend, store.view(), static_cast<int>(mc.num_heads));

  RManagerConfig rc;
  rc.rank = me;
  rc.capacity = options_.pool_slots;
  rc.block_tokens = bt;
  rc.max_lend_fraction = options_.max_lend_fraction;
  // NOTE: the engine caps a prefill chunk at a quarter of the pool in new blocks, so a request
  // can always make room for its next chunk by pushing full blocks out: a chunk as large as the
  // pool would need more pushable blocks than the request has, which the gManager counts as
  // unmet (and would fail a request that fits). A configuration choice of this engine, not an
  // rManager rule: the rManager's own tests drive tiny pools with whole-pool chunks on purpose.
  const std::int64_t max_chunk = std::max<std::int64_t>(
      bt, std::min<std::int64_t>(options_.max_batch_tokens,
                                 static_cast<std::int64_t>(bt) * options_.pool_slots / 4));
  rc.batch = BatchLimits{options_.max_batch_tokens, options_.max_num_seqs, max_chunk};
  RManager rm(rc);

  EngineSummary summary;
  const std::vector<std::int32_t> nodes = node_indices(comm_, rank_, size_);
  std::optional<GManager> gm;
  std::map<RequestId, int> preempted;  // rank 0: preemptions per request
  if (rank_ == 0) {
    GManagerConfig gc;
    gc.shape.capacity.assign(static_cast<std::size_t>(size_), options_.pool_slots);
    gc.shape.max_lend_fraction = options_.max_lend_fraction;
    gc.node_of_rank = nodes;  // the launcher's real mapping, whatever it was
    gc.reserve_growth = options_.reserve_growth;
    gc.policy = KvPolicy::kPooled;
    gc.block_tokens = bt;
    // The byte budget in whole rBlocks: below one rBlock, no move (as --dgfm off).
    gc.dgfm_max_moves =
        options_.dgfm ? options_.dgfm_budget_bytes / static_cast<std::int64_t>(block_bytes) : 0;
    gm.emplace(gc);
    for (std::size_t idx : to_run) {
      const model::GenRequest& r = requests.at(idx);
      if (const auto v = model::admission_verdict(r, max_pos)) {
        hooks.on_result(to_record(ended(r, v->first, v->second)));
        continue;
      }
      const auto prompt = static_cast<std::int64_t>(r.prompt.size());
      const RequestSpec spec{RequestId{static_cast<std::int64_t>(idx)}, prompt,
                             std::min<std::int64_t>(r.max_new_tokens, max_pos - prompt),
                             static_cast<std::int64_t>(idx)};
      if (const auto v = gm->submit(spec)) {
        hooks.on_result(
            to_record(ended(r, model::GenStatus::kRejected, end_reason_name(v->reason))));
      }
    }
  }

  std::map<RequestId, Seq> seqs;
  std::vector<std::pair<RequestId, io::ResultRecord>> pending;
  std::map<std::int64_t, std::pair<RequestId, std::vector<std::byte>>> staged;  // move -> copy
  StepStats stats;
  // Sampling and stopping after a forward pass of `batch` (grown as `growth`).
  const auto accept = [&](const std::vector<Growth>& growth,
                          const std::vector<model::StepSequence>& batch,
                          std::vector<float>& logits) {
    std::size_t row = 0;
    for (std::size_t s = 0; s < growth.size(); ++s) {
      if (!batch[s].want_logits) continue;
      const RequestId id = growth[s].request;
      Seq& q = seqs.at(id);
      std::span<float> l(logits.data() + row * vocab, vocab);
      ++row;
      if (!q.first_token) {
        q.first_token = true;
        q.result.first_token_s = since(t0);
      }
      const std::string finish =
          model::accept_token(*q.req, l, options_.eos_ids, tokenizer_, max_pos, q.all, q.result);
      if (finish.empty()) continue;
      model::GenResult& r = q.result;
      r.status = model::GenStatus::kDone;
      r.finish_reason = finish;
      r.total_s = since(t0);
      if (tokenizer_ != nullptr && r.text.empty()) {
        r.text = tokenizer_->decode_text(r.tokens, /*skip_special=*/true);
      }
      r.remote_blocks_max = q.remote_max;
      r.creditors.assign(q.creditors.begin(), q.creditors.end());
      rm.finish_request(id);
      pending.emplace_back(id, to_record(std::move(r)));
      seqs.erase(id);
    }
  };
  // Filling the wait for slower ranks (--fill-waits): after its step, a rank posts a
  // nonblocking barrier and, until every rank has posted it, runs extra steps of the requests
  // whose KV is all in its own pool. They touch no other rank's memory and no block of the
  // last boundary's decisions (RManager::plan_home_step), so the boundary that follows sees
  // them as part of this step. Fill steps take the full token budget: smaller ones (an eighth
  // was tried) cost more per token than the last rank to arrive saves by waiting less. Instead,
  // a fill step checks the barrier before each layer's attention and, once it has completed,
  // is cut: its work is dropped (nothing was committed: the growth is recorded and the tokens
  // sampled only after a whole step; the KV it wrote lies past every request's committed
  // length and is written again when those positions are computed), so the last rank to
  // arrive waits for the rest of one layer of it (and its logits and sampling) at most, not
  // for a whole step. Its work counts in compute_s.
  struct FillCut {};
  class CutAttention : public model::Attention {
   public:
    CutAttention(MPI_Request& all_done, int last_layer, bool always)
        : all_done_(all_done), last_layer_(last_layer), always_(always) {}
    void attend(infllm::Backend& backend, const KvStore& store, int layer, int q_heads,
                std::span<const model::StepSequence> batch,
                std::span<const std::vector<KvBlock>> blocks, const float* q,
                float* out) override {
      int done = 0;
      INFLLM_MPI_CHECK(MPI_Test(&all_done_, &done, MPI_STATUS_IGNORE));
      if (done != 0 || (always_ && layer == last_layer_)) throw FillCut{};
      model::Attention::attend(backend, store, layer, q_heads, batch, blocks, q, out);
    }

   private:
    MPI_Request& all_done_;
    int last_layer_;
    bool always_;
  };
  const auto fill_wait = [&](StepStats& st) {
    MPI_Request all_done = MPI_REQUEST_NULL;
    INFLLM_MPI_CHECK(MPI_Ibarrier(comm_, &all_done));
    CutAttention attention(all_done, static_cast<int>(forward_.config().num_layers) - 1,
                           hooks.cut_every_fill_step);
    for (;;) {
      int done = 0;
      INFLLM_MPI_CHECK(MPI_Test(&all_done, &done, MPI_STATUS_IGNORE));
      if (done != 0) return;
      const std::vector<Growth> growth = rm.plan_home_step(rc.batch);
      if (growth.empty()) break;
      const auto tf = Clock::now();
      std::vector<model::StepSequence> batch(growth.size());
      std::vector<std::vector<SlotId>> slot_lists(growth.size());
      std::int64_t blocks = 0;
      for (std::size_t s = 0; s < growth.size(); ++s) {
        const Growth& g = growth[s];
        Seq& q = seqs.at(g.request);
        for (const BlockEntry& e : rm.requests().at(g.request).table.entries()) {
          slot_lists[s].push_back(e.ref.slot);
        }
        const std::int64_t end = g.first_pos + g.tokens;
        batch[s] = model::StepSequence{
            std::span(q.all).subspan(static_cast<std::size_t>(g.first_pos),
                                     static_cast<std::size_t>(g.tokens)),
            g.first_pos, slot_lists[s], end == static_cast<std::int64_t>(q.all.size())};
        blocks += static_cast<std::int64_t>(slot_lists[s].size());
      }
      std::vector<float> logits;
      try {
        logits = forward_.step(batch, store, attention);
      } catch (const FillCut&) {
        st.compute_s += since(tf);
        ++st.fill_cuts;
        break;
      }
      rm.commit_growth(growth);
      for (const Growth& g : growth) (g.prefill ? st.prefill_tokens : st.decode_tokens) += g.tokens;
      st.local_blocks += blocks;
      accept(growth, batch, logits);
      st.compute_s += since(tf);
      ++st.fill_steps;
    }
    const auto tw = Clock::now();
    INFLLM_MPI_CHECK(MPI_Wait(&all_done, MPI_STATUS_IGNORE));
    st.comm_s += since(tw);
  };
  for (std::int64_t step = 1;; ++step) {
    // ---- the boundary
    const auto tb = Clock::now();
    if (hooks.stop && hooks.stop()) rm.request_stop();
    ReportPacket rp{rm.make_report(step), stats, std::move(pending)};
    pending.clear();
    const auto reports = gather_bytes(comm_, rank_, size_, encode(rp));
    std::vector<std::vector<std::uint8_t>> decisions;
    if (rank_ == 0) {
      std::vector<StepReport> reps;
      ClusterStep cs;
      cs.step = step - 1;
      for (const auto& bytes : reports) {
        ReportPacket p = decode_report(bytes.data(), bytes.size());
        for (auto& [id, res] : p.results) {
          res.preemptions = preempted[id];
          hooks.on_result(std::move(res));
        }
        add(cs.sum, p.stats);
        cs.max_compute_s = std::max(cs.max_compute_s, p.stats.compute_s);
        reps.push_back(std::move(p.report));
      }
      auto ds = gm->decide(reps);
      for (const RankDecision& d : ds) {
        for (RequestId q : d.preempt) {
          ++preempted[q];
          ++summary.preemptions;
        }
        for (const Verdict& v : d.fail) {
          auto res = ended(requests.at(static_cast<std::size_t>(v.request.value())),
                           model::GenStatus::kFailed, end_reason_name(v.reason));
          res.preemptions = preempted[v.request];
          hooks.on_result(to_record(std::move(res)));
        }
      }
      const bool end = gm->queued() == 0 && gm->running() == 0;
      cs.ledger_blocks = gm->ledger().total_blocks();
      cs.loans_total = gm->counters().grants;
      cs.dgfm_moves = gm->counters().moves;
      cs.running = static_cast<std::int64_t>(gm->running());
      cs.queued = static_cast<std::int64_t>(gm->queued());
      cs.wall_s = since(t0);
      if (step > 1) {
        add(summary.totals, cs.sum);
        summary.totals.pool_used = std::max(summary.totals.pool_used, cs.sum.pool_used);
        summary.ledger_max = std::max(summary.ledger_max, cs.ledger_blocks);
        summary.per_step.push_back(cs);
        if (hooks.on_step) hooks.on_step(cs);
      }
      if (step % 16 == 0 || end ||
          std::any_of(ds.begin(), ds.end(), [](const auto& x) { return x.stop; })) {
        for (std::int32_t debtor = 0; debtor < size_; ++debtor) {
          for (const auto& [creditor, blocks] : gm->ledger().creditors_of(RankId{debtor})) {
            summary.ledger_snapshots.push_back({step, debtor, creditor, blocks});
          }
        }
      }
      summary.loans_total = cs.loans_total;
      summary.dgfm_moves = cs.dgfm_moves;
      summary.ledger_outstanding_end = cs.ledger_blocks;
      const bool exchange = gm->ledger().total_blocks() > 0;
      for (const RankDecision& d : ds) {
        decisions.push_back(encode(DecisionPacket{d, end, exchange}));
      }
    }
    const auto mine_bytes = scatter_bytes(comm_, rank_, size_, decisions);
    const DecisionPacket mine = decode_decision(mine_bytes.data(), mine_bytes.size());
    const RankDecision& d = mine.decision;
    rm.apply(d);
    if (mine.end || d.stop) {
      summary.stopped = d.stop && !mine.end;
      summary.steps = step - 1;
      break;
    }
    stats = StepStats{};
    for (RequestId q : d.preempt) seqs.erase(q);
    for (const Verdict& v : d.fail) seqs.erase(v.request);
    // Committed moves that went through scratch: their copy goes into the vacated slot now.
    bool wrote = false;
    for (const BlockMove& m : d.commits) {
      if (m.home != me || !m.via_scratch) continue;
      const auto it = staged.find(m.id.value());
      if (it == staged.end()) continue;
      if (m.to.rank == me) {
        std::memcpy(pool.local(m.to.slot).data(), it->second.second.data(), block_bytes);
      } else {
        pool.put(it->second.second.data(), block_bytes, m.to);
        wrote = true;
      }
      stats.dgfm_bytes += static_cast<std::int64_t>(block_bytes);
      staged.erase(it);
    }
    if (wrote) pool.flush_all();  // the scratch writes land before anyone reads them this step
    std::erase_if(staged, [&](const auto& kv) { return seqs.count(kv.second.first) == 0; });
    for (const Placement& p : d.placements) {
      Seq s;
      s.req = &requests.at(static_cast<std::size_t>(p.spec.id.value()));
      s.all = s.req->prompt;
      s.result.id = s.req->id;
      s.result.prompt_tokens = static_cast<std::int64_t>(s.req->prompt.size());
      s.result.queue_s = since(t0);
      seqs.emplace(p.spec.id, std::move(s));
    }
    // Pushes granted at this boundary: full local blocks go to their creditor slots.
    for (const auto& [id, p] : rm.requests()) {
      for (const BlockEntry& e : p.table.entries()) {
        if (e.state != BlockState::kPushing) continue;
        pool.put(pool.local(e.ref.slot).data(), block_bytes, e.target);
        stats.push_bytes += static_cast<std::int64_t>(block_bytes);
      }
    }
    // DGFM moves this rank carries out (it is the block's home): copy from the source, which
    // stays authoritative until the commit.
    std::vector<std::pair<std::vector<std::byte>, BlockRef>> relay;
    for (const BlockMove& m : d.moves) {
      if (m.home != me) continue;
      if (m.via_scratch) {
        auto& buf = staged[m.id.value()];
        buf.first = m.request;
        buf.second.resize(block_bytes);
        pool.get(buf.second.data(), block_bytes, m.from);
      } else if (m.to.rank == me) {
        pool.get(pool.local(m.to.slot).data(), block_bytes, m.from);
        stats.dgfm_bytes += static_cast<std::int64_t>(block_bytes);
      } else {
        relay.emplace_back(std::vector<std::byte>(block_bytes), m.to);
        pool.get(relay.back().first.data(), block_bytes, m.from);
        stats.dgfm_bytes += static_cast<std::int64_t>(block_bytes);
      }
    }
    if (!d.moves.empty()) pool.flush_all();
    for (const auto& [buf, to] : relay) pool.put(buf.data(), block_bytes, to);
    pool.sync();

    // ---- the step
    const std::vector<Growth> growth = rm.grow_step();
    const std::size_t n = growth.size();
    std::vector<model::StepSequence> batch(n);
    std::vector<std::vector<SlotId>> slot_lists(n);
    std::vector<SeqPlan> plans(n);
    std::vector<std::int64_t> tokens(n), first_pos(n);
    std::vector<BlockRef> pulls;
    const std::int64_t push_cost_per_row = static_cast<std::int64_t>(mc.num_layers) * mc.num_heads *
                                           (2 * static_cast<std::int64_t>(mc.head_dim) + 2) * 4;
    for (std::size_t s = 0; s < n; ++s) {
      const Growth& g = growth[s];
      Seq& q = seqs.at(g.request);
      const BlockTable& table = rm.requests().at(g.request).table;
      const std::int64_t end = g.first_pos + g.tokens;
      std::map<std::int32_t, std::vector<KvBlock>> remote;
      for (std::int32_t i = 0; i < table.size(); ++i) {
        const BlockEntry& e = table.at(i);
        const std::int64_t first = static_cast<std::int64_t>(i) * bt;
        const auto ntok = static_cast<std::int32_t>(std::min<std::int64_t>(bt, end - first));
        if (ntok <= 0) break;
        if (e.ref.rank == me) {
          slot_lists[s].push_back(e.ref.slot);
          plans[s].local.push_back(KvBlock{e.ref.slot, first, ntok});
        } else {
          slot_lists[s].push_back(SlotId{0});  // never written: only tails are, at home
          remote[e.ref.rank.value()].push_back(KvBlock{e.ref.slot, first, ntok});
          q.creditors.insert(e.ref.rank.value());
        }
      }
      q.remote_max = std::max<std::int64_t>(q.remote_max, table.remote_blocks());
      for (auto& [c, blocks] : remote) {
        bool pull = options_.remote == RemoteAttention::kPullKv;
        if (options_.remote == RemoteAttention::kAuto) {
          pull =
              static_cast<std::int64_t>(blocks.size() * block_bytes) < g.tokens * push_cost_per_row;
        }
        stats.remote_blocks += static_cast<std::int64_t>(blocks.size());
        if (pull) {
          for (KvBlock b : blocks) {
            pulls.push_back(BlockRef{RankId{c}, b.slot});
            b.slot = SlotId{static_cast<std::int32_t>(pulls.size() - 1)};
            plans[s].pulled.push_back(b);
          }
        } else {
          plans[s].pushed.push_back(RemotePart{RankId{c}, std::move(blocks)});
        }
      }
      stats.local_blocks += static_cast<std::int64_t>(plans[s].local.size());
      tokens[s] = g.tokens;
      first_pos[s] = g.first_pos;
      const bool last = end == static_cast<std::int64_t>(q.all.size());
      batch[s] = model::StepSequence{std::span(q.all).subspan(static_cast<std::size_t>(g.first_pos),
                                                              static_cast<std::size_t>(g.tokens)),
                                     g.first_pos, slot_lists[s], last};
      (g.prefill ? stats.prefill_tokens : stats.decode_tokens) += g.tokens;
    }
    std::vector<std::byte> pulled_mem(pulls.size() * block_bytes);
    const KvPool pulled{pulled_mem.data(), block_bytes,
                             static_cast<std::int32_t>(pulls.size()), geometry};
    for (std::size_t k = 0; k < pulls.size(); ++k) {
      pool.get(pulled_mem.data() + k * block_bytes, block_bytes, pulls[k]);
    }
    if (!pulls.empty()) pool.flush_all();
    stats.pull_bytes += static_cast<std::int64_t>(pulled_mem.size());
    attention.reset_traffic();
    attention.plan(std::move(plans), std::move(tokens), std::move(first_pos),
                   pulls.empty() ? nullptr : &pulled, mine.exchange);
    // A home that wrote a committed move's block into this pool flushed it before sending its
    // query headers, which plan() has just received: make what landed visible before serving.
    pool.sync();
    stats.comm_s += since(tb);
    const auto tf = Clock::now();
    std::vector<float> logits;
    if (n > 0) {
      logits = forward_.step(batch, store, attention);
    } else if (attention.serving()) {
      for (int layer = 0; layer < static_cast<int>(mc.num_layers); ++layer) {
        attention.serve_layer(layer);
      }
    }
    const double forward_s = since(tf);
    stats.wait_s = attention.traffic().wait_s;
    stats.compute_s = forward_s - stats.wait_s;
    stats.query_bytes = attention.traffic().query_bytes;
    stats.partial_bytes = attention.traffic().partial_bytes;
    stats.batch = static_cast<std::int32_t>(n);

    accept(growth, batch, logits);
    const auto tc = Clock::now();
    pool.flush_all();  // pushes and moves complete before the report says so
    stats.comm_s += since(tc);
    if (hooks.after_step) hooks.after_step();
    if (options_.fill_waits && size_ > 1) fill_wait(stats);
    stats.pool_used = rm.stats().used;
    stats.pool_slots = options_.pool_slots;
  }
  summary.prefill_tokens = summary.totals.prefill_tokens;
  summary.decode_tokens = summary.totals.decode_tokens;
  return summary;
}

}  // namespace infllm::dist
