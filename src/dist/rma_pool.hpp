// rma_pool.hpp: one rank's pool of fixed-size rBlock slots, exposed to every rank as one MPI
// RMA window in a passive-target epoch that lasts as long as the pool.
//
//   rank r's window:  | slot 0 | slot 1 | ... | slot S-1 |   each slot_bytes, disp_unit 1
//
// Any rank may MPI_Put into / MPI_Get from any slot of any rank (its own included) at any time;
// completion at the origin is flush(target). Ordering rules (docs/design.md, Data plane): an
// origin flushes before it reports a move done; a target calls sync() after the boundary at
// which it learns of the move, before it reads what landed, and after its own local stores.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>

#include "core/ids.hpp"
#include "core/step_ports.hpp"

namespace infllm::dist {

class RmaPool final : public BlockTransport {
 public:
  // Collective over `comm`: every rank allocates `slots` slots of `slot_bytes` each (slots may
  // differ between ranks; slot_bytes may not).
  // `prepare`, when given, sees the window's memory before its first touch (Backend::prepare_kv).
  RmaPool(MPI_Comm comm, std::size_t slot_bytes, std::int32_t slots,
          const std::function<void(std::byte*, std::size_t)>& prepare = {});
  ~RmaPool();  // collective: unlock_all + MPI_Win_free
  RmaPool(const RmaPool&) = delete;
  RmaPool& operator=(const RmaPool&) = delete;

  std::size_t slot_bytes() const override { return slot_bytes_; }
  std::int32_t slots() const override { return slots_; }

  // The local slot's memory (this rank's window).
  std::span<std::byte> local(SlotId slot) override;
  // BlockTransport: a whole slot, put() / get() below.
  void put_block(const void* src, BlockRef dst) override { put(src, slot_bytes_, dst); }
  void get_block(void* dst, BlockRef src) override { get(dst, slot_bytes_, src); }

  // Copies `bytes` from `src` into (target, slot) at `offset`. Completes at flush(target).
  void put(const void* src, std::size_t bytes, BlockRef dst, std::size_t offset = 0);
  // Copies `bytes` from `src` into consecutive slots of `target` starting at `first` (a range
  // that may cross slot boundaries: bulk transfers, benchmarks). The range must fit the pool's
  // size on this rank, which the caller guarantees is also the target's.
  void put_range(const void* src, std::size_t bytes, RankId target, SlotId first);
  // Copies `bytes` of (target, slot) from `offset` into `dst`. Completes at flush(target).
  void get(void* dst, std::size_t bytes, BlockRef src, std::size_t offset = 0);

  void flush(RankId target);
  void flush_all() override;
  // Memory barrier between the public and private copies of this rank's window.
  void sync() override;

 private:
  MPI_Aint displacement(BlockRef ref, std::size_t offset, std::size_t bytes) const;
  void put_bytes(const void* src, std::size_t bytes, RankId target, MPI_Aint disp);

  MPI_Comm comm_ = MPI_COMM_NULL;
  MPI_Win win_ = MPI_WIN_NULL;
  std::byte* base_ = nullptr;
  std::size_t slot_bytes_ = 0;
  std::int32_t slots_ = 0;
};

}  // namespace infllm::dist
