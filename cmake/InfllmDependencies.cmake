# Every dependency comes from a Debian package and is found the standard CMake way
# (scripts/setup.sh installs them). Nothing is downloaded at configure time.
find_package(Threads REQUIRED)

find_package(MPI REQUIRED COMPONENTS C)

# Parallel HDF5 (libhdf5-openmpi-dev): no HDF5Config.cmake, FindHDF5 goes through h5pcc.
set(HDF5_PREFER_PARALLEL TRUE)
find_package(HDF5 REQUIRED COMPONENTS C)
if(NOT HDF5_IS_PARALLEL)
  message(WARNING "infllm: the HDF5 found is not the parallel build (install libhdf5-openmpi-dev)")
endif()

find_package(Boost 1.74 REQUIRED COMPONENTS program_options)

set(BLA_VENDOR OpenBLAS)
find_package(BLAS REQUIRED)
# FindBLAS gives libraries only; OpenBLAS's cblas.h (with openblas_set_num_threads) sits in a
# multiarch folder on Debian.
find_path(INFLLM_CBLAS_INCLUDE_DIR cblas.h
  PATH_SUFFIXES openblas-pthread openblas x86_64-linux-gnu/openblas-pthread
  aarch64-linux-gnu/openblas-pthread REQUIRED)
add_library(infllm_openblas INTERFACE)
target_link_libraries(infllm_openblas INTERFACE ${BLAS_LIBRARIES})
target_include_directories(infllm_openblas SYSTEM INTERFACE ${INFLLM_CBLAS_INCLUDE_DIR})

find_package(nlohmann_json 3.10 REQUIRED)

if(INFLLM_BUILD_TESTS)
  find_package(GTest REQUIRED)
  find_package(benchmark QUIET)
endif()

if(INFLLM_CUDA_ON_CPU)
  # CUDA's headers only (cuda_runtime_api.h, cuda_fp16.h, cuda_bf16.h): the toolkit's, else the
  # ones scripts/fetch_cuda_headers.sh put into the cache.
  set(infllm_cache "$ENV{INFLLM_CACHE}")
  if(NOT infllm_cache)
    if(DEFINED ENV{XDG_CACHE_HOME})
      set(infllm_cache "$ENV{XDG_CACHE_HOME}/infllm")
    else()
      set(infllm_cache "$ENV{HOME}/.cache/infllm")
    endif()
  endif()
  find_path(INFLLM_CUDA_HEADERS cuda_fp16.h
    HINTS /usr/local/cuda/include ${infllm_cache}/cuda-headers/include NO_DEFAULT_PATH)
  if(NOT INFLLM_CUDA_HEADERS)
    message(FATAL_ERROR "infllm: CUDA's headers are missing (the CUDA-on-CPU kernel tests need "
      "them): run scripts/fetch_cuda_headers.sh, or configure with -DINFLLM_CUDA_ON_CPU=OFF")
  endif()
endif()

if(INFLLM_CUDA)
  if(NOT DEFINED CMAKE_CUDA_ARCHITECTURES)
    set(CMAKE_CUDA_ARCHITECTURES 80 90)
  endif()
  # nvcc is often not on PATH (Debian's CUDA toolkit lives in /usr/local/cuda).
  if(NOT CMAKE_CUDA_COMPILER AND NOT DEFINED ENV{CUDACXX} AND EXISTS /usr/local/cuda/bin/nvcc)
    set(CMAKE_CUDA_COMPILER /usr/local/cuda/bin/nvcc)
  endif()
  enable_language(CUDA)
  # NOTE: CMake 3.25 knows no C++20 dialect flag for nvcc 13; kernels and the core headers they
  # include are C++17.
  set(CMAKE_CUDA_STANDARD 17)
  set(CMAKE_CUDA_STANDARD_REQUIRED ON)
  find_package(CUDAToolkit REQUIRED)
  find_library(INFLLM_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR} REQUIRED)
  find_path(INFLLM_NCCL_INCLUDE_DIR nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS} REQUIRED)
  add_library(infllm_nccl INTERFACE)
  target_link_libraries(infllm_nccl INTERFACE ${INFLLM_NCCL_LIBRARY})
  target_include_directories(infllm_nccl SYSTEM INTERFACE ${INFLLM_NCCL_INCLUDE_DIR})
endif()
