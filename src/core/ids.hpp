// ids.hpp: strong ids for the things that cross module boundaries (STYLE.md habit 3).
//
// A RankId is not a SlotId is not a RequestId: each wraps an integer in its own type so that a
// swapped argument is a compile error. BlockRef {rank, slot} names one rBlock slot in the cluster.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <ostream>

namespace infllm {

template <typename Tag, typename Rep>
class StrongId {
 public:
  using rep_type = Rep;
  constexpr StrongId() = default;
  constexpr explicit StrongId(Rep value) : value_(value) {}
  constexpr Rep value() const { return value_; }
  constexpr auto operator<=>(const StrongId&) const = default;

 private:
  Rep value_{};
};

template <typename Tag, typename Rep>
std::ostream& operator<<(std::ostream& os, StrongId<Tag, Rep> id) {
  return os << Tag::kPrefix << id.value();
}

struct RankTag { static constexpr const char* kPrefix = "r"; };
struct SlotTag { static constexpr const char* kPrefix = "s"; };
struct RequestTag { static constexpr const char* kPrefix = "q"; };
struct ContractTag { static constexpr const char* kPrefix = "c"; };

using RankId = StrongId<RankTag, std::int32_t>;
using SlotId = StrongId<SlotTag, std::int32_t>;
using RequestId = StrongId<RequestTag, std::int64_t>;
using ContractId = StrongId<ContractTag, std::int64_t>;

// One rBlock slot somewhere in the cluster.
struct BlockRef {
  RankId rank;
  SlotId slot;
  constexpr auto operator<=>(const BlockRef&) const = default;
};

inline std::ostream& operator<<(std::ostream& os, BlockRef ref) {
  return os << '(' << ref.rank << ',' << ref.slot << ')';
}

}  // namespace infllm

template <typename Tag, typename Rep>
struct std::hash<infllm::StrongId<Tag, Rep>> {
  std::size_t operator()(infllm::StrongId<Tag, Rep> id) const noexcept {
    return std::hash<Rep>{}(id.value());
  }
};

template <>
struct std::hash<infllm::BlockRef> {
  std::size_t operator()(infllm::BlockRef ref) const noexcept {
    return std::hash<std::int64_t>{}((std::int64_t{ref.rank.value()} << 32) ^
                                     static_cast<std::uint32_t>(ref.slot.value()));
  }
};
