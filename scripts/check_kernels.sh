#!/usr/bin/env bash
# check_kernels.sh: the CUDA kernels' compile gates, run by .ci/run where nvcc is installed:
# every source in kernels/sources.cmake compiles for sm_80 and sm_90 with warnings as errors,
# and ptxas's resource report (-Xptxas -v) shows no register spill in any kernel and static
# shared memory under the 48 KiB a block may use without opting in. Prints one line per kernel
# and architecture; exits 1 on the first failed gate.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
nvcc=${NVCC:-$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)}
[[ -x $nvcc ]] || { echo "check_kernels: no nvcc" >&2; exit 2; }
sources=$(sed -n 's/^ *\([a-z_]*\.cu\)$/\1/p' kernels/sources.cmake)
tmp=$(mktemp -d /tmp/infllm-check-kernels.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
status=0
for arch in 80 90; do
  for src in $sources; do
    log=$tmp/${src%.cu}.sm_$arch.log
    if ! "$nvcc" -std=c++17 -O3 -I src -I . --expt-relaxed-constexpr -arch=sm_$arch \
        -Werror all-warnings -Xptxas -v -c "kernels/$src" -o "$tmp/out.o" >"$log" 2>&1; then
      cat "$log" >&2
      echo "check_kernels: kernels/$src does not compile cleanly for sm_$arch" >&2
      exit 1
    fi
    # ptxas prints, per kernel: "Compiling entry function 'NAME'", then its spills, then
    # "Used N registers, ... [M bytes smem]".
    awk -v arch="$arch" -v src="$src" '
      /Compiling entry function/ {
        match($0, /[a-z_]+_kernel/); kernel = substr($0, RSTART, RLENGTH);
        if (match($0, /ILi[0-9]+E/)) kernel = kernel "<" substr($0, RSTART + 3, RLENGTH - 4) ">" }
      /spill stores/ { split($0, f, ","); spills = f[2] + 0; loads = f[3] + 0 }
      /Used [0-9]+ registers/ {
        regs = $0; sub(/.*Used /, "", regs); regs += 0; smem = 0;
        if (match($0, /[0-9]+ bytes smem/)) smem = substr($0, RSTART, RLENGTH) + 0;
        ok = (spills == 0 && loads == 0 && smem <= 49152);
        printf "sm_%s %-34s %3d registers %6d B smem %d B spilled  %s\n", arch, kernel, regs,
               smem, spills + loads, ok ? "ok" : "FAILED";
        if (!ok) bad = 1 }
      END { exit bad }' "$log" || status=1
  done
done
if [[ $status != 0 ]]; then
  echo "check_kernels: a kernel spills registers or uses too much static shared memory" >&2
fi
exit $status
