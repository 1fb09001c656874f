// mpi_session_test.cpp: the choice of Open MPI's one-sided component (pure, no MPI_Init).
#include <gtest/gtest.h>

#include "dist/mpi_session.hpp"

namespace infllm::dist {
namespace {

TEST(OscChoice, OpenMpi4AvoidsRdma) {
  EXPECT_EQ(osc_components_for("Open MPI v4.1.4, package: Debian OpenMPI, ident: 4.1.4"),
            "sm,pt2pt");
}

TEST(OscChoice, OpenMpi5KeepsItsDefault) {
  EXPECT_EQ(osc_components_for("Open MPI v5.0.3, package: Open MPI"), "");
}

TEST(OscChoice, OtherLibrariesUntouched) {
  EXPECT_EQ(osc_components_for("MPICH Version: 4.0.2"), "");
}

}  // namespace
}  // namespace infllm::dist
