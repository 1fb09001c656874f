// verifiable.hpp: data whose every byte is computable from where it should be.
//
// Borrowed from nccl-tests' habit: a block moved by RMA (or copied to a GPU) is filled with bytes
// computed from (stream, block, offset), so any rank can check a block it received without a
// second copy to compare against. Usable from host and device code.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/host_device.hpp"

namespace infllm {

// SplitMix64 finalizer: a cheap bijective mix, good enough to make neighbouring offsets differ.
INFLLM_HD inline std::uint64_t mix64(std::uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

// The byte at `offset` of block `block` written by `stream` (for instance: the writing rank).
INFLLM_HD inline std::uint8_t verifiable_byte(std::uint64_t stream, std::uint64_t block,
                                              std::uint64_t offset) {
  const std::uint64_t word = mix64(mix64(stream * 0x100000001b3ULL + block) + (offset >> 3));
  return static_cast<std::uint8_t>(word >> (8 * (offset & 7)));
}

// Fills `bytes` bytes at `dst` with the pattern of (stream, block).
inline void fill_verifiable(void* dst, std::size_t bytes, std::uint64_t stream,
                            std::uint64_t block) {
  auto* out = static_cast<std::uint8_t*>(dst);
  for (std::size_t i = 0; i < bytes; ++i) out[i] = verifiable_byte(stream, block, i);
}

// Number of bytes of `src` that differ from the pattern of (stream, block).
inline std::size_t count_unverifiable(const void* src, std::size_t bytes, std::uint64_t stream,
                                      std::uint64_t block) {
  const auto* in = static_cast<const std::uint8_t*>(src);
  std::size_t bad = 0;
  for (std::size_t i = 0; i < bytes; ++i) bad += in[i] != verifiable_byte(stream, block, i);
  return bad;
}

}  // namespace infllm
