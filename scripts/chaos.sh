#!/usr/bin/env bash
# chaos.sh: faults at scale. Trials of an 8-rank pooled `infllm generate` on the micro model whose
# longest documents borrow rBlocks (DGFM on), each interrupted once at a random moment: one random
# rank killed (SIGKILL), or the launcher sent SIGTERM or SIGUSR1, as a scheduler or a user would.
# Each trial then runs `--resume` to the end, and its final output must hold exactly the records
# of an uninterrupted run: every id once, every request done, the same tokens up to the first
# near tie (a top-2 log-probability gap under 1e-3 in the uninterrupted run, where either order
# is right). Prints a table of the trials; exits 1 when any failed.
#
#   scripts/chaos.sh                 # 20 trials, seed 1
#   INFLLM_CHAOS_TRIALS=5 INFLLM_CHAOS_SEED=7 INFLLM_CHAOS_RANKS=4 scripts/chaos.sh
#
# Bounds: an interrupted run must end within 120 s of its signal, a resume within 300 s; a run
# past its bound is killed and the trial fails as a hang. Needs the default build
# (build/default/src/app/infllm) and Open MPI's mpirun; more ranks than cores is fine (the runs
# yield when idle). Scratch files live in one temporary folder, removed at the end.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bin=${INFLLM_BIN:-$root/build/default/src/app/infllm}
trials=${INFLLM_CHAOS_TRIALS:-20}
seed=${INFLLM_CHAOS_SEED:-1}
ranks=${INFLLM_CHAOS_RANKS:-8}
[[ -x $bin ]] || { echo "chaos: no $bin: build first (cmake --preset default && cmake --build --preset default)" >&2; exit 2; }
tmp=$(mktemp -d /tmp/infllm-chaos.XXXXXX)
trap 'pkill -KILL -f "$tmp" 2>/dev/null || true; rm -rf "$tmp"' EXIT

export OPENBLAS_NUM_THREADS=1 OMPI_MCA_mpi_yield_when_idle=1 OMPI_MCA_osc=sm,pt2pt
if [[ $(id -u) == 0 ]]; then export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1; fi
launch=(mpirun --oversubscribe --bind-to none -np "$ranks" "$bin")

