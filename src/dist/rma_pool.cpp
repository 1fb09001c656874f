// rma_pool.cpp: see rma_pool.hpp.
#include "dist/rma_pool.hpp"

#include <algorithm>
#include <climits>
#include <exception>
#include <string>

#include "core/errors.hpp"
#include "dist/mpi_check.hpp"

namespace infllm::dist {

namespace {
// MPI counts are int: move larger ranges in pieces of at most 1 GiB.
constexpr std::size_t kMaxPiece = std::size_t{1} << 30;
}  // namespace

RmaPool::RmaPool(MPI_Comm comm, std::size_t slot_bytes, std::int32_t slots,
                 const std::function<void(std::byte*, std::size_t)>& prepare)
    : comm_(comm), slot_bytes_(slot_bytes), slots_(slots) {
  if (slot_bytes == 0 || slots < 0)
    throw InternalError("RmaPool: empty slot size or negative slots");
  MPI_Info info = MPI_INFO_NULL;
  INFLLM_MPI_CHECK(MPI_Info_create(&info));
  // Slots are never accumulated into: tell the library so it can skip atomicity bookkeeping.
  INFLLM_MPI_CHECK(MPI_Info_set(info, "accumulate_ordering", "none"));
  INFLLM_MPI_CHECK(MPI_Info_set(info, "same_disp_unit", "true"));
  const auto bytes = static_cast<MPI_Aint>(slot_bytes * static_cast<std::size_t>(slots));
  INFLLM_MPI_CHECK(MPI_Win_allocate(bytes, 1, info, comm_, &base_, &win_));
  INFLLM_MPI_CHECK(MPI_Info_free(&info));
  // The backend's advice before the first touch (the CPU's: 2 MiB pages for the attention's
  // shuffled block reads, where the window's memory allows: private memory, or shared memory
  // with the kernel's shmem THP setting not `never`; osc/sm windows are shared memory).
  if (prepare) prepare(base_, static_cast<std::size_t>(bytes));
  INFLLM_MPI_CHECK(MPI_Win_set_errhandler(win_, MPI_ERRORS_RETURN));
  INFLLM_MPI_CHECK(MPI_Win_lock_all(MPI_MODE_NOCHECK, win_));
}

RmaPool::~RmaPool() {
  // NOTE: MPI_Win_free is collective. While an exception unwinds (one rank failing alone), the
  // other ranks are in some other exchange and would never join it: leave the window to the
  // process's end, so the exception reaches the handler that aborts the job (exit 3).
  if (win_ == MPI_WIN_NULL || std::uncaught_exceptions() > 0) return;
  MPI_Win_unlock_all(win_);
  MPI_Win_free(&win_);
}

std::span<std::byte> RmaPool::local(SlotId slot) {
  if (slot.value() < 0 || slot.value() >= slots_) {
    throw InternalError("RmaPool::local: slot " + std::to_string(slot.value()) + " out of range");
  }
  return {base_ + static_cast<std::size_t>(slot.value()) * slot_bytes_, slot_bytes_};
}

MPI_Aint RmaPool::displacement(BlockRef ref, std::size_t offset, std::size_t bytes) const {
  if (ref.slot.value() < 0 || offset + bytes > slot_bytes_) {
    throw InternalError("RmaPool: access outside slot " + std::to_string(ref.slot.value()));
  }
  return static_cast<MPI_Aint>(static_cast<std::size_t>(ref.slot.value()) * slot_bytes_ + offset);
}

void RmaPool::put_bytes(const void* src, std::size_t bytes, RankId target, MPI_Aint disp) {
  const auto* from = static_cast<const std::byte*>(src);
  for (std::size_t done = 0; done < bytes; done += kMaxPiece) {
    const int n = static_cast<int>(std::min(kMaxPiece, bytes - done));
    INFLLM_MPI_CHECK(MPI_Put(from + done, n, MPI_BYTE, target.value(),
                             disp + static_cast<MPI_Aint>(done), n, MPI_BYTE, win_));
  }
}

void RmaPool::put(const void* src, std::size_t bytes, BlockRef dst, std::size_t offset) {
  put_bytes(src, bytes, dst.rank, displacement(dst, offset, bytes));
}

void RmaPool::put_range(const void* src, std::size_t bytes, RankId target, SlotId first) {
  const std::size_t start = static_cast<std::size_t>(first.value()) * slot_bytes_;
  if (first.value() < 0 || start + bytes > slot_bytes_ * static_cast<std::size_t>(slots_)) {
    throw InternalError("RmaPool::put_range: range beyond the pool");
  }
  put_bytes(src, bytes, target, static_cast<MPI_Aint>(start));
}

void RmaPool::get(void* dst, std::size_t bytes, BlockRef src, std::size_t offset) {
  const MPI_Aint disp = displacement(src, offset, bytes);
  auto* to = static_cast<std::byte*>(dst);
  for (std::size_t done = 0; done < bytes; done += kMaxPiece) {
    const int n = static_cast<int>(std::min(kMaxPiece, bytes - done));
    INFLLM_MPI_CHECK(MPI_Get(to + done, n, MPI_BYTE, src.rank.value(),
                             disp + static_cast<MPI_Aint>(done), n, MPI_BYTE, win_));
  }
}

void RmaPool::flush(RankId target) { INFLLM_MPI_CHECK(MPI_Win_flush(target.value(), win_)); }

void RmaPool::flush_all() { INFLLM_MPI_CHECK(MPI_Win_flush_all(win_)); }

void RmaPool::sync() { INFLLM_MPI_CHECK(MPI_Win_sync(win_)); }

}  // namespace infllm::dist
