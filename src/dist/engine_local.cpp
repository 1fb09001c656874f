// engine_local.cpp: Engine::run_local, `--kv-policy local`: the baseline of a fleet of
// independent instances. The requests are dealt out once, up front; every rank then runs the
// single-instance generator over its own pool, with no step boundary shared with the others,
// and sends its results to rank 0 as they finish. (The pooled engine is engine.cpp.)
#include "dist/engine.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <utility>
#include <vector>

#include "dist/mpi_check.hpp"
#include "dist/wire.hpp"
#include "model/generator.hpp"

namespace infllm::dist {

namespace {
constexpr int kResultTag = 11;  // a result record, rank -> 0
constexpr int kEndTag = 12;     // a rank's end mark (one byte: stopped by a signal), rank -> 0
}  // namespace

RunSummary Engine::run_local(const std::vector<model::GenRequest>& requests,
                                const std::vector<std::size_t>& to_run, const EngineHooks& hooks) {
  // Deal the requests out up front (rank 0's list, broadcast once): least expected work first.
  std::int64_t count = rank_ == 0 ? static_cast<std::int64_t>(to_run.size()) : 0;
  INFLLM_MPI_CHECK(MPI_Bcast(&count, 1, MPI_INT64_T, 0, comm_));
  std::vector<std::int64_t> order(static_cast<std::size_t>(count));
  if (rank_ == 0) std::copy(to_run.begin(), to_run.end(), order.begin());
  INFLLM_MPI_CHECK(MPI_Bcast(order.data(), static_cast<int>(count), MPI_INT64_T, 0, comm_));
  const auto work = [&](std::int64_t i) {
    const auto& r = requests.at(static_cast<std::size_t>(i));
    return static_cast<std::int64_t>(r.prompt.size()) + std::max(0, r.max_new_tokens);
  };
  std::stable_sort(order.begin(), order.end(),
                   [&](std::int64_t a, std::int64_t b) { return work(a) > work(b); });
  std::vector<std::int64_t> load(static_cast<std::size_t>(size_), 0);
  std::vector<std::pair<std::int64_t, model::GenRequest>> own;
  for (std::int64_t i : order) {
    const auto r = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    load[static_cast<std::size_t>(r)] += work(i);
    if (r == rank_) own.emplace_back(i, requests.at(static_cast<std::size_t>(i)));
  }
  std::sort(own.begin(), own.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  std::vector<model::GenRequest> mine;
  for (auto& [i, r] : own) mine.push_back(std::move(r));

  model::Generator generator(forward_, tokenizer_, options_.instance);

  int ends = 0;
  bool any_stopped = false;
  std::vector<std::pair<std::vector<std::uint8_t>, MPI_Request>> outbox;
  const auto drain = [&](bool block) {  // rank 0: results and end marks from the others
    for (;;) {
      int flag = 0;
      MPI_Status st;
      if (block) {
        INFLLM_MPI_CHECK(MPI_Probe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &st));
        flag = 1;
      } else {
        INFLLM_MPI_CHECK(MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, comm_, &flag, &st));
      }
      if (flag == 0) return;
      int bytes = 0;
      INFLLM_MPI_CHECK(MPI_Get_count(&st, MPI_BYTE, &bytes));
      std::vector<std::uint8_t> buf(static_cast<std::size_t>(bytes));
      INFLLM_MPI_CHECK(MPI_Recv(buf.data(), bytes, MPI_BYTE, st.MPI_SOURCE, st.MPI_TAG, comm_,
                                MPI_STATUS_IGNORE));
      if (st.MPI_TAG == kEndTag) {
        ++ends;
        any_stopped = any_stopped || (!buf.empty() && buf[0] != 0);
        if (block) return;
      } else {
        hooks.on_result(decode_record(buf.data(), buf.size()));
        if (block) return;
      }
    }
  };
  model::RunHooks rh;
  rh.stop = hooks.stop;
  rh.on_step = [&](const model::StepProgress& p) {
    if (rank_ == 0) {
      drain(false);
      if (hooks.on_step) {
        ClusterStep cs;
        cs.step = p.steps;
        cs.sum.prefill_tokens = p.prefill_tokens;
        cs.sum.decode_tokens = p.decode_tokens;
        cs.sum.pool_used = p.pool_used;
        cs.sum.pool_slots = p.pool_slots;
        hooks.on_step(cs);
      }
    } else {
      std::erase_if(outbox, [](auto& o) {
        int done = 0;
        INFLLM_MPI_CHECK(MPI_Test(&o.second, &done, MPI_STATUS_IGNORE));
        return done != 0;
      });
    }
    if (hooks.after_step) hooks.after_step();
  };
  const auto t0 = std::chrono::steady_clock::now();
  const model::GeneratorStats gs = generator.run(
      std::move(mine),
      [&](model::GenResult&& g) {
        if (rank_ == 0) {
          hooks.on_result(to_record(std::move(g)));
          return;
        }
        outbox.emplace_back(encode(to_record(std::move(g))), MPI_REQUEST_NULL);
        auto& o = outbox.back();
        INFLLM_MPI_CHECK(MPI_Isend(o.first.data(), static_cast<int>(o.first.size()), MPI_BYTE, 0,
                                   kResultTag, comm_, &o.second));
      },
      rh);
  const double run_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (rank_ != 0) {
    for (auto& o : outbox) INFLLM_MPI_CHECK(MPI_Wait(&o.second, MPI_STATUS_IGNORE));
    std::uint8_t stopped = gs.stopped ? 1 : 0;
    INFLLM_MPI_CHECK(MPI_Send(&stopped, 1, MPI_BYTE, 0, kEndTag, comm_));
  } else {
    any_stopped = gs.stopped;
    while (ends < size_ - 1) drain(true);
  }
  // The totals of every rank, for the summary.
  std::array<double, 5> mine_totals{
      static_cast<double>(gs.prefill_tokens), static_cast<double>(gs.decode_tokens),
      static_cast<double>(gs.preemptions), static_cast<double>(gs.steps), run_s};
  std::array<double, 5> sums{};
  INFLLM_MPI_CHECK(MPI_Reduce(mine_totals.data(), sums.data(), 5, MPI_DOUBLE, MPI_SUM, 0, comm_));
  RunSummary summary;
  summary.prefill_tokens = static_cast<std::int64_t>(sums[0]);
  summary.decode_tokens = static_cast<std::int64_t>(sums[1]);
  summary.preemptions = static_cast<std::int64_t>(sums[2]);
  summary.steps = gs.steps;
  summary.totals.prefill_tokens = summary.prefill_tokens;
  summary.totals.decode_tokens = summary.decode_tokens;
  summary.totals.compute_s = sums[4];
  summary.stopped = any_stopped;
  return summary;
}

}  // namespace infllm::dist
