// shared_weights.hpp: one copy of the model's weights per node.
//
// The ranks of a node (MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)) share one
// MPI_Win_allocate_shared window holding every weight tensor's f32 values back to back
// (model::all_tensors order), then the quantized copies some GGUF matrices keep. The node's
// first rank loads and dequantizes the values into it; the others load only the config,
// tokenizer and tensor shapes (model::LoadOptions::values = false), and every rank's tensors
// point into the window (Tensor::view). 32 ranks of SmolLM2-135M on one node hold 0.6 GiB of
// weights instead of 19 GiB.
#pragma once

#include <mpi.h>

#include <cstddef>
#include <string>

#include "model/formats/weights.hpp"

namespace infllm::dist {

class NodeWeights {
 public:
  // Collective over `comm`. Throws InputError (on every rank) when the model cannot be loaded.
  NodeWeights(MPI_Comm comm, const std::string& path);
  ~NodeWeights();
  NodeWeights(const NodeWeights&) = delete;
  NodeWeights& operator=(const NodeWeights&) = delete;

  const model::LoadedModel& model() const { return model_; }
  std::size_t bytes() const { return bytes_; }  // the node's shared copy
  int node_ranks() const { return node_size_; }

 private:
  model::LoadedModel model_;
  MPI_Comm node_ = MPI_COMM_NULL;
  MPI_Win win_ = MPI_WIN_NULL;
  std::size_t bytes_ = 0;
  int node_size_ = 1;
};

}  // namespace infllm::dist
