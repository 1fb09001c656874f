// fuzz_safetensors.cpp: the safetensors header and data (model/formats/safetensors.hpp) on
// arbitrary bytes: every tensor the header declares is read back as f32 when it is small.
#include "fuzz/fuzz_input.hpp"
#include "model/formats/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = infllm::fuzz::write_input("model.safetensors", data, size);
  infllm::fuzz::refusals_allowed([&] {
    const infllm::model::SafetensorsFile file(path);
    for (const auto& t : file.tensors()) {
      if (t.numel() <= (1 << 16)) (void)file.read_f32(t);
    }
  });
  return 0;
}
