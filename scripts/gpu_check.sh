#!/usr/bin/env bash
# gpu_check.sh: the checks of infllm's CUDA backend that need a GPU, as one script whose logs all
# land in one folder. Three forms:
#
#   scripts/gpu_check.sh OUTDIR             on a machine with a GPU and the build's dependencies:
#                                           prepare, then run, here
#   scripts/gpu_check.sh prepare BUNDLE     here, without a GPU: the CUDA build (sm_80 and sm_90
#                                           in one binary) and the libraries it needs, packed
#                                           into BUNDLE/gpu-check.tar.xz (about 25 MB)
#   scripts/gpu_check.sh run BUNDLE OUTDIR  on a GPU machine that has CUDA 13 (its driver, cudart,
#                                           cuBLAS, NCCL, compute-sanitizer) but not Debian's
#                                           MPI, HDF5, OpenBLAS or Boost: unpacks the bundle and
#                                           runs every check
#
# The checks, each with its own time limit, all within 8 minutes on one H100/H200:
#   device      nvidia-smi's view of the GPU                                   device.txt
#   gpu tests   every kernel against its fp64 reference or the CPU backend, on the device
#               (test_kernels_gpu_*, test_gpu_device)                          gpu-tests.log
#   sanitizer   compute-sanitizer memcheck on the kernel tests, racecheck on the attention
#               kernels                                                        sanitizer.log
#   attention   `infllm bench attention --backend cuda --full`                 bench-attention.txt
#   forward     `infllm bench forward --backend cuda --full`                   bench-forward.txt
#   generate    a 2-rank pooled `generate --backend cuda` on the one GPU (the micro model, a pool
#               small enough to borrow), against the CPU backend's run         generate.log
# and summary.txt, one line per check: ok, FAILED or skipped, with the reason. Exit 0 when no
# check failed.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

