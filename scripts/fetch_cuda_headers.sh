#!/usr/bin/env bash
# fetch_cuda_headers.sh: makes sure CUDA's headers are on this machine, for the CUDA-on-CPU layer
# (kernels/emulation) that compiles and tests the CUDA kernels with g++ where no CUDA toolkit is
# installed. Prints the include folder.
#
# With a CUDA toolkit in /usr/local/cuda its headers are used and nothing is fetched. Otherwise
# the headers come from NVIDIA's PyPI wheel nvidia-cuda-runtime 13.0.96 (about 2 MB, checked
# against its SHA-256; pip downloads it, nothing is installed) into the cache, where CMake looks:
#
#   scripts/fetch_cuda_headers.sh      # prints e.g. ~/.cache/infllm/cuda-headers/include
#
# Exit 1 (with a message) when neither is possible.
set -euo pipefail
if [[ -f /usr/local/cuda/include/cuda_fp16.h ]]; then
  echo /usr/local/cuda/include
  exit 0
fi
cache=${INFLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/infllm}
dest=$cache/cuda-headers
if [[ -f $dest/include/cuda_fp16.h ]]; then
  echo "$dest/include"
  exit 0
fi
version=13.0.96
sha256=7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/download.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetch_cuda_headers: downloading nvidia-cuda-runtime==$version from PyPI (about 2 MB)" >&2
if ! python3 -m pip download --quiet --no-deps --disable-pip-version-check \
    --only-binary=:all: --platform manylinux_2_17_x86_64 "nvidia-cuda-runtime==$version" \
    -d "$tmp" >&2; then
  echo "fetch_cuda_headers: cannot download nvidia-cuda-runtime $version from PyPI" >&2
  exit 1
fi
wheel=$(ls "$tmp"/nvidia_cuda_runtime-"$version"-*.whl)
if ! echo "$sha256  $wheel" | sha256sum --check --quiet -; then
  echo "fetch_cuda_headers: $wheel does not have the expected SHA-256" >&2
  exit 1
fi
unzip -q -o "$wheel" 'nvidia/cu13/include/*' -d "$tmp/x"
mkdir -p "$tmp/headers"
mv "$tmp/x/nvidia/cu13/include" "$tmp/headers/include"
# Move into place last, so an interrupted download never leaves partial headers behind.
rm -rf "$dest"
mv "$tmp/headers" "$dest"
echo "$dest/include"
