// shared_weights.cpp: see shared_weights.hpp.
#include "dist/shared_weights.hpp"

#include <cstring>
#include <exception>

#include "core/errors.hpp"
#include "dist/mpi_check.hpp"

namespace infllm::dist {

NodeWeights::NodeWeights(MPI_Comm comm, const std::string& path) {
  int rank = 0;
  INFLLM_MPI_CHECK(MPI_Comm_rank(comm, &rank));
  INFLLM_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node_));
  int node_rank = 0;
  INFLLM_MPI_CHECK(MPI_Comm_rank(node_, &node_rank));
  INFLLM_MPI_CHECK(MPI_Comm_size(node_, &node_size_));
  // Every rank checks the files (cheap without values); the node's first rank loads values.
  std::exception_ptr error;
  try {
    model_ = model::load_model(path, model::LoadOptions{.values = node_rank == 0});
  } catch (...) {
    error = std::current_exception();
  }
  int failed = error ? 1 : 0, any = 0;
  INFLLM_MPI_CHECK(MPI_Allreduce(&failed, &any, 1, MPI_INT, MPI_MAX, node_));
  if (any != 0) {
    MPI_Comm_free(&node_);
    if (error) std::rethrow_exception(error);
    throw InputError(path, "", "could not be loaded by another rank of this node");
  }
  // Layout: every tensor's f32 values back to back, then every quantized copy (64-byte aligned).
  const auto tensors = model::all_tensors(model_.weights);
  std::size_t floats = 0, quant = 0;
  for (const model::Tensor* t : tensors) floats += static_cast<std::size_t>(t->numel());
  const std::size_t quant_base = (floats * sizeof(float) + 63) / 64 * 64;
  for (const model::Tensor* t : tensors) quant += (t->quant_bytes + 63) / 64 * 64;
  bytes_ = quant_base + quant;
  std::byte* base = nullptr;
  INFLLM_MPI_CHECK(MPI_Win_allocate_shared(static_cast<MPI_Aint>(node_rank == 0 ? bytes_ : 0), 1,
                                           MPI_INFO_NULL, node_, &base, &win_));
  MPI_Aint size = 0;
  int disp = 0;
  std::byte* shared = nullptr;
  INFLLM_MPI_CHECK(MPI_Win_shared_query(win_, 0, &size, &disp, &shared));
  INFLLM_MPI_CHECK(MPI_Win_fence(0, win_));
  std::size_t offset = 0, qoffset = quant_base;
  for (model::Tensor* t : tensors) {
    const auto n = static_cast<std::size_t>(t->numel());
    auto* values = reinterpret_cast<float*>(shared + offset);
    if (node_rank == 0) {
      std::memcpy(values, t->data.data(), n * sizeof(float));
      std::vector<float>().swap(t->data);
    }
    t->view = values;
    offset += n * sizeof(float);
    if (t->quant_bytes > 0) {
      if (node_rank == 0) {
        std::memcpy(shared + qoffset, t->quant.data(), t->quant_bytes);
        std::vector<std::byte>().swap(t->quant);
      }
      t->quant_view = shared + qoffset;
      qoffset += (t->quant_bytes + 63) / 64 * 64;
    }
  }
  INFLLM_MPI_CHECK(MPI_Win_fence(0, win_));
}

NodeWeights::~NodeWeights() {
  if (std::uncaught_exceptions() > 0) return;  // collective frees: see ~RmaPool
  if (win_ != MPI_WIN_NULL) MPI_Win_free(&win_);
  if (node_ != MPI_COMM_NULL) MPI_Comm_free(&node_);
}

}  // namespace infllm::dist