"$bin" make-model --preset micro --seed 3 --out "$tmp/micro" >/dev/null
# 24 documents, 40 to 200 tokens, 256 new tokens each, one at a time per rank (a run of
# hundreds of steps to interrupt); 128 KiB pools of 8-token rBlocks (16 rBlocks a rank): the long
# ones borrow, the DGFM pays the debts back as requests finish.
python3 - "$tmp/in.jsonl" <<'PY'
import json, sys
with open(sys.argv[1], "w") as f:
    for i in range(24):
        n = 40 + (i * 97) % 161
        tokens = [3 + (j * 37 + i * 101 + j // 7) % 500 for j in range(n)]
        f.write(json.dumps({"id": f"doc{i:02d}", "tokens": tokens, "max_new_tokens": 256}) + "\n")
PY
args=(generate --model "$tmp/micro" --input "$tmp/in.jsonl" --block-tokens 8 --kv-pool-mb 0.125
  --max-num-seqs 1 --ignore-eos --logprobs 2 --quiet)

now() { date +%s.%N; }
# Whole records (newline-terminated lines) in file $1; 0 when it does not exist.
lines() { if [[ -f $1 ]]; then wc -l <"$1"; else echo 0; fi; }

echo "chaos: $trials trials of ${ranks}-rank pooled runs; seed $seed; $(nproc) cores"
t0=$SECONDS
start=$(now)
"${launch[@]}" "${args[@]}" --output "$tmp/ref.jsonl" --metrics "$tmp/ref.metrics.json" \
  >"$tmp/ref.log" 2>&1 || { cat "$tmp/ref.log" >&2; echo "chaos: the uninterrupted run failed" >&2; exit 1; }
# In tenths of a second.
ref_ds=$(python3 -c "print(max(1, round(($(now) - $start) * 10)))")
loans=$(python3 -c "import json; print(json.load(open('$tmp/ref.metrics.json'))['loans_total'])")
echo "chaos: uninterrupted run: $((ref_ds / 10)).$((ref_ds % 10)) s, $loans loans"
(( loans > 0 )) || { echo "chaos: the workload borrowed nothing" >&2; exit 1; }

# Waits up to $2 seconds for the background job $1; sets `ended` to its exit code, or to "hang"
# after killing it and its ranks.
wait_bounded() {
  local pid=$1 bound=$2 waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if ((waited >= bound * 10)); then
      pkill -KILL -P "$pid" 2>/dev/null || true
      kill -KILL "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
      ended=hang
      return
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  ended=0
  wait "$pid" || ended=$?
}

RANDOM=$seed
printf '%-5s %-14s %7s %6s %8s %7s %8s  %s\n' trial fault "at s" exit "records" resume records result
failed=0
for ((t = 1; t <= trials; t++)); do
  out=$tmp/trial$t.jsonl
  case $((RANDOM % 3)) in
    0) fault=kill-rank ;;
    1) fault=term-launcher ;;
    *) fault=usr1-launcher ;;
  esac
  # A moment in the first 90% of an uninterrupted run, in tenths of a second.
  at=$((RANDOM % (ref_ds * 9 / 10 + 1) + 1))
  "${launch[@]}" "${args[@]}" --output "$out" >"$tmp/trial$t.log" 2>&1 &
  pid=$!
  sleep "$((at / 10)).$((at % 10))"
  case $fault in
    kill-rank)
      mapfile -t kids < <(pgrep -P "$pid" || true)
      if ((${#kids[@]} > 0)); then kill -KILL "${kids[$((RANDOM % ${#kids[@]}))]}" 2>/dev/null || true; fi
      ;;
    term-launcher) kill -TERM "$pid" 2>/dev/null || true ;;
    usr1-launcher) kill -USR1 "$pid" 2>/dev/null || true ;;
  esac
  wait_bounded "$pid" 120
  code=$ended
  before=$(lines "$out")
  "${launch[@]}" "${args[@]}" --resume --output "$out" >>"$tmp/trial$t.log" 2>&1 &
  rpid=$!
  wait_bounded "$rpid" 300
  rcode=$ended
  verdict=$(python3 - "$tmp/ref.jsonl" "$out" <<'PY'
import json, sys
def load(path):
    try:
        lines = open(path).read().splitlines()
    except FileNotFoundError:
        return None, "no output"
    recs = {}
    for line in lines:
        r = json.loads(line)
        if r["id"] in recs:
            return None, "duplicate " + r["id"]
        recs[r["id"]] = r
    return recs, ""
ref, _ = load(sys.argv[1])
got, why = load(sys.argv[2])
if got is None:
    print("FAILED: " + why); sys.exit()
if set(got) != set(ref):
    print("FAILED: ids differ (%d of %d)" % (len(got), len(ref))); sys.exit()
for id_, w in ref.items():
    g = got[id_]
    if g["status"] != "done":
        print("FAILED: %s %s" % (id_, g["status"])); sys.exit()
    for i, (a, b) in enumerate(zip(w["tokens"], g["tokens"])):
        if a != b:
            print("FAILED: %s token %d" % (id_, i)); sys.exit()
        top = w["top_logprobs"][i]
        if top[0]["logprob"] - top[1]["logprob"] < 1e-3:
            break
print("OK")
PY
)
  [[ $rcode == 0 && $verdict == OK ]] || failed=$((failed + 1))
  after=$(lines "$out")
  printf '%-5s %-14s %7s %6s %8s %7s %8s  %s\n' "$t" "$fault" "$((at / 10)).$((at % 10))" "$code" \
    "$before" "$rcode" "$after" "$verdict"
done
echo "chaos: $((trials - failed))/$trials trials ended with the uninterrupted run's records; $((SECONDS - t0)) s in all"
((failed == 0))
