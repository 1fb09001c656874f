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
  const auto tensors = model::all_tensors(model_.weights);
  std::size_t floats = 0;
  for (const model::Tensor* t : tensors) floats += static_cast<std::size_t>(t->numel());
  bytes_ = floats * sizeof(float);
  float* base = nullptr;
  INFLLM_MPI_CHECK(MPI_Win_allocate_shared(static_cast<MPI_Aint>(node_rank == 0 ? bytes_ : 0),
                                           sizeof(float), MPI_INFO_NULL, node_, &base, &win_));
  MPI_Aint size = 0;
  int disp = 0;
  float* shared = nullptr;
  INFLLM_MPI_CHECK(MPI_Win_shared_query(win_, 0, &size, &disp, &shared));
  INFLLM_MPI_CHECK(MPI_Win_fence(0, win_));
  std::size_t offset = 0;
  for (model::Tensor* t : tensors) {
    const auto n = static_cast<std::size_t>(t->numel());
    if (node_rank == 0) {
      std::memcpy(shared + offset, t->data.data(), n * sizeof(float));
      std::vector<float>().swap(t->data);
    }
    t->view = shared + offset;
    offset += n;
  }
  INFLLM_MPI_CHECK(MPI_Win_fence(0, win_));
}

NodeWeights::~NodeWeights() {
  if (win_ != MPI_WIN_NULL) MPI_Win_free(&win_);
  if (node_ != MPI_COMM_NULL) MPI_Comm_free(&node_);
}

}  // namespace infllm::dist
