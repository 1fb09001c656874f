// engine.cpp: see engine.hpp. The Engine's set-up; its run is engine_run.cpp.
#include "dist/engine.hpp"

#include <exception>
#include <string>

#include "core/errors.hpp"
#include "dist/mpi_check.hpp"

namespace infllm::dist {

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
  if (options_.instance.pool_slots < 2) {
    throw UsageError("kv-pool-mb", "a pool needs at least 2 rBlocks of " +
                                       std::to_string(forward_
                                                          .geometry(options_.instance.block_tokens,
                                                                    options_.instance.kv_dtype)
                                                          .block_bytes()) +
                                       " bytes");
  }
}

Engine::~Engine() {
  if (std::uncaught_exceptions() > 0) return;  // collective frees: see ~RmaPool
  MPI_Comm_free(&attn_comm_);
  MPI_Comm_free(&comm_);
}

}  // namespace infllm::dist
