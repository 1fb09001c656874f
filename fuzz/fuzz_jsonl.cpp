// fuzz_jsonl.cpp: the JSONL input reader (io/documents.hpp) on arbitrary bytes.
#include "fuzz/fuzz_input.hpp"
#include "io/documents.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = infllm::fuzz::write_input("in.jsonl", data, size);
  infllm::fuzz::refusals_allowed([&] {
    infllm::io::ReadOptions options;
    options.vocab_size = 512;
    options.max_record_bytes = 1 << 16;
    (void)infllm::io::read_documents(path, options);
  });
  return 0;
}
