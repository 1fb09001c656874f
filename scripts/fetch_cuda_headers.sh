#!/usr/bin/env bash
# fetch_cuda_headers.sh: makes sure CUDA's headers are on this machine, for the CUDA-on-CPU layer
# (kernels/emulation) that compiles and tests the CUDA kernels with g++ where no CUDA toolkit is
# installed. Prints the include folder.
#
# With a CUDA toolkit in /usr/local/cuda its headers are used and nothing is fetched. Otherwise
# the headers come from NVIDIA's PyPI wheels nvidia-cuda-runtime 13.0.96, nvidia-cuda-crt 13.0.88
# and nvidia-cuda-cccl 13.0.85 (about 5.5 MB, each checked against its SHA-256; pip downloads
# them, nothing is installed) into the cache, where CMake looks:
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
if [[ -f $dest/include/cuda_fp16.h && -f $dest/include/crt/host_defines.h &&
      -f $dest/include/nv/target ]]; then
  echo "$dest/include"
  exit 0
fi
# package==version, the SHA-256 of its wheel, and the headers taken from it: the runtime API and
# fp16/bf16 headers, the crt/ headers they include, and CCCL's nv/target (which cuda_fp16.h uses).
wheels=(
  "nvidia-cuda-runtime==13.0.96 7f82250d7782aa23b6cfe765ecc7db554bd3c2870c43f3d1821f1d18aebf0548 *"
  "nvidia-cuda-crt==13.0.88 2c8043c7c9e02492716426e9919fc78d2c5b3b2a7a768a88e952676b08aa55a4 crt/*"
  "nvidia-cuda-cccl==13.0.85 e0da7ad981f3a8aff08241b5bfc1af868742a63e2762f53a5171c492ef242649 nv/*"
)
mkdir -p "$cache"
tmp=$(mktemp -d "$cache/download.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/x"
for entry in "${wheels[@]}"; do
  read -r spec sha256 part <<<"$entry"
  name=${spec%%==*}
  version=${spec##*==}
  echo "fetch_cuda_headers: downloading $spec from PyPI" >&2
  if ! python3 -m pip download --quiet --no-deps --disable-pip-version-check \
      --only-binary=:all: --platform manylinux_2_17_x86_64 "$spec" -d "$tmp" >&2; then
    echo "fetch_cuda_headers: cannot download $spec from PyPI" >&2
    exit 1
  fi
  wheel=$(ls "$tmp"/"${name//-/_}"-"$version"-*.whl)
  if ! echo "$sha256  $wheel" | sha256sum --check --quiet -; then
    echo "fetch_cuda_headers: $wheel does not have the expected SHA-256" >&2
    exit 1
  fi
  unzip -q -o "$wheel" "nvidia/cu13/include/$part" -d "$tmp/x"
done
mkdir -p "$tmp/headers"
mv "$tmp/x/nvidia/cu13/include" "$tmp/headers/include"
# Move into place last, so an interrupted download never leaves partial headers behind.
rm -rf "$dest"
mv "$tmp/headers" "$dest"
echo "$dest/include"
