#!/usr/bin/env bash
# slurm_test.sh CASE: submits jobs/generate.sbatch to a real Slurm (scripts/slurm_local.sh up)
# and checks what the job leaves behind. Run by ctest (label `slurm`); exits 77 (ctest skip)
# when no Slurm answers.
#
#   generate   a run on $INFLLM_SLURM_TEST_RANKS tasks (default 4) with the micro model: the job
#              completes with exit 0, and the output has exactly one `done` record per request
#   generate_srun   the same, launched with `srun --mpi=pmix` instead of mpirun
#   requeue    a slowed-down run (INFLLM_TEST_STEP_DELAY_MS) is sent SIGUSR1 mid-way the way
#              `--signal=B:USR1@s` sends it (to the batch shell only); the job stops, requeues
#              itself, starts again, resumes, and ends with every request once, all `done`
#              (launcher: $INFLLM_LAUNCHER, default mpirun)
#
# Environment: INFLLM_BIN (the executable; ctest sets it), INFLLM_SOURCE_DIR (the repository;
# default: two folders up), SLURM_CONF (default $INFLLM_SLURM_DIR/slurm.conf as slurm_local.sh
# writes it), INFLLM_SLURM_TEST_RANKS, INFLLM_SLURM_TEST_KEEP=1 (keep the work folder),
# INFLLM_SLURM_TEST_REQUIRE=1 (no Slurm is a failure, not a skip: CI started one).
set -euo pipefail

case_name=${1:-}
[[ $case_name == generate || $case_name == generate_srun || $case_name == requeue ]] || {
  echo "usage: $0 generate|generate_srun|requeue" >&2
  exit 2
}
src=${INFLLM_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
bin=${INFLLM_BIN:-$src/build/default/src/app/infllm}
ranks=${INFLLM_SLURM_TEST_RANKS:-4}
export SLURM_CONF=${SLURM_CONF:-${INFLLM_SLURM_DIR:-/tmp/infllm-slurm}/slurm.conf}

say() { echo "slurm.$case_name: $*"; }

# --- skip when there is no Slurm to talk to ----------------------------------------------------
skip() {
  if [[ ${INFLLM_SLURM_TEST_REQUIRE:-0} == 1 ]]; then
    echo "slurm.$case_name: FAIL: $* (INFLLM_SLURM_TEST_REQUIRE=1: a Slurm must answer)" >&2
    exit 1
  fi
  say "SKIP: $* (start one with scripts/slurm_local.sh up)"
  exit 77
}
command -v sbatch >/dev/null || skip "no sbatch on PATH"
[[ -f $SLURM_CONF ]] || skip "no $SLURM_CONF"
timeout 10 scontrol ping 2>/dev/null | grep -q 'is UP' || skip "slurmctld does not answer (SLURM_CONF=$SLURM_CONF)"
node_state=$(timeout 10 sinfo -h -N -o %T 2>/dev/null | head -n1)
[[ $node_state == idle* || $node_state == mixed* || $node_state == allocated* ]] ||
  skip "no usable node (state '${node_state:-none}')"

[[ -x $bin ]] || {
  echo "slurm.$case_name: FAIL: no infllm executable at $bin" >&2
  exit 1
}

work=$(mktemp -d "${TMPDIR:-/tmp}/infllm-slurm-test.XXXXXX")
job=
finished=0
cleanup() {
  if [[ -n $job ]] && ((!finished)); then scancel "$job" 2>/dev/null || true; fi
  if ((finished)) && [[ ${INFLLM_SLURM_TEST_KEEP:-0} != 1 ]]; then rm -rf "$work"; fi
}
trap cleanup EXIT

fail() {
  echo "slurm.$case_name: FAIL: $*" >&2
  if [[ -n $job ]]; then
    echo "--- scontrol show job $job" >&2
    scontrol show job "$job" 2>&1 | sed 's/^/  /' >&2 || true
    echo "--- job log" >&2
    cat "$work"/slurm-*.log >&2 2>/dev/null || echo "  (no job log)" >&2
  fi
  echo "--- work folder kept: $work" >&2
  exit 1
}

# job_field NAME: one field of `scontrol show job` (JobState, Restarts, ExitCode, ...).
job_field() {
  scontrol show job -o "$job" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$1=//p" | head -n1
}

# wait_job LIMIT_S: until the job reaches a final state; prints that state.
wait_job() {
  local limit=$1 start=$SECONDS state
  while :; do
    state=$(job_field JobState)
    case $state in
      COMPLETED | FAILED | CANCELLED | TIMEOUT | NODE_FAIL | OUT_OF_MEMORY | BOOT_FAIL | DEADLINE | PREEMPTED)
        echo "$state"
        return 0
        ;;
    esac
    ((SECONDS - start < limit)) || fail "job $job not finished after ${limit}s (state ${state:-unknown})"
    sleep 0.5
  done
}

# write_input FILE N: N short synthetic requests.
write_input() {
  local i
  for ((i = 0; i < $2; i++)); do
    printf '{"id":"req-%03d","prompt":"Document %d of the slurm test: a few words to read, then some more."}\n' "$i" "$i"
  done >"$1"
}

