// bench_rma.cpp: `mpiexec -n N infllm bench rma`: how fast rBlocks move between pools, against
// the raw MPI_Put bandwidth of the same run.
//
// Each rank r sends to rank (r + 1) % N. Raw: one MPI_Put of `blocks * block_bytes` contiguous
// bytes, then flush. rBlock moves: `blocks` separate puts of one block each into shuffled slots
// of the target's pool (as grants and DGFM scatter them), then one flush. Every moved byte is
// checked afterwards against the verifiable pattern, and the error count is all-reduced; the
// footer says OK or FAILED (nccl-tests' habit). Run with 2+ ranks.
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <vector>

#include "app/bench.hpp"
#include "core/block_geometry.hpp"
#include "core/verifiable.hpp"
#include "dist/mpi_session.hpp"
#include "dist/rma_pool.hpp"

namespace {

using infllm::BlockRef;
using infllm::RankId;
using infllm::SlotId;
using infllm::dist::RmaPool;

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

struct Row {
  const char* model;
  std::size_t block_bytes;
  int blocks;
  double raw_gbs, block_gbs;
};

// Best of `repeats` of fn(), timed between barriers; the slowest rank's time counts.
template <typename Fn>
double timed(Fn fn, int repeats) {
  double best = 1e30;
  for (int r = 0; r < repeats; ++r) {
    MPI_Barrier(MPI_COMM_WORLD);
    const double t0 = now_s();
    fn();
    double mine = now_s() - t0, slowest = 0;
    MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    best = std::min(best, slowest);
  }
  return best;
}

int run(int argc, char** argv, const infllm::app::BenchOptions& options) {
  infllm::dist::MpiSession mpi(&argc, &argv);
  const int rank = mpi.rank(), size = mpi.size();
  if (size < 2) {
    if (rank == 0) std::fprintf(stderr, "bench rma: run under mpiexec with 2 or more ranks\n");
    return 2;
  }
  const int target = (rank + 1) % size, source = (rank + size - 1) % size;
  // rBlocks of two real shapes: the micro test model and SmolLM2-135M, 16 tokens, f16 KV.
  const infllm::BlockGeometry micro{16, 2, 2, 32, infllm::KvDtype::kF16};
  const infllm::BlockGeometry smol{16, 30, 3, 64, infllm::KvDtype::kF16};
  const int blocks = options.full ? 256 : 64;
  std::vector<Row> rows;
  std::uint64_t bad = 0;
  for (const auto& [name, g] : {std::pair{"micro", micro}, std::pair{"SmolLM2-135M", smol}}) {
    const std::size_t bytes = g.block_bytes();
    RmaPool pool(MPI_COMM_WORLD, bytes, blocks);
    std::vector<std::byte> src(bytes * blocks);
    for (int b = 0; b < blocks; ++b) {
      infllm::fill_verifiable(src.data() + b * bytes, bytes, rank, static_cast<std::uint64_t>(b));
    }
    std::vector<int> slots(blocks);
    std::iota(slots.begin(), slots.end(), 0);
    std::shuffle(slots.begin(), slots.end(), std::mt19937(42 + rank));
    // Raw: the whole buffer as one put into the target's window (slot 0 onwards).
    const double raw = timed(
        [&] {
          pool.put_range(src.data(), src.size(), RankId{target}, SlotId{0});
          pool.flush(RankId{target});
        },
        5);
    const double moves = timed(
        [&] {
          for (int b = 0; b < blocks; ++b) {
            pool.put(src.data() + b * bytes, bytes, BlockRef{RankId{target}, SlotId{slots[b]}});
          }
          pool.flush(RankId{target});
        },
        5);
    MPI_Barrier(MPI_COMM_WORLD);
    pool.sync();
    // What landed here came from `source`, block b in the slot `source` shuffled it to.
    std::vector<int> their(blocks);
    std::iota(their.begin(), their.end(), 0);
    std::shuffle(their.begin(), their.end(), std::mt19937(42 + source));
    for (int b = 0; b < blocks; ++b) {
      const auto slot = pool.local(SlotId{their[b]});
      bad += infllm::count_unverifiable(slot.data(), bytes, source, static_cast<std::uint64_t>(b));
    }
    const double total = double(bytes) * blocks;
    rows.push_back({name, bytes, blocks, total / raw / 1e9, total / moves / 1e9});
    MPI_Barrier(MPI_COMM_WORLD);
  }
  std::uint64_t all_bad = 0;
  MPI_Allreduce(&bad, &all_bad, 1, MPI_UINT64_T, MPI_SUM, MPI_COMM_WORLD);
  if (rank == 0) {
    std::printf("# infllm bench rma: %d ranks, each puts to the next; osc '%s'; best of 5\n", size,
                mpi.osc_components().c_str());
    std::printf("%-14s %12s %7s %13s %15s %7s\n", "rBlock shape", "block_bytes", "blocks",
                "raw_put_GB/s", "rblock_put_GB/s", "ratio");
    for (const auto& r : rows) {
      std::printf("%-14s %12zu %7d %13.2f %15.2f %7.2f\n", r.model, r.block_bytes, r.blocks,
                  r.raw_gbs, r.block_gbs, r.block_gbs / r.raw_gbs);
    }
    std::printf("# %llu wrong bytes after the moves: %s\n",
                static_cast<unsigned long long>(all_bad), all_bad == 0 ? "OK" : "FAILED");
  }
  return all_bad == 0 ? 0 : 3;
}

const infllm::app::BenchRegistration kReg{"rma", &run};

}  // namespace
