// fuzz_tokenizer_json.cpp: tokenizer.json (model/tokenizer) on arbitrary bytes; a tokenizer that
// loads encodes and decodes a fixed text.
#include "fuzz/fuzz_input.hpp"
#include "model/tokenizer/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = infllm::fuzz::write_input("tokenizer.json", data, size);
  infllm::fuzz::refusals_allowed([&] {
    const auto tok = infllm::model::Tokenizer::from_json_file(path);
    const auto ids = tok.encode("It is a truth universally acknowledged, <|im_end|> ü 日本");
    (void)tok.decode(ids);
  });
  return 0;
}
