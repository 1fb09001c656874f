// hdf5_isolated.hpp: libhdf5 on files from outside, in a child process.
//
// libhdf5 (1.10, Debian 12) has memory-safety bugs on corrupt files that no check before it can
// rule out (its local heaps, object headers and B-trees are parsed as they are met): a crafted
// file makes it abort, overrun a buffer or crash. So every read of an HDF5 file that infllm did
// not just write itself happens in a child process (fork) that sends its result back over a
// pipe. A child that crashes becomes one InputError naming the file (exit 2); the job, its MPI
// ranks and what it has written are untouched.
#pragma once

#include <functional>
#include <string>

namespace infllm::io {

// The problem of the InputError that a crashed child gives begins with this.
inline constexpr char kHdf5ReaderCrashed[] = "libhdf5 crashed reading the file";

// Runs `work` in a child process and returns the bytes it returned. An InputError,
// StopRequested or other exception in the child is thrown here again (InputError with its file,
// where and problem; anything else as InternalError with its message). A child that ends any
// other way (a signal, an abort, a sanitizer's report) is InputError(path, "", kHdf5ReaderCrashed
// + how it ended). While waiting, a read interrupted by a signal asks `stop_requested`: true
// kills the child and throws StopRequested.
std::string run_isolated(const std::string& path, const std::function<std::string()>& work,
                         const std::function<bool()>& stop_requested = {});

// Called first in every child, when set (the HDF5 fuzz target clears libFuzzer's crash
// handler there, so that a crash the child contains is not also reported as the fuzzer's own).
void set_isolated_child_hook(void (*hook)());

// Whether the HDF5 file `path` has a link `name` ("/documents"), asked in a child process.
bool hdf5_has_link(const std::string& path, const std::string& name);

}  // namespace infllm::io
