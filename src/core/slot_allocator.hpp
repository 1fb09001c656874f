// slot_allocator.hpp: the slot allocator of one instance's rBlock pool, with its statistics.
//
// A pool is `capacity` fixed-size rBlock slots (one MPI RMA window in src/dist). Every slot is in
// exactly one of three uses:
//
//   kFree  on the free stack, can be handed out
//   kOwn   holds a block of a request this instance is home to (or is reserved for one)
//   kLent  holds (or is reserved for) a block of another instance's request: a loan
//
// Invariants (check_invariants()): free + own + lent = capacity; the free stack holds exactly the
// kFree slots, each once, and pos_[s] is s's index in it. allocate() and free() are O(1): a LIFO
// stack plus a position index, so a specific slot (one the gManager granted) can also be taken
// out of the middle in O(1) by swapping it with the top.
//
// "borrowed" is not a slot of this pool: it counts blocks of this instance's requests that live
// in other pools. The rManager reports it here so one PoolStats value describes the instance.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "core/ids.hpp"

namespace infllm {

enum class SlotUse : std::uint8_t { kFree, kOwn, kLent };

const char* slot_use_name(SlotUse use);

struct PoolStats {
  std::int32_t capacity = 0;
  std::int32_t free = 0;
  std::int32_t used = 0;  // own + lent
  std::int32_t own = 0;
  std::int32_t lent = 0;
  std::int64_t borrowed = 0;  // blocks of this instance's requests held by other instances
  // High-water marks since construction.
  std::int32_t used_hwm = 0;
  std::int32_t lent_hwm = 0;
  std::int64_t borrowed_hwm = 0;
};

class SlotAllocator {
 public:
  // Throws InternalError when capacity < 0.
  explicit SlotAllocator(std::int32_t capacity);

  std::int32_t capacity() const { return static_cast<std::int32_t>(use_.size()); }
  std::int32_t free_count() const { return static_cast<std::int32_t>(free_.size()); }

  // The most recently freed slot, now in `use` (kOwn or kLent); empty when the pool is full.
  std::optional<SlotId> allocate(SlotUse use = SlotUse::kOwn);
  // Takes a specific free slot (one promised in a step report). Misuse (not free, out of range,
  // use kFree) throws InternalError.
  void take(SlotId slot, SlotUse use);
  // Returns a used slot to the free stack. Freeing a free slot throws InternalError.
  void free(SlotId slot);
  // Changes the use of a used slot (a lent slot that a swap turns into an own one).
  void relabel(SlotId slot, SlotUse use);

  SlotUse use(SlotId slot) const;
  bool is_free(SlotId slot) const { return use(slot) == SlotUse::kFree; }

  // Up to `limit` free slots, from the top of the stack (the ones allocate() would return last,
  // so promising them to others keeps the hot ones for local use).
  std::vector<SlotId> free_slots(std::int32_t limit) const;

  void add_borrowed(std::int64_t blocks);
  void remove_borrowed(std::int64_t blocks);

  PoolStats stats() const { return stats_; }

  // Throws InternalError naming the first broken invariant.
  void check_invariants() const;

 private:
  void check_slot(SlotId slot) const;
  void set_use(std::int32_t slot, SlotUse use);

  std::vector<SlotUse> use_;        // (capacity) use of each slot
  std::vector<std::int32_t> free_;  // (free) the free stack, top at the back
  std::vector<std::int32_t> pos_;   // (capacity) index into free_, -1 when used
  PoolStats stats_;
};

}  // namespace infllm