prepare() {
  local bundle=$1
  mkdir -p "$bundle"
  bundle=$(cd "$bundle" && pwd)
  cd "$root"
  cmake --preset cuda -DCMAKE_CUDA_ARCHITECTURES="80;90" >/dev/null || return 1
  cmake --build --preset cuda --parallel "$(nproc)" --target infllm test_gpu_device \
    test_kernels_gpu_elementwise test_kernels_gpu_attention test_kernels_gpu_cuda_backend ||
    return 1
  local stage
  stage=$(mktemp -d /tmp/infllm-gpu-check.XXXXXX)
  mkdir -p "$stage/bin" "$stage/lib" "$stage/usr"
  local bins=(build/cuda/src/app/infllm build/cuda/tests/gpu/test_gpu_device
    build/cuda/tests/kernels/test_kernels_gpu_elementwise
    build/cuda/tests/kernels/test_kernels_gpu_attention
    build/cuda/tests/kernels/test_kernels_gpu_cuda_backend)
  cp "${bins[@]}" "$stage/bin/"
  # Every library they load except the C runtime's and CUDA's (the GPU machine brings those).
  ldd "${bins[@]}" /usr/bin/mpirun /usr/bin/orted | awk '$3 ~ /^\// {print $3}' | sort -u |
    grep -v -E '/(libc|libm|libpthread|libdl|librt|libgcc_s|libresolv|libutil)\.so|ld-linux|/cuda' |
    while read -r lib; do cp -L "$lib" "$stage/lib/"; done
  # Open MPI, relocated under usr/ (OPAL_PREFIX): its launcher, plugins and help files.
  mkdir -p "$stage/usr/bin" "$stage/usr/lib/x86_64-linux-gnu" "$stage/usr/share"
  cp -L /usr/bin/mpirun /usr/bin/orted "$stage/usr/bin/"
  cp -a /usr/lib/x86_64-linux-gnu/openmpi "$stage/usr/lib/x86_64-linux-gnu/"
  cp -a /usr/share/openmpi "$stage/usr/share/"
  # The micro model and an input for the generate check.
  build/default/src/app/infllm make-model --preset micro --seed 3 --out "$stage/micro" >/dev/null ||
    build/cuda/src/app/infllm make-model --preset micro --seed 3 --out "$stage/micro" >/dev/null ||
    return 1
  python3 - "$stage/in.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i, n in enumerate([110, 20, 10]):
        tokens = [3 + (j * 37 + i * 101 + j // 7) % 500 for j in range(n)]
        f.write(json.dumps({"id": f"d{i}", "tokens": tokens, "max_new_tokens": 6}) + "\n")
PY
  git -C "$root" rev-parse --short HEAD >"$stage/commit" 2>/dev/null || true
  tar -C "$stage" -cJf "$bundle/gpu-check.tar.xz" .
  rm -rf "$stage"
  echo "gpu_check: bundle $bundle/gpu-check.tar.xz ($(du -h "$bundle/gpu-check.tar.xz" | cut -f1))"
}

# Runs one check: name, limit in seconds, log file, command...; records its line in summary.txt.
check() {
  local name=$1 limit=$2 log=$3
  shift 3
  local t0=$SECONDS
  timeout --kill-after=10 "$limit" "$@" >"$out/$log" 2>&1
  local code=$?
  local status=ok
  if [[ $code == 124 || $code == 137 ]]; then
    status="FAILED (over its ${limit} s)"
  elif [[ $code != 0 ]]; then
    status="FAILED (exit $code)"
  fi
  printf '%-10s %-28s %4d s  %s\n' "$name" "$status" $((SECONDS - t0)) "$log" | tee -a "$out/summary.txt"
  [[ $status == ok ]] || failed=1
}

skip() {
  printf '%-10s %-28s         %s\n' "$1" "skipped" "$2" | tee -a "$out/summary.txt"
}

run() {
  local bundle=$1
  out=$2
  mkdir -p "$out"
  out=$(cd "$out" && pwd)
  : >"$out/summary.txt"
  failed=0
  local work
  work=$(mktemp -d /tmp/infllm-gpu-check-run.XXXXXX)
  tar -C "$work" -xJf "$bundle/gpu-check.tar.xz" || { echo "gpu_check: cannot unpack the bundle" >&2; return 1; }
  # CUDA's libraries from the machine: the toolkit's folders, and NVIDIA's Python wheels.
  local cuda_libs=""
  for d in /usr/local/cuda/lib64 /usr/local/cuda/targets/x86_64-linux/lib \
    $(python3 -c 'import glob, site; print(" ".join(glob.glob(site.getsitepackages()[0] + "/nvidia/*/lib")))' 2>/dev/null); do
    [[ -d $d ]] && cuda_libs+=":$d"
  done
  export LD_LIBRARY_PATH="$work/lib$cuda_libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export OPAL_PREFIX=$work/usr PATH=$work/usr/bin:$PATH OPENBLAS_NUM_THREADS=1
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_osc=sm,pt2pt
  echo "bundle of commit $(cat "$work/commit" 2>/dev/null || echo '?'); LD_LIBRARY_PATH=$LD_LIBRARY_PATH" \
    >"$out/environment.txt"
  local bin=$work/bin
  check device 30 device.txt nvidia-smi
  # A test that skips ("no CUDA device") fails the check: here there must be one.
  check gpu-tests 120 gpu-tests.log bash -c "set -e; for t in $bin/test_gpu_device $bin/test_kernels_gpu_*; do \$t; done
    ! grep -q 'no CUDA device' $out/gpu-tests.log"
  if command -v compute-sanitizer >/dev/null; then
    check sanitizer 150 sanitizer.log bash -c "set -e
      compute-sanitizer --tool memcheck --error-exitcode 1 $bin/test_kernels_gpu_elementwise
      compute-sanitizer --tool memcheck --error-exitcode 1 $bin/test_kernels_gpu_attention
      compute-sanitizer --tool racecheck --error-exitcode 1 $bin/test_kernels_gpu_attention --gtest_filter='*MicroAttention*:*Merge*'"
  else
    skip sanitizer "no compute-sanitizer on this machine"
  fi
  check attention 60 bench-attention.txt "$bin/infllm" bench attention --backend cuda --full
  check forward 120 bench-forward.txt "$bin/infllm" bench forward --backend cuda --full
  check generate 90 generate.log bash -c "set -e; cd $work
    args='generate --model micro --input in.jsonl --block-tokens 8 --kv-pool-mb 0.09375 --ignore-eos --quiet'
    mpirun --oversubscribe -np 2 $bin/infllm \$args --output cpu.jsonl --backend cpu
    mpirun --oversubscribe -np 2 $bin/infllm \$args --output cuda.jsonl --backend cuda --weight-dtype f32 --metrics metrics.json
    python3 -c \"import json
a = {json.loads(l)['id']: json.loads(l)['tokens'] for l in open('cpu.jsonl')}
b = {json.loads(l)['id']: json.loads(l)['tokens'] for l in open('cuda.jsonl')}
m = json.load(open('metrics.json'))
print('loans', m['loans_total'], 'tokens equal', a == b)
assert m['loans_total'] > 0 and a == b\""
  rm -rf "$work"
  return $failed
}

case ${1:-} in
  prepare)
    [[ $# == 2 ]] || { echo "usage: scripts/gpu_check.sh prepare BUNDLE" >&2; exit 2; }
    prepare "$2"
    ;;
  run)
    [[ $# == 3 ]] || { echo "usage: scripts/gpu_check.sh run BUNDLE OUTDIR" >&2; exit 2; }
    run "$2" "$3"
    ;;
  "" | -h | --help)
    sed -n '2,31p' "${BASH_SOURCE[0]}"
    [[ -n ${1:-} ]]
    ;;
  *)
    [[ $# == 1 ]] || { echo "usage: scripts/gpu_check.sh OUTDIR" >&2; exit 2; }
    bundle=$(mktemp -d /tmp/infllm-gpu-check-bundle.XXXXXX)
    prepare "$bundle" && run "$bundle" "$1"
    code=$?
    rm -rf "$bundle"
    exit $code
    ;;
esac
