# Warnings and sanitizers for every infllm target, through one interface target.
add_library(infllm_options INTERFACE)
target_compile_options(infllm_options INTERFACE
  $<$<COMPILE_LANGUAGE:CXX>:-Wall -Wextra -Wpedantic -Wno-unused-parameter
  -Wno-missing-field-initializers>)
target_include_directories(infllm_options INTERFACE ${PROJECT_SOURCE_DIR}/src)
target_compile_definitions(infllm_options INTERFACE
  INFLLM_VERSION="${PROJECT_VERSION}" $<$<BOOL:${INFLLM_CUDA}>:INFLLM_HAVE_CUDA=1>
  # mpi.h from C++ would pull in the removed MPI C++ bindings.
  OMPI_SKIP_MPICXX=1 MPICH_SKIP_MPICXX=1)
if(INFLLM_SANITIZE)
  target_compile_options(infllm_options INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined>)
  target_link_options(infllm_options INTERFACE -fsanitize=address,undefined)
endif()
if(INFLLM_FUZZ)
  if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
    message(FATAL_ERROR "INFLLM_FUZZ needs clang (libFuzzer): use the `fuzz` preset")
  endif()
  # The libraries carry the fuzzer's coverage instrumentation; the targets link libFuzzer.
  target_compile_options(infllm_options INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined>)
  target_link_options(infllm_options INTERFACE -fsanitize=address,undefined)
endif()
if(INFLLM_TSAN)
  if(INFLLM_SANITIZE)
    message(FATAL_ERROR "INFLLM_TSAN and INFLLM_SANITIZE cannot be combined")
  endif()
  target_compile_options(infllm_options INTERFACE
    $<$<COMPILE_LANGUAGE:CXX>:-fsanitize=thread -fno-omit-frame-pointer>)
  target_link_options(infllm_options INTERFACE -fsanitize=thread)
endif()
