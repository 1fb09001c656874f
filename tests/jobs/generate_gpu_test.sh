#!/usr/bin/env bash
# generate_gpu_test.sh: jobs/generate_gpu.sbatch hands its arguments to generate.sbatch with
# --backend cuda (a dry run prints the launch), and refuses a --backend of the caller's.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
tmp=$(mktemp -d /tmp/infllm-generate-gpu-test.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
touch "$tmp/model.gguf" "$tmp/in.jsonl"
out=$(INFLLM_DRY_RUN=1 INFLLM_BIN=/bin/true "$root/jobs/generate_gpu.sbatch" \
  --model "$tmp/model.gguf" --input "$tmp/in.jsonl" --output "$tmp/out.jsonl" \
  --weight-dtype f16 2>&1)
echo "$out"
grep -q -- "--resume --backend cuda --weight-dtype f16" <<<"$out" ||
  { echo "FAILED: the launch does not pass --backend cuda and the caller's options" >&2; exit 1; }
set +e
refused=$("$root/jobs/generate_gpu.sbatch" --model "$tmp/model.gguf" --input "$tmp/in.jsonl" \
  --output "$tmp/out.jsonl" --backend cpu 2>&1)
code=$?
set -e
echo "$refused"
[[ $code == 2 ]] || { echo "FAILED: --backend from the caller gave exit $code, not 2" >&2; exit 1; }
grep -q -- "--backend is set by this script" <<<"$refused" ||
  { echo "FAILED: the refusal does not name --backend" >&2; exit 1; }
[[ ! -e $tmp/out.jsonl ]] || { echo "FAILED: a dry run or a refusal wrote the output" >&2; exit 1; }
echo "generate_gpu_test: OK"
