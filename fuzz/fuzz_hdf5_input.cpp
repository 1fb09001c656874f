// fuzz_hdf5_input.cpp: the HDF5 input reader (io/hdf5_documents.hpp) on files written from
// arbitrary bytes.
#include "fuzz/fuzz_input.hpp"
#include "io/documents.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = infllm::fuzz::write_input("in.h5", data, size);
  infllm::fuzz::refusals_allowed([&] {
    infllm::io::ReadOptions options;
    options.vocab_size = 512;
    (void)infllm::io::read_documents(path, options);
  });
  return 0;
}
