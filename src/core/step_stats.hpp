// step_stats.hpp: what one instance measured in one step, declared once.
//
// Every consumer walks the one list below: the control plane's wire format (dist/wire.cpp), the
// per-step rows of `--metrics` and of an HDF5 output's /steps group (app/cmd_generate.cpp), and
// the cluster sums of each boundary (add()). A field added here reaches all of them.
//
// NOTE: an X-macro, because C++20 has no reflection over a struct's members: the list is the one
// place where a field's type, name and meaning are written, and the struct, add() and
// for_each_field() are generated from it.
#pragma once

#include <cstdint>

namespace infllm {

// X(type, name, meaning). Names ending in `_bytes` are the bytes moved by kind; metrics group
// them under `bytes` by the name before the suffix.
#define INFLLM_STEP_STATS_FIELDS(X)                                                           \
  X(std::int64_t, prefill_tokens, "prompt tokens computed (recomputation included)")          \
  X(std::int64_t, decode_tokens, "decode tokens computed")                                    \
  X(std::int32_t, batch, "sequences in the batch")                                            \
  X(std::int64_t, local_blocks, "blocks its batch read at home")                              \
  X(std::int64_t, remote_blocks, "blocks its batch read on creditors (or pulled)")            \
  X(std::int64_t, push_bytes, "KV pushed to creditors (MPI_Put)")                             \
  X(std::int64_t, pull_bytes, "KV fetched for pull-KV (MPI_Get)")                             \
  X(std::int64_t, query_bytes, "queries sent (push-query)")                                   \
  X(std::int64_t, partial_bytes, "partial states sent back (as a creditor)")                  \
  X(std::int64_t, dgfm_bytes, "DGFM block moves it carried out")                              \
  X(std::int32_t, pool_used, "slots in use at the end of the step")                           \
  X(std::int32_t, pool_slots, "slots in the pool")                                            \
  X(double, compute_s, "the forward pass minus the waits inside it")                          \
  X(double, wait_s, "blocked on queries and partial states of others")                        \
  X(double, comm_s, "the boundary exchange, plan exchange and RMA of the step")               \
  X(std::int32_t, fill_steps, "extra all-local steps run while slower ranks finished theirs") \
  X(std::int32_t, fill_cuts, "fill steps discarded part-way because the last rank arrived")

struct StepStats {
#define INFLLM_STEP_STATS_MEMBER(type, name, meaning) type name = 0;
  INFLLM_STEP_STATS_FIELDS(INFLLM_STEP_STATS_MEMBER)
#undef INFLLM_STEP_STATS_MEMBER
};

// f(const char* name, T& value) for every field, in the list's order.
template <typename Stats, typename F>
void for_each_field(Stats& stats, F&& f) {
#define INFLLM_STEP_STATS_VISIT(type, name, meaning) f(#name, stats.name);
  INFLLM_STEP_STATS_FIELDS(INFLLM_STEP_STATS_VISIT)
#undef INFLLM_STEP_STATS_VISIT
}

// into += b, field by field (cluster totals: pool_used and pool_slots sum over ranks too).
inline void add(StepStats& into, const StepStats& b) {
#define INFLLM_STEP_STATS_ADD(type, name, meaning) into.name += b.name;
  INFLLM_STEP_STATS_FIELDS(INFLLM_STEP_STATS_ADD)
#undef INFLLM_STEP_STATS_ADD
}

}  // namespace infllm
