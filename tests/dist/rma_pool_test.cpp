// rma_pool_test.cpp: the rBlock pool's RMA window under real mpiexec, every byte checked.
//
// Each rank exposes `size * kPerWriter` slots. Writer w owns slots [w*kPerWriter, (w+1)*kPerWriter)
// on every rank, so every slot of the cluster has exactly one writer. A slot's contents are the
// verifiable pattern of (writer, global block id), so its owner (or any rank that fetches it)
// checks it without a reference copy. Half the ranks compute without calling MPI while the other
// half move data into and out of their windows, then the roles swap.
#include <gtest/gtest.h>
#include <mpi.h>

#include <chrono>
#include <cstdint>
#include <vector>

#include "core/errors.hpp"
#include "core/verifiable.hpp"
#include "dist/rma_pool.hpp"

namespace infllm::dist {
namespace {

constexpr std::int32_t kPerWriter = 3;

int world_rank() {
  int r = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &r);
  return r;
}
int world_size() {
  int n = 1;
  MPI_Comm_size(MPI_COMM_WORLD, &n);
  return n;
}

std::uint64_t block_id(int rank, std::int32_t slot, std::int32_t slots) {
  return static_cast<std::uint64_t>(rank) * static_cast<std::uint64_t>(slots) +
         static_cast<std::uint64_t>(slot);
}

// Keeps the CPU busy for `ms` without any MPI call (the target "computing").
double busy_compute(int ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  volatile double acc = 0.0;
  while (std::chrono::steady_clock::now() < end) {
    for (int i = 0; i < 10000; ++i) acc = acc + 1e-9 * i;
  }
  return acc;
}

std::uint64_t sum_all(std::uint64_t mine) {
  std::uint64_t total = 0;
  MPI_Allreduce(&mine, &total, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
  return total;
}

// Puts this rank's slots on every target (in two halves when `split`), then flushes.
void put_my_slots(RmaPool& pool, bool split) {
  const int me = world_rank();
  std::vector<std::byte> buf(pool.slot_bytes());
  for (int t = 0; t < world_size(); ++t) {
    for (std::int32_t k = 0; k < kPerWriter; ++k) {
      const SlotId slot{me * kPerWriter + k};
      fill_verifiable(buf.data(), buf.size(), me, block_id(t, slot.value(), pool.slots()));
      const BlockRef dst{RankId{t}, slot};
      if (split) {
        const std::size_t half = buf.size() / 2;
        pool.put(buf.data(), half, dst, 0);
        pool.put(buf.data() + half, buf.size() - half, dst, half);
      } else {
        pool.put(buf.data(), buf.size(), dst);
      }
      // The buffer is reused: complete this put before refilling it.
      pool.flush(RankId{t});
    }
  }
  pool.flush_all();
}

// Checks every byte of every local slot; returns the number of wrong bytes.
std::uint64_t check_local(RmaPool& pool) {
  pool.sync();
  std::uint64_t bad = 0;
  for (std::int32_t s = 0; s < pool.slots(); ++s) {
    const auto bytes = pool.local(SlotId{s});
    bad += count_unverifiable(bytes.data(), bytes.size(), s / kPerWriter,
                              block_id(world_rank(), s, pool.slots()));
  }
  return bad;
}

class RmaPoolTest : public ::testing::TestWithParam<std::size_t> {};

TEST_P(RmaPoolTest, PutWhileTargetsComputeThenEveryByteChecks) {
  const std::size_t slot_bytes = GetParam();
  RmaPool pool(MPI_COMM_WORLD, slot_bytes, world_size() * kPerWriter);
  for (int phase = 0; phase < 2; ++phase) {
    MPI_Barrier(MPI_COMM_WORLD);
    if (world_rank() % 2 == phase) {
      put_my_slots(pool, /*split=*/phase == 1);
    } else {
      busy_compute(20);
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
  const std::uint64_t bad = sum_all(check_local(pool));
  const std::uint64_t checked = sum_all(pool.slots() * slot_bytes);
  EXPECT_EQ(bad, 0u) << "wrong bytes after MPI_Put";
  EXPECT_EQ(checked,
            static_cast<std::uint64_t>(world_size()) * world_size() * kPerWriter * slot_bytes);
  MPI_Barrier(MPI_COMM_WORLD);
}

TEST_P(RmaPoolTest, GetEverySlotOfEveryRankWhileOwnersCompute) {
  const std::size_t slot_bytes = GetParam();
  RmaPool pool(MPI_COMM_WORLD, slot_bytes, world_size() * kPerWriter);
  // Owners fill their own slots with local stores; sync makes them visible to Gets.
  for (std::int32_t s = 0; s < pool.slots(); ++s) {
    auto bytes = pool.local(SlotId{s});
    fill_verifiable(bytes.data(), bytes.size(), s / kPerWriter,
                    block_id(world_rank(), s, pool.slots()));
  }
  pool.sync();
  MPI_Barrier(MPI_COMM_WORLD);

  std::uint64_t bad = 0, checked = 0;
  std::vector<std::byte> buf(slot_bytes);
  for (int phase = 0; phase < 2; ++phase) {
    if (world_rank() % 2 == phase) {
      for (int t = 0; t < world_size(); ++t) {
        for (std::int32_t s = 0; s < pool.slots(); ++s) {
          pool.get(buf.data(), buf.size(), BlockRef{RankId{t}, SlotId{s}});
          pool.flush(RankId{t});
          bad += count_unverifiable(buf.data(), buf.size(), s / kPerWriter,
                                    block_id(t, s, pool.slots()));
          checked += buf.size();
        }
      }
    } else {
      busy_compute(20);
    }
    MPI_Barrier(MPI_COMM_WORLD);
  }
  EXPECT_EQ(sum_all(bad), 0u) << "wrong bytes after MPI_Get";
  EXPECT_EQ(sum_all(checked), static_cast<std::uint64_t>(world_size()) * world_size() *
                                  world_size() * kPerWriter * slot_bytes);
}

TEST(RmaPoolBounds, AccessOutsideASlotIsMisuse) {
  RmaPool pool(MPI_COMM_WORLD, 256, 2);
  std::vector<std::byte> buf(512);
  const BlockRef self{RankId{world_rank()}, SlotId{1}};
  EXPECT_THROW(pool.put(buf.data(), 257, self), InternalError);
  EXPECT_THROW(pool.get(buf.data(), 200, self, 100), InternalError);
  EXPECT_THROW(pool.local(SlotId{2}), InternalError);
  MPI_Barrier(MPI_COMM_WORLD);
}

// 64 KiB is a typical rBlock of a small model; 4099 bytes checks sizes that are not multiples
// of any word size.
INSTANTIATE_TEST_SUITE_P(SlotSizes, RmaPoolTest, ::testing::Values(4099, 65536),
                         [](const auto& info) { return "bytes" + std::to_string(info.param); });

}  // namespace
}  // namespace infllm::dist

namespace infllm::dist {
namespace {

TEST(RmaPoolRange, PutRangeFillsConsecutiveSlotsOfTheNextRank) {
  constexpr std::size_t kSlot = 1000;
  constexpr std::int32_t kSlots = 5;
  RmaPool pool(MPI_COMM_WORLD, kSlot, kSlots);
  const int next = (world_rank() + 1) % world_size();
  const int prev = (world_rank() + world_size() - 1) % world_size();
  std::vector<std::byte> buf(kSlot * 3);
  fill_verifiable(buf.data(), buf.size(), world_rank(), 99);
  pool.put_range(buf.data(), buf.size(), RankId{next}, SlotId{1});
  pool.flush(RankId{next});
  MPI_Barrier(MPI_COMM_WORLD);
  pool.sync();
  // Slots 1..3 hold the previous rank's 3000 bytes, in order.
  std::vector<std::byte> got(kSlot * 3);
  for (int s = 0; s < 3; ++s) {
    const auto slot = pool.local(SlotId{1 + s});
    std::copy(slot.begin(), slot.end(), got.begin() + s * kSlot);
  }
  EXPECT_EQ(sum_all(count_unverifiable(got.data(), got.size(), prev, 99)), 0u);
  EXPECT_THROW(pool.put_range(buf.data(), buf.size(), RankId{next}, SlotId{3}), InternalError);
  MPI_Barrier(MPI_COMM_WORLD);
}

}  // namespace
}  // namespace infllm::dist
