// mpi_session_test.cpp: the choice of Open MPI's one-sided component, and which ranks share a
// rank's cores (pure, no MPI_Init).
#include <gtest/gtest.h>

#include <vector>

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

cpu_set_t cpus(int first, int count) {
  cpu_set_t s;
  CPU_ZERO(&s);
  for (int c = first; c < first + count; ++c) CPU_SET(c, &s);
  return s;
}

TEST(CoreSharers, UnboundRanksShareEverything) {
  const std::vector<cpu_set_t> all(4, cpus(0, 8));
  EXPECT_EQ(ranks_sharing_cores(all[0], all), 4);
}

TEST(CoreSharers, RanksBoundToDomainsShareOnlyTheirDomain) {
  // Two NUMA domains of 4 CPUs, two ranks bound to each, and one rank bound to a single CPU of
  // the second domain.
  const std::vector<cpu_set_t> all{cpus(0, 4), cpus(0, 4), cpus(4, 4), cpus(4, 4), cpus(6, 1)};
  EXPECT_EQ(ranks_sharing_cores(all[0], all), 2);
  EXPECT_EQ(ranks_sharing_cores(all[2], all), 3);
  EXPECT_EQ(ranks_sharing_cores(all[4], all), 3);
}

}  // namespace
}  // namespace infllm::dist
