// block_table.hpp: one request's block table: logical block i -> where its KV lives.
//
// The home instance owns the table. Blocks are appended at the tail and never removed until the
// request ends (append-only growth); a full block may leave home for a creditor's slot, and DGFM
// may bring it back. Each entry has a state (docs/design.md, Data plane):
//
//   kLocal    ref is a home slot
//   kPushing  ref is the home slot (still authoritative); target is the granted creditor slot
//   kRemote   ref is a creditor slot
//   kMoving   ref is the source (still authoritative); target is the destination slot
//
//   logical:   0        1        2        3        4 (tail)
//   entry:   REMOTE   REMOTE   PUSHING  LOCAL    LOCAL
//   ref:     (r1,s7)  (r2,s0)  (r0,s3)  (r0,s5)  (r0,s1)     home = r0
//   target:                    (r2,s4)
//
// Invariants: the tail (last entry) is kLocal at home; only full blocks (i < size-1) leave home;
// no two entries name the same slot.
#pragma once

#include <cstdint>
#include <vector>

#include "core/ids.hpp"

namespace infllm {

enum class BlockState : std::uint8_t { kLocal, kPushing, kRemote, kMoving };

const char* block_state_name(BlockState state);

struct BlockEntry {
  BlockRef ref;
  BlockState state = BlockState::kLocal;
  BlockRef target{RankId{-1}, SlotId{-1}};  // kPushing / kMoving only
  bool via_scratch = false;                 // kMoving only: target is a slot vacated by a swap
};

class BlockTable {
 public:
  BlockTable(RequestId request, RankId home, std::int32_t block_tokens);

  RequestId request() const { return request_; }
  RankId home() const { return home_; }
  std::int32_t size() const { return static_cast<std::int32_t>(entries_.size()); }
  std::int64_t tokens() const { return tokens_; }
  std::int64_t capacity_tokens() const { return static_cast<std::int64_t>(size()) * block_tokens_; }
  // Blocks needed to hold `tokens` tokens.
  std::int32_t blocks_for(std::int64_t tokens) const;
  const BlockEntry& at(std::int32_t index) const;
  const std::vector<BlockEntry>& entries() const { return entries_; }

  // Appends a new tail in the home slot `slot`. The current tail must be full.
  void append(SlotId slot);
  // Adds tokens to the tail; they must fit in the blocks already appended.
  void add_tokens(std::int64_t tokens);

  // Entry `index` (a full, kLocal, non-tail block) starts its push to `remote`.
  void start_push(std::int32_t index, BlockRef remote);
  // The push landed: the entry becomes kRemote; returns the home slot to free.
  SlotId finish_push(std::int32_t index);
  // Entry `index` (kRemote) starts moving to `to` (home or another creditor).
  void start_move(std::int32_t index, BlockRef to, bool via_scratch);
  // The move committed: ref = target; returns the old source ref.
  BlockRef commit_move(std::int32_t index);

  // The first full kLocal block that may be pushed (never the tail), or -1.
  std::int32_t first_pushable() const;
  std::int32_t count(BlockState state) const;
  // Entries whose authoritative data is away from home (kPushing counts as home).
  std::int32_t remote_blocks() const;

  // Throws InternalError naming the first broken invariant.
  void check_invariants() const;

 private:
  BlockEntry& mutable_at(std::int32_t index);

  RequestId request_;
  RankId home_;
  std::int32_t block_tokens_;
  std::int64_t tokens_ = 0;
  std::vector<BlockEntry> entries_;
};

}  // namespace infllm
