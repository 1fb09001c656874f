// fuzz_dequant.cpp: every ggml type's dequantizer (model/formats/dequant.hpp) on arbitrary
// blocks: the first byte picks the type, the rest are whole blocks of it. A dequantizer has no
// way to refuse: it must never read or write out of bounds, whatever the bytes.
#include <vector>

#include "fuzz/fuzz_input.hpp"
#include "model/formats/dequant.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const auto info = infllm::model::ggml_type_info(data[0] % 48);
  if (!info) return 0;
  const auto block_bytes = static_cast<std::size_t>(info->block_bytes);
  const std::size_t blocks = (size - 1) / block_bytes;
  if (blocks == 0) return 0;
  const auto* src = reinterpret_cast<const std::byte*>(data + 1);
  std::vector<float> dst(blocks * static_cast<std::size_t>(info->block_elems));
  infllm::fuzz::refusals_allowed(
      [&] { infllm::model::dequantize(info->type, std::span(src, blocks * block_bytes), dst); });
  return 0;
}
