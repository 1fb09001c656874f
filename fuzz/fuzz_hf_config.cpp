// fuzz_hf_config.cpp: a Hugging Face config.json (model/formats/model_config.hpp) on arbitrary
// bytes.
#include "fuzz/fuzz_input.hpp"
#include "model/formats/model_config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = infllm::fuzz::write_input("config.json", data, size);
  infllm::fuzz::refusals_allowed([&] { (void)infllm::model::load_hf_config(path); });
  return 0;
}
