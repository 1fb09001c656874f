// cpu_threads.hpp: how many CPU threads a rank uses, and telling OpenBLAS.
//
// Debian's OpenBLAS is the pthread build and starts one thread per core in every process; with
// 8-32 ranks on a small node that thrashes. Each rank therefore sets its own thread count once
// (default: the node's cores divided by the ranks on it, at least 1).
#pragma once

namespace infllm::cpu {

// Cores available to this process (sched affinity, else hardware_concurrency, at least 1).
int available_cores();

// The default threads of one rank when `ranks_on_node` ranks share the node.
int default_threads_per_rank(int ranks_on_node);

// Sets OpenBLAS's thread count and remembers it for infllm's own kernels. `ranks_on_node`
// processes like this one share the node: when they run more threads than it has cores, the
// kernels' idle threads sleep at once instead of polling (threads_may_poll).
void set_threads(int threads, int ranks_on_node = 1);

// False when the last set_threads oversubscribed the cores (threads * ranks_on_node above
// available_cores()); initially true.
bool threads_may_poll();

// The count last given to set_threads (initially available_cores()).
int threads();

}  // namespace infllm::cpu
