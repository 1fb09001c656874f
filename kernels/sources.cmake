# The CUDA kernel sources: nvcc builds them into infllm_kernels (kernels/CMakeLists.txt), g++
# into infllm_kernels_on_cpu over the CUDA-on-CPU layer (kernels/emulation/CMakeLists.txt).
set(INFLLM_KERNEL_SOURCES
  attention.cu
  elementwise.cu
  merge_states.cu
  verifiable_fill.cu
)
