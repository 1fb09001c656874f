# Test registration helpers. Every test name starts with its source folder ("core.", "dist.",
# ...) so `ctest -R '^core\.'` selects a layer; labels (one per test): unit, mpi, gpu, slow, slurm.
include(GoogleTest)

# infllm_unit_test(<layer> <name> SOURCES ... [LIBS ...] [LABEL unit|gpu|slow] [SKIP_REGEX re])
# A plain GoogleTest executable, one ctest entry per TEST via gtest_discover_tests. Labels
# default to `unit`; GPU tests pass LABEL gpu. A test whose output matches SKIP_REGEX counts as
# skipped (a GoogleTest environment that skips every test prints its reason, not "SKIPPED").
function(infllm_unit_test layer name)
  cmake_parse_arguments(ARG "" "LABEL;SKIP_REGEX" "SOURCES;LIBS" ${ARGN})
  set(target test_${layer}_${name})
  add_executable(${target} ${ARG_SOURCES})
  target_link_libraries(${target} PRIVATE ${ARG_LIBS} GTest::gtest GTest::gtest_main infllm_options)
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_compile_definitions(${target} PRIVATE
    INFLLM_SOURCE_DIR="${PROJECT_SOURCE_DIR}" INFLLM_BINARY_DIR="${PROJECT_BINARY_DIR}")
  set(labels unit)
  if(ARG_LABEL)
    set(labels ${ARG_LABEL})
  endif()
  set(skip)
  if(ARG_SKIP_REGEX)
    set(skip SKIP_REGULAR_EXPRESSION "${ARG_SKIP_REGEX}")
  endif()
  gtest_discover_tests(${target}
    TEST_PREFIX "${layer}."
    DISCOVERY_TIMEOUT 60
    NO_PRETTY_VALUES
    PROPERTIES LABELS "${labels}" TIMEOUT 300 ${skip})
endfunction()

# infllm_mpi_test(<layer> <name> SOURCES ... [LIBS ...] [RANKS 2 4 8] [SLOW_RANKS 32])
# A GoogleTest executable with an MPI main (tests/support/mpi_gtest_main.cpp: MPI_Init, failures
# all-reduced so every rank agrees). Each TEST is registered once per rank count and runs through
# ${MPIEXEC_EXECUTABLE} via tests/support/mpi_launch.sh, which sets what Open MPI needs on a test
# machine (root, oversubscription). Names end in ".np<N>"; SLOW_RANKS get the label `slow`.
function(infllm_mpi_test layer name)
  cmake_parse_arguments(ARG "" "" "SOURCES;LIBS;RANKS;SLOW_RANKS" ${ARGN})
  if(NOT ARG_RANKS)
    set(ARG_RANKS 2 4 8)
  endif()
  set(target test_${layer}_${name})
  add_executable(${target} ${ARG_SOURCES} ${PROJECT_SOURCE_DIR}/tests/support/mpi_gtest_main.cpp)
  target_link_libraries(${target} PRIVATE ${ARG_LIBS} infllm_dist GTest::gtest infllm_options)
  target_include_directories(${target} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  target_compile_definitions(${target} PRIVATE
    INFLLM_SOURCE_DIR="${PROJECT_SOURCE_DIR}" INFLLM_BINARY_DIR="${PROJECT_BINARY_DIR}")
  set_property(TARGET ${target} PROPERTY CROSSCOMPILING_EMULATOR
    ${PROJECT_BINARY_DIR}/tests/mpi_launch.sh)
  foreach(np IN LISTS ARG_RANKS ARG_SLOW_RANKS)
    # NOTE: one label per test: gtest_discover_tests (CMake 3.25) splits a list value inside
    # PROPERTIES into property names. Slow rank counts are `slow` only, so `-L mpi` skips them.
    set(labels mpi)
    if(np IN_LIST ARG_SLOW_RANKS)
      set(labels slow)
    endif()
    gtest_discover_tests(${target}
      TEST_PREFIX "${layer}."
      TEST_SUFFIX ".np${np}"
      DISCOVERY_TIMEOUT 60
      NO_PRETTY_VALUES
    NO_PRETTY_VALUES
      PROPERTIES LABELS "${labels}" ENVIRONMENT "INFLLM_TEST_RANKS=${np}" TIMEOUT 300
                 PROCESSORS 1)
  endforeach()
endfunction()
