// fuzz_tokenizer_text.cpp: a real byte-level BPE tokenizer (tests/data/tokenizer/
// trained_tokenizer.json) on arbitrary text: encoding never fails, and decoding the ids gives
// the bytes back, whatever they are (invalid UTF-8 included).
#include <cstdio>
#include <cstdlib>
#include <string>

#include "fuzz/fuzz_input.hpp"
#include "model/tokenizer/tokenizer.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static const infllm::model::Tokenizer tok = infllm::model::Tokenizer::from_json_file(
      std::string(INFLLM_SOURCE_DIR) + "/tests/data/tokenizer/trained_tokenizer.json");
  const std::string text(reinterpret_cast<const char*>(data), size);
  infllm::model::EncodeOptions plain;
  plain.add_special = false;
  plain.parse_special = false;
  const auto ids = tok.encode(text, plain);
  if (tok.decode(ids) != text) {
    std::fprintf(stderr, "fuzz_tokenizer_text: decode(encode(text)) differs from the text\n");
    std::abort();
  }
  return 0;
}
