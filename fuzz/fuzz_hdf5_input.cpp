// fuzz_hdf5_input.cpp: the HDF5 input reader (io/hdf5_documents.hpp) on files written from
// arbitrary bytes.
//
// Each input is first read as infllm reads it: in a child process (io/hdf5_isolated.hpp). When
// libhdf5 crashed there, the refusal naming the file is the product's answer, and this target
// says so on stderr (fuzz/run.sh counts these and checks, from the child's sanitizer report,
// that the crash was inside libhdf5). Every other input is read again in this process, where
// coverage and the sanitizers see infllm's own code.
#include <hdf5.h>

#include <cstdio>
#include <cstdlib>

#include "fuzz/fuzz_input.hpp"
#include "io/documents.hpp"
#include "io/hdf5_documents.hpp"
#include "io/hdf5_isolated.hpp"

// The sanitizers' interface (compiler-rt): the child's sanitizer report ends it (exit 1) without
// libFuzzer's death callback, which would save the input as this process's crash.
extern "C" void __sanitizer_set_death_callback(void (*callback)());

extern "C" int LLVMFuzzerInitialize(int* /*argc*/, char*** /*argv*/) {
  infllm::io::set_isolated_child_hook([] { __sanitizer_set_death_callback(nullptr); });
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string path = infllm::fuzz::write_input("in.h5", data, size);
  infllm::io::ReadOptions options;
  options.vocab_size = 512;
  try {
    (void)infllm::io::read_documents(path, options);
  } catch (const infllm::InputError& e) {
    if (e.problem().rfind(infllm::io::kHdf5ReaderCrashed, 0) == 0) {
      std::fprintf(stderr, "fuzz_hdf5_input: contained: %s\n", e.what());
      return 0;
    }
  } catch (const infllm::UsageError&) {
  }
  infllm::fuzz::refusals_allowed(
      [&] { (void)infllm::io::read_hdf5_documents_in_process(path, options); });
  // Whatever the input, the reader closed every HDF5 object it opened (one left open would
  // keep the file open in a long-running process).
  const ssize_t open = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
  if (open != 0) {
    std::fprintf(stderr, "fuzz_hdf5_input: %zd HDF5 objects left open\n", open);
    std::abort();
  }
  // Each input is read by a fresh libhdf5, as one infllm process reads one input: libhdf5 keeps
  // caches and free lists across files (and finds an earlier file again by its inode), so
  // without this a finding could depend on the inputs before it.
  H5close();
  return 0;
}
