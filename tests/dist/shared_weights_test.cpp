// shared_weights_test.cpp: one copy of the weights per node, under real mpiexec.
//
// Rank 0 writes a `small` model (untied, GQA, llama3 rope: several tensor kinds); every rank
// then maps it through dist::NodeWeights and compares every value with its own private
// load_model of the same files. Only the node's first rank holds values of its own; the others
// point into the shared window.
#include <gtest/gtest.h>
#include <mpi.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "core/errors.hpp"
#include "dist/shared_weights.hpp"
#include "model/maker/make_model.hpp"

namespace infllm::dist {
namespace {

namespace fs = std::filesystem;

std::string shared_model_dir() {
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  // One folder per job: rank 0's pid, broadcast.
  long id = rank == 0 ? static_cast<long>(getpid()) : 0;
  MPI_Bcast(&id, 1, MPI_LONG, 0, MPI_COMM_WORLD);
  const fs::path dir = fs::temp_directory_path() / ("infllm_shared_weights_" + std::to_string(id));
  if (rank == 0) {
    model::MakeModelOptions o;
    o.preset = "small";
    o.out_dir = dir.string();
    o.seed = 11;
    model::make_model(o);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  return dir.string();
}

TEST(NodeWeights, EveryRankSeesTheSameValuesAsAPrivateLoad) {
  const std::string dir = shared_model_dir();
  {
    NodeWeights shared(MPI_COMM_WORLD, dir);
    model::LoadedModel own = model::load_model(dir);
    model::LoadedModel& mapped = const_cast<model::LoadedModel&>(shared.model());
    const auto a = model::all_tensors(mapped.weights);
    const auto b = model::all_tensors(own.weights);
    ASSERT_EQ(a.size(), b.size());
    std::size_t floats = 0;
    for (std::size_t i = 0; i < a.size(); ++i) {
      ASSERT_EQ(a[i]->shape, b[i]->shape);
      EXPECT_TRUE(a[i]->data.empty()) << "tensor " << i << " kept a private copy";
      ASSERT_NE(a[i]->view, nullptr);
      const auto n = static_cast<std::size_t>(b[i]->numel());
      for (std::size_t k = 0; k < n; ++k) {
        if (a[i]->ptr()[k] != b[i]->data[k]) {
          ADD_FAILURE() << "tensor " << i << " element " << k << " differs";
          break;
        }
      }
      floats += n;
    }
    EXPECT_GE(shared.bytes(), floats * sizeof(float));  // f32 values, then 64-byte alignment
    EXPECT_LT(shared.bytes(), floats * sizeof(float) + 64);
    int size = 0;
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    EXPECT_EQ(shared.node_ranks(), size);  // mpiexec on one machine: one node
    // Every rank's first tensor starts at the same offset of the same window contents.
    double first = a[0]->ptr()[0], min = 0, max = 0;
    MPI_Allreduce(&first, &min, 1, MPI_DOUBLE, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(&first, &max, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    EXPECT_EQ(min, max);
  }
  MPI_Barrier(MPI_COMM_WORLD);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank == 0) fs::remove_all(dir);
}

TEST(NodeWeights, AMissingModelIsAnInputErrorOnEveryRank) {
  bool thrown = false;
  try {
    NodeWeights shared(MPI_COMM_WORLD, "/nonexistent/infllm/model");
  } catch (const InputError& e) {
    thrown = std::string(e.what()).find("/nonexistent/infllm/model") != std::string::npos;
  }
  EXPECT_TRUE(thrown);
}

}  // namespace
}  // namespace infllm::dist
