// block_table.cpp: state transitions of one request's block table (see header).
#include "core/block_table.hpp"

#include <string>
#include <unordered_set>

#include "core/errors.hpp"

namespace infllm {

const char* block_state_name(BlockState state) {
  switch (state) {
    case BlockState::kLocal:
      return "local";
    case BlockState::kPushing:
      return "pushing";
    case BlockState::kRemote:
      return "remote";
    case BlockState::kMoving:
      return "moving";
  }
  return "?";
}

namespace {
[[noreturn]] void fail(RequestId request, const std::string& what) {
  throw InternalError("BlockTable q" + std::to_string(request.value()) + ": " + what);
}
}  // namespace

BlockTable::BlockTable(RequestId request, RankId home, std::int32_t block_tokens)
    : request_(request), home_(home), block_tokens_(block_tokens) {
  if (block_tokens <= 0) fail(request, "block_tokens must be positive");
}

std::int32_t BlockTable::blocks_for(std::int64_t tokens) const {
  return static_cast<std::int32_t>((tokens + block_tokens_ - 1) / block_tokens_);
}

const BlockEntry& BlockTable::at(std::int32_t index) const {
  if (index < 0 || index >= size()) fail(request_, "no block " + std::to_string(index));
  return entries_[static_cast<std::size_t>(index)];
}

BlockEntry& BlockTable::mutable_at(std::int32_t index) {
  if (index < 0 || index >= size()) fail(request_, "no block " + std::to_string(index));
  return entries_[static_cast<std::size_t>(index)];
}

void BlockTable::append(SlotId slot) {
  if (tokens_ < capacity_tokens()) fail(request_, "append while the tail is not full");
  entries_.push_back(BlockEntry{BlockRef{home_, slot}, BlockState::kLocal, {}, false});
}

void BlockTable::add_tokens(std::int64_t tokens) {
  if (tokens < 0 || tokens_ + tokens > capacity_tokens()) {
    fail(request_, "add_tokens(" + std::to_string(tokens) + ") beyond the appended blocks");
  }
  tokens_ += tokens;
}

void BlockTable::start_push(std::int32_t index, BlockRef remote) {
  BlockEntry& e = mutable_at(index);
  if (index == size() - 1) fail(request_, "the tail block never leaves home");
  if (e.state != BlockState::kLocal) fail(request_, "push of a block that is not local");
  if (remote.rank == home_) fail(request_, "push to the home itself");
  e.state = BlockState::kPushing;
  e.target = remote;
}

SlotId BlockTable::finish_push(std::int32_t index) {
  BlockEntry& e = mutable_at(index);
  if (e.state != BlockState::kPushing) fail(request_, "finish_push of a block not pushing");
  const SlotId local = e.ref.slot;
  e.ref = e.target;
  e.target = BlockRef{RankId{-1}, SlotId{-1}};
  e.state = BlockState::kRemote;
  return local;
}

void BlockTable::start_move(std::int32_t index, BlockRef to, bool via_scratch) {
  BlockEntry& e = mutable_at(index);
  if (e.state != BlockState::kRemote) fail(request_, "move of a block that is not remote");
  if (to == e.ref) fail(request_, "move onto itself");
  e.state = BlockState::kMoving;
  e.target = to;
  e.via_scratch = via_scratch;
}

BlockRef BlockTable::commit_move(std::int32_t index) {
  BlockEntry& e = mutable_at(index);
  if (e.state != BlockState::kMoving) fail(request_, "commit of a block that is not moving");
  const BlockRef from = e.ref;
  e.ref = e.target;
  e.target = BlockRef{RankId{-1}, SlotId{-1}};
  e.via_scratch = false;
  e.state = e.ref.rank == home_ ? BlockState::kLocal : BlockState::kRemote;
  return from;
}

std::int32_t BlockTable::first_pushable() const {
  for (std::int32_t i = 0; i + 1 < size(); ++i) {
    if (entries_[static_cast<std::size_t>(i)].state == BlockState::kLocal) return i;
  }
  return -1;
}

std::int32_t BlockTable::count(BlockState state) const {
  std::int32_t n = 0;
  for (const auto& e : entries_) n += e.state == state ? 1 : 0;
  return n;
}

std::int32_t BlockTable::remote_blocks() const {
  return count(BlockState::kRemote) + count(BlockState::kMoving);
}

void BlockTable::check_invariants() const {
  if (tokens_ > capacity_tokens() || tokens_ <= capacity_tokens() - block_tokens_) {
    if (!(entries_.empty() && tokens_ == 0)) fail(request_, "tokens do not match the blocks");
  }
  if (!entries_.empty()) {
    const BlockEntry& tail = entries_.back();
    if (tail.state != BlockState::kLocal || tail.ref.rank != home_) {
      fail(request_, "the tail block is not at home");
    }
  }
  std::unordered_set<BlockRef> seen;
  for (const auto& e : entries_) {
    const bool local_ref = e.state == BlockState::kLocal || e.state == BlockState::kPushing;
    if (local_ref != (e.ref.rank == home_)) fail(request_, "an entry's rank contradicts its state");
    if (!seen.insert(e.ref).second) fail(request_, "two entries name one slot");
    const bool has_target = e.state == BlockState::kPushing || e.state == BlockState::kMoving;
    if (has_target && !seen.insert(e.target).second) {
      fail(request_, "two entries name one slot (target)");
    }
  }
}

}  // namespace infllm
