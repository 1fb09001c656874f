// slot_allocator.cpp: O(1) slot allocation with use tracking and statistics (see header).
#include "core/slot_allocator.hpp"

#include <algorithm>
#include <string>

#include "core/errors.hpp"

namespace infllm {

const char* slot_use_name(SlotUse use) {
  switch (use) {
    case SlotUse::kFree:
      return "free";
    case SlotUse::kOwn:
      return "own";
    case SlotUse::kLent:
      return "lent";
  }
  return "?";
}

SlotAllocator::SlotAllocator(std::int32_t capacity) {
  if (capacity < 0) throw InternalError("SlotAllocator: negative capacity");
  use_.assign(static_cast<std::size_t>(capacity), SlotUse::kFree);
  pos_.resize(static_cast<std::size_t>(capacity));
  free_.resize(static_cast<std::size_t>(capacity));
  // Slot 0 on top, so allocation order is 0, 1, 2, ... in a fresh pool.
  for (std::int32_t i = 0; i < capacity; ++i) {
    free_[static_cast<std::size_t>(i)] = capacity - 1 - i;
    pos_[static_cast<std::size_t>(capacity - 1 - i)] = i;
  }
  stats_.capacity = capacity;
  stats_.free = capacity;
}

void SlotAllocator::check_slot(SlotId slot) const {
  if (slot.value() < 0 || slot.value() >= capacity()) {
    throw InternalError("SlotAllocator: slot " + std::to_string(slot.value()) +
                        " outside a pool of " + std::to_string(capacity()));
  }
}

SlotUse SlotAllocator::use(SlotId slot) const {
  check_slot(slot);
  return use_[static_cast<std::size_t>(slot.value())];
}

void SlotAllocator::set_use(std::int32_t slot, SlotUse use) {
  SlotUse& old = use_[static_cast<std::size_t>(slot)];
  if (old == SlotUse::kOwn) --stats_.own;
  if (old == SlotUse::kLent) --stats_.lent;
  if (use == SlotUse::kOwn) ++stats_.own;
  if (use == SlotUse::kLent) ++stats_.lent;
  old = use;
  stats_.used = stats_.own + stats_.lent;
  stats_.free = capacity() - stats_.used;
  stats_.used_hwm = std::max(stats_.used_hwm, stats_.used);
  stats_.lent_hwm = std::max(stats_.lent_hwm, stats_.lent);
}

std::optional<SlotId> SlotAllocator::allocate(SlotUse use) {
  if (use == SlotUse::kFree) throw InternalError("SlotAllocator::allocate: use must not be free");
  if (free_.empty()) return std::nullopt;
  const std::int32_t slot = free_.back();
  free_.pop_back();
  pos_[static_cast<std::size_t>(slot)] = -1;
  set_use(slot, use);
  return SlotId{slot};
}

void SlotAllocator::take(SlotId slot, SlotUse use) {
  check_slot(slot);
  if (use == SlotUse::kFree) throw InternalError("SlotAllocator::take: use must not be free");
  const auto s = static_cast<std::size_t>(slot.value());
  if (use_[s] != SlotUse::kFree) {
    throw InternalError("SlotAllocator::take: slot " + std::to_string(slot.value()) + " is " +
                        slot_use_name(use_[s]));
  }
  // Swap with the top, then pop: O(1).
  const std::int32_t at = pos_[s];
  const std::int32_t top = free_.back();
  free_[static_cast<std::size_t>(at)] = top;
  pos_[static_cast<std::size_t>(top)] = at;
  free_.pop_back();
  pos_[s] = -1;
  set_use(slot.value(), use);
}

void SlotAllocator::free(SlotId slot) {
  check_slot(slot);
  const auto s = static_cast<std::size_t>(slot.value());
  if (use_[s] == SlotUse::kFree) {
    throw InternalError("SlotAllocator::free: slot " + std::to_string(slot.value()) +
                        " is already free");
  }
  set_use(slot.value(), SlotUse::kFree);
  pos_[s] = static_cast<std::int32_t>(free_.size());
  free_.push_back(slot.value());
}

void SlotAllocator::relabel(SlotId slot, SlotUse use) {
  check_slot(slot);
  if (use == SlotUse::kFree || is_free(slot)) {
    throw InternalError("SlotAllocator::relabel: slot " + std::to_string(slot.value()) +
                        " must be used before and after");
  }
  set_use(slot.value(), use);
}

std::vector<SlotId> SlotAllocator::free_slots(std::int32_t limit) const {
  std::vector<SlotId> out;
  const auto n = std::min<std::size_t>(free_.size(), static_cast<std::size_t>(std::max(0, limit)));
  out.reserve(n);
  // The bottom of the stack: slots allocate() reaches last.
  for (std::size_t i = 0; i < n; ++i) out.emplace_back(free_[i]);
  return out;
}

void SlotAllocator::add_borrowed(std::int64_t blocks) {
  stats_.borrowed += blocks;
  stats_.borrowed_hwm = std::max(stats_.borrowed_hwm, stats_.borrowed);
}

void SlotAllocator::remove_borrowed(std::int64_t blocks) {
  if (blocks > stats_.borrowed) throw InternalError("SlotAllocator: borrowed would go negative");
  stats_.borrowed -= blocks;
}

void SlotAllocator::check_invariants() const {
  std::int32_t own = 0;
  std::int32_t lent = 0;
  std::int32_t free = 0;
  for (std::size_t s = 0; s < use_.size(); ++s) {
    switch (use_[s]) {
      case SlotUse::kOwn:
        ++own;
        break;
      case SlotUse::kLent:
        ++lent;
        break;
      case SlotUse::kFree:
        ++free;
        if (pos_[s] < 0 || static_cast<std::size_t>(pos_[s]) >= free_.size() ||
            free_[static_cast<std::size_t>(pos_[s])] != static_cast<std::int32_t>(s)) {
          throw InternalError("SlotAllocator invariant: free slot " + std::to_string(s) +
                              " is not on the free stack");
        }
        break;
    }
  }
  if (free != static_cast<std::int32_t>(free_.size())) {
    throw InternalError("SlotAllocator invariant: free stack size differs from free slots");
  }
  if (own != stats_.own || lent != stats_.lent || free != stats_.free ||
      stats_.free + stats_.used != capacity()) {
    throw InternalError("SlotAllocator invariant: free + used != capacity or stale statistics");
  }
  if (stats_.borrowed < 0) throw InternalError("SlotAllocator invariant: negative borrowed");
}

}  // namespace infllm
