#!/usr/bin/env bash
# run.sh: runs the libFuzzer targets (build/fuzz, preset `fuzz`) over their committed corpora,
# with their dictionaries, and prints one line per target: executions, coverage, corpus size,
# findings. New inputs go to a scratch copy of the corpus; a finding is kept under OUT as
# <target>-crash-..., and the line says FINDING.
#
#   fuzz/run.sh --seconds 600 [TARGET...]     # each target for 10 minutes (all by default)
#   fuzz/run.sh --runs 2000 [TARGET...]       # a fixed number of executions each (CI)
#   INFLLM_FUZZ_OUT=dir fuzz/run.sh ...        # where findings and logs go (default: a temp
#                                              # folder, removed when nothing was found)
#   INFLLM_FUZZ_SEED=1 fuzz/run.sh ...         # libFuzzer's seed (default: random); with
#                                              # --runs the same seed runs the same inputs
#
# Exit 1 when any target had a finding.
set -uo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
limit=()
case ${1:-} in
  --seconds) limit=(-max_total_time="$2"); shift 2 ;;
  --runs) limit=(-runs="$2"); shift 2 ;;
  *) echo "usage: fuzz/run.sh --seconds N | --runs N [TARGET...]" >&2; exit 2 ;;
esac
targets=("$@")
if ((${#targets[@]} == 0)); then
  targets=(jsonl hdf5_input journal hf_config safetensors gguf dequant tokenizer_json tokenizer_text chat_template)
fi
out=${INFLLM_FUZZ_OUT:-$(mktemp -d /tmp/infllm-fuzz-run.XXXXXX)}
mkdir -p "$out"
findings=0
printf '%-16s %12s %8s %8s %8s  %s\n' target executions "cov" "ft" corpus result
for t in "${targets[@]}"; do
  bin=$root/build/fuzz/fuzz/fuzz_$t
  [[ -x $bin ]] || { echo "fuzz/run.sh: no $bin: cmake --preset fuzz && cmake --build --preset fuzz" >&2; exit 2; }
  work=$(mktemp -d "$out/corpus-$t.XXXXXX")
  scratch=$(mktemp -d "$out/tmp-$t.XXXXXX")
  dict=()
  [[ -f $root/fuzz/dict/$t.dict ]] && dict=(-dict="$root/fuzz/dict/$t.dict")
  # libhdf5 is not built with the sanitizers, and three of its habits on corrupt files are not
  # infllm's findings, so for this target only:
  # - it frees some of what it allocates for a corrupt file only when it next opens one, so
  #   LeakSanitizer between inputs and at exit reports "leaks" inside libhdf5 that no single run
  #   has (valgrind on the reported inputs: none); infllm's own leaks on HDF5 errors are caught
  #   by the unit tests under ASan (Hdf5Input.*);
  # - it mallocs metadata of the size a corrupt field declares (up to petabytes) before it finds
  #   that the file ends first, and handles the null that a real malloc gives: ASan returns null
  #   as well (allocator_may_return_null), and libFuzzer's limit is on resident memory
  #   (-rss_limit_mb), not on the size one malloc asks for, since such a reservation is never
  #   touched. What libhdf5 would touch (a variable-length entry's buffer) is checked by infllm
  #   before the read (io/hdf5_vlen.hpp), and the RSS limit catches any that is not.
  env=()
  if [[ $t == hdf5_input ]]; then
    dict+=(-detect_leaks=0 -malloc_limit_mb=1048576)
    env=(ASAN_OPTIONS=detect_leaks=0:allocator_may_return_null=1)
  fi
  # -rss_limit_mb: the parsers must stay bounded; -max_len: inputs up to the largest seed.
  # The targets write each input to a file under TMPDIR (fuzz/fuzz_input.hpp): a folder of this
  # run, removed below, whatever way the target ends.
  env "${env[@]}" TMPDIR=$scratch "$bin" "${limit[@]}" "${dict[@]}" -seed="${INFLLM_FUZZ_SEED:-0}" -rss_limit_mb=2048 -timeout=20 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$out/$t-" "$work" "$root/fuzz/corpus/$t" \
    >"$out/$t.log" 2>&1
  code=$?
  stats=$(grep -E '^#[0-9]+ +DONE' "$out/$t.log" | tail -1)
  [[ -n $stats ]] || stats=$(grep -E '^#[0-9]+' "$out/$t.log" | tail -1)
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.log" | tail -1)
  cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$stats")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$stats")
  corp=$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$stats")
  result=ok
  if [[ $code != 0 ]] || ls "$out/$t-"* >/dev/null 2>&1; then
    result="FINDING (exit $code; $out/$t.log)"
    findings=$((findings + 1))
  elif [[ $t == hdf5_input ]]; then
    # The inputs on which libhdf5 crashed in infllm's reader process (fuzz_hdf5_input.cpp). Each
    # left the child's sanitizer report in the log: the first frame below the sanitizer's own
    # must be inside libhdf5, else the crash was infllm's and is a finding. Any UBSan report
    # (only infllm's code is instrumented) is a finding too.
    contained=$(grep -c '^fuzz_hdf5_input: contained:' "$out/$t.log")
    own=$(awk '
      /ERROR: (AddressSanitizer|LeakSanitizer)/ { report = 1; next }
      report && /^ *#[0-9]+ / {
        if ($0 ~ /__interceptor_|__asan|__sanitizer|__ubsan|__lsan|libclang_rt|sysdeps|libc\.so/) next
        if ($0 !~ /libhdf5/) n++
        report = 0
      }
      /runtime error:/ { n++ }
      END { print n + 0 }' "$out/$t.log")
    if ((own > 0)); then
      result="FINDING ($own report(s) outside libhdf5 in a reader process; $out/$t.log)"
      findings=$((findings + 1))
    elif ((contained > 0)); then
      result="ok; libhdf5 crashed on $contained input(s), each refused naming the file"
    fi
  fi
  printf '%-16s %12s %8s %8s %8s  %s\n' "$t" "${execs:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" "$result"
  rm -rf "$work" "$scratch"
done
if [[ -z ${INFLLM_FUZZ_OUT:-} && $findings == 0 ]]; then
  rm -rf "$out"  # a temporary folder with nothing to keep
  echo "fuzz/run.sh: 0 findings"
else
  echo "fuzz/run.sh: $findings finding(s); logs in $out"
fi
((findings == 0))
