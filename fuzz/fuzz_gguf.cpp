// fuzz_gguf.cpp: the GGUF reader (model/formats/gguf.hpp: header, metadata, tensor table) on
// arbitrary bytes: every small tensor is dequantized through its type's dequantizer.
#include "fuzz/fuzz_input.hpp"
#include "model/formats/gguf.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = infllm::fuzz::write_input("model.gguf", data, size);
  infllm::fuzz::refusals_allowed([&] {
    const infllm::model::GgufFile file(path);
    for (const auto& t : file.tensors()) {
      if (t.numel() <= (1 << 16)) (void)file.read_f32(t);
    }
  });
  return 0;
}
