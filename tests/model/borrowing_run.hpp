// borrowing_run.hpp: the engine on three in-process instances whose 8-slot pools cannot hold the
// longest of four requests, so they borrow rBlocks (with invariants checked at every step). A
// backend's tests run it to show that its kernels, and DistAttention's staging through its
// memory, give the CPU backend's tokens.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

#include "model/engine/engine.hpp"
#include "tiny_model.hpp"

namespace infllm::model::testing {

class BorrowingRun {
 protected:
  BorrowingRun() : config_(tiny_config(4, 2, true, false)), weights_(random_weights(config_, 33)) {
    std::mt19937 rng(4);
    for (int i = 0; i < 4; ++i) {
      GenRequest r;
      r.id = "r" + std::to_string(i);
      r.prompt = random_tokens(rng, 9 + 10 * i, static_cast<int>(config_.vocab_size));
      r.max_new_tokens = 5;
      requests_.push_back(r);
    }
  }

  // Each request's tokens; every request must end done.
  std::map<std::string, std::vector<std::int32_t>> run(Backend& backend, RemoteAttention remote) {
    EngineOptions o;
    o.instance = {.block_tokens = 4, .pool_slots = 8, .max_batch_tokens = 16, .max_num_seqs = 4};
    o.policy = KvPolicy::kPooled;
    o.remote = remote;
    o.fill_waits = false;
    o.check_invariants = true;
    std::map<std::string, std::vector<std::int32_t>> out;
    InProcessHooks hooks;
    hooks.on_result = [&](GenResult&& r) {
      EXPECT_EQ(r.status, GenStatus::kDone) << r.id << ": " << r.reason;
      out[r.id] = r.tokens;
    };
    summary_ = run_in_process(config_, weights_, backend, nullptr, requests_, o, 3, 3, hooks);
    return out;
  }

  ModelConfig config_;
  Weights weights_;
  std::vector<GenRequest> requests_;
  RunSummary summary_;
};

}  // namespace infllm::model::testing