# check_output FILE N: exactly N records, ids unique and those of the input, all `done`.
check_output() {
  python3 - "$1" "$2" "$work/input.jsonl" <<'EOF' || fail "output check failed (above)"
import json, sys
path, want, input_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
records = [json.loads(line) for line in open(path) if line.strip()]
ids = [r["id"] for r in records]
expected = {json.loads(line)["id"] for line in open(input_path) if line.strip()}
dups = sorted({i for i in ids if ids.count(i) > 1})
errors = []
if len(records) != want:
    errors.append(f"{len(records)} records, expected {want}")
if dups:
    errors.append(f"duplicate ids: {dups[:10]}")
if set(ids) != expected:
    errors.append(f"missing ids {sorted(expected - set(ids))[:10]}, unexpected {sorted(set(ids) - expected)[:10]}")
not_done = [(r["id"], r["status"], r.get("reason")) for r in records if r["status"] != "done"]
if not_done:
    errors.append(f"not done: {not_done[:10]}")
for e in errors:
    print(f"output {path}: {e}", file=sys.stderr)
sys.exit(1 if errors else 0)
EOF
}

say "work folder $work; $ranks tasks; SLURM_CONF=$SLURM_CONF"
"$bin" make-model --preset micro --out "$work/model" >/dev/null || fail "make-model failed"

# The job inherits this environment (sbatch --export=ALL).
export INFLLM_BIN=$bin INFLLM_OVERSUBSCRIBE=1
sbatch_args=(--parsable --nodes=1 --ntasks="$ranks" --time=5 --chdir="$work"
  --job-name="infllm-test-$case_name" --output="$work/slurm-%j.log")

case $case_name in
  generate | generate_srun)
    if [[ $case_name == generate_srun ]]; then export INFLLM_LAUNCHER=srun; else export INFLLM_LAUNCHER=mpirun; fi
    n=8
    write_input "$work/input.jsonl" "$n"
    job=$(sbatch "${sbatch_args[@]}" "$src/jobs/generate.sbatch" --model model \
      --input input.jsonl --output output.jsonl --metrics metrics.json \
      --max-new-tokens 8 --temperature 0 --quiet) || fail "sbatch refused the job"
    say "submitted job $job"
    state=$(wait_job 100)
    [[ $state == COMPLETED ]] || fail "job ended $state"
    [[ $(job_field ExitCode) == 0:0 ]] || fail "job exit code $(job_field ExitCode), expected 0:0"
    grep -q -E -- "run: (mpirun -np |srun .*--ntasks=)$ranks " "$work"/slurm-*.log ||
      fail "the job did not launch $ranks ranks"
    check_output "$work/output.jsonl" "$n"
    # A metrics file that reports its rank count must report this one.
    python3 - "$work/metrics.json" "$ranks" <<'EOF' || fail "metrics check failed"
import json, sys
m = json.load(open(sys.argv[1]))
if "ranks" in m and int(m["ranks"]) != int(sys.argv[2]):
    sys.exit(f"metrics say {m['ranks']} ranks, the job had {sys.argv[2]}")
EOF
    ;;
  requeue)
    # 12 requests per rank, 2 running at a time, 8 tokens each, 200 ms per step: about 10 s of
    # work per start, long enough to be signalled after the first records are written.
    n=$((12 * ranks))
    write_input "$work/input.jsonl" "$n"
    job=$(INFLLM_TEST_STEP_DELAY_MS=200 sbatch "${sbatch_args[@]}" "$src/jobs/generate.sbatch" \
      --model model --input input.jsonl --output output.jsonl --max-new-tokens 8 \
      --temperature 0 --max-num-seqs 2 --quiet) || fail "sbatch refused the job"
    say "submitted job $job"
    start=$SECONDS
    until [[ -s $work/output.jsonl ]]; do
      state=$(job_field JobState)
      [[ $state == PENDING || $state == RUNNING || $state == CONFIGURING ]] ||
        fail "job left before writing any record (state $state)"
      ((SECONDS - start < 60)) || fail "no record written after 60 s"
      sleep 0.2
    done
    before=$(wc -l <"$work/output.jsonl")
    ((before < n)) || fail "the run finished before it could be signalled"
    say "$before of $n records written; sending SIGUSR1 to the batch shell"
    scancel --signal=USR1 --batch "$job" || fail "scancel --signal=USR1 --batch failed"
    state=$(wait_job 110)
    [[ $state == COMPLETED ]] || fail "job ended $state"
    restarts=$(job_field Restarts)
    ((restarts >= 1)) || fail "job was not requeued (Restarts=$restarts)"
    [[ $(job_field ExitCode) == 0:0 ]] || fail "job exit code $(job_field ExitCode), expected 0:0"
    grep -q "requeued job $job" "$work"/slurm-*.log || fail "the job log has no requeue"
    grep -q "job $job start 2 " "$work"/slurm-*.log || fail "the log shows no second start"
    check_output "$work/output.jsonl" "$n"
    say "stopped after $before records, requeued $restarts time(s), finished in $((SECONDS - start)) s"
    ;;
esac
finished=1
say "PASS"
