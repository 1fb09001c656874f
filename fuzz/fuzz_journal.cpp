// fuzz_journal.cpp: the resume journal (a JSONL output or an HDF5 output's journal, read back by
// io/results.hpp's read_result_log) on arbitrary bytes.
#include "fuzz/fuzz_input.hpp"
#include "io/results.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = infllm::fuzz::write_input("out.jsonl", data, size);
  infllm::fuzz::refusals_allowed([&] { (void)infllm::io::read_result_log(path, false); });
  return 0;
}
