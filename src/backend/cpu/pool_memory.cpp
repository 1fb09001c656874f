// pool_memory.cpp: see pool_memory.hpp.
#include "backend/cpu/pool_memory.hpp"

#if defined(__linux__)
#include <sys/mman.h>
#endif

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

namespace infllm::cpu {

namespace {
constexpr std::size_t kHugePage = std::size_t{1} << 21;
}  // namespace

bool advise_huge_pages(void* p, std::size_t bytes) {
#if defined(__linux__) && defined(MADV_HUGEPAGE)
  const auto begin = reinterpret_cast<std::uintptr_t>(p);
  const std::uintptr_t first = (begin + kHugePage - 1) / kHugePage * kHugePage;
  const std::uintptr_t last = (begin + bytes) / kHugePage * kHugePage;
  if (last <= first) return false;
  return ::madvise(reinterpret_cast<void*>(first), last - first, MADV_HUGEPAGE) == 0;
#else
  (void)p;
  (void)bytes;
  return false;
#endif
}

void detail::PoolFree::operator()(std::byte* p) const {
  if (aligned) {
    std::free(p);
  } else {
    delete[] p;
  }
}

PoolMemory::PoolMemory(std::size_t bytes, Pages pages) : bytes_(bytes) {
  if (pages == Pages::kHuge && bytes >= kHugePage) {
    void* p = std::aligned_alloc(kHugePage, (bytes + kHugePage - 1) / kHugePage * kHugePage);
    if (p == nullptr) throw std::bad_alloc();
    data_ = std::unique_ptr<std::byte[], detail::PoolFree>(static_cast<std::byte*>(p),
                                                           detail::PoolFree{true});
    advised_ = advise_huge_pages(p, bytes);  // before the first touch: advice only
    std::memset(p, 0, bytes);
    return;
  }
  data_ = std::unique_ptr<std::byte[], detail::PoolFree>(new std::byte[bytes](),
                                                         detail::PoolFree{false});
}

}  // namespace infllm::cpu
