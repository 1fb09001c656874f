// pool_memory.hpp: the bytes of a KV pool on the CPU, on transparent 2 MiB pages where the OS
// allows them.
//
// Decode micro-attention reads each rBlock's K and V runs in shuffled order; on 4 KiB pages
// every run starts on a page of its own and pays a TLB miss. Backed by 2 MiB pages the same
// reads run about 7-10% faster (docs/benchmarks.md, attention). The memory is 2 MiB aligned,
// advised with madvise(MADV_HUGEPAGE) before its first touch (Linux; elsewhere, or when the
// kernel's THP setting is `never`, it stays on normal pages), and zeroed.
#pragma once

#include <cstddef>
#include <memory>

namespace infllm::cpu {

namespace detail {
// Frees a PoolMemory's bytes the way they were allocated.
struct PoolFree {
  bool aligned = false;
  void operator()(std::byte* p) const;
};
}  // namespace detail

class PoolMemory {
 public:
  enum class Pages { kHuge, kDefault };  // kDefault: plain operator new, 4 KiB pages

  explicit PoolMemory(std::size_t bytes, Pages pages = Pages::kHuge);
  std::byte* data() { return data_.get(); }
  const std::byte* data() const { return data_.get(); }
  std::size_t size() const { return bytes_; }
  // True when the kernel accepted the advice (it may still back some of it by 4 KiB pages).
  bool huge_advised() const { return advised_; }

 private:
  std::unique_ptr<std::byte[], detail::PoolFree> data_;
  std::size_t bytes_ = 0;
  bool advised_ = false;
};

// Advises [p, p + bytes) onto transparent huge pages (the 2 MiB-aligned part of it): for memory
// allocated elsewhere, such as an MPI window. Returns false where that is not possible.
bool advise_huge_pages(void* p, std::size_t bytes);

}  // namespace infllm::cpu
