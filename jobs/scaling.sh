#!/usr/bin/env bash
# scaling.sh: the scaling sweep. Submits one jobs/generate.sbatch run per (experiment, KV
# policy, rank count), waits for them, collects every run's --metrics JSON and output into one
# CSV, and draws the figures (scripts/plot_scaling.py).
#
#   jobs/scaling.sh [all|submit|wait|collect|plot]     (default: all, in that order)
#
# Experiments (workloads generated here, token ids so that lengths are exact):
#   strong     a fixed workload: STRONG_REQUESTS requests, whatever the rank count
#   weak       WEAK_PER_RANK requests per rank
#   capacity   one document per length in CAPACITY_LENGTHS with small pools (CAPACITY_POOL_MB
#              per rank): the longest document served (max_context_tokens) shows how far
#              `pooled` stretches one request over the cluster's memory and `local` does not
# each with --kv-policy pooled and local, at every rank count.
#
# Settings (environment; defaults are the full sweep, make them small for a smoke run):
#   INFLLM_SWEEP_DIR                 where everything goes (default build/sweep; must not hold
#                                    an earlier sweep's runs/)
#   INFLLM_SWEEP_RANKS               "2 4 8 16 32"
#   INFLLM_SWEEP_EXPERIMENTS         "strong weak capacity"
#   INFLLM_SWEEP_POLICIES            "pooled local"
#   INFLLM_SWEEP_MODEL               model path (default: `infllm make-model --preset micro`)
#   INFLLM_SWEEP_VOCAB               token ids are drawn below this (default: the model's
#                                    config.json vocab_size, else 512)
#   INFLLM_SWEEP_STRONG_REQUESTS     64
#   INFLLM_SWEEP_WEAK_PER_RANK       4
#   INFLLM_SWEEP_PROMPT_TOKENS       256   (strong and weak)
#   INFLLM_SWEEP_NEW_TOKENS          32    (strong and weak; --ignore-eos, so exact)
#   INFLLM_SWEEP_POOL_MB             16    (--kv-pool-mb per rank, strong and weak)
#   INFLLM_SWEEP_CAPACITY_LENGTHS    "128,181,256,...,8192" (tokens; steps of sqrt 2)
#   INFLLM_SWEEP_CAPACITY_POOL_MB    0.25  (16 rBlocks of the micro model: 256 tokens per rank)
#   INFLLM_SWEEP_CAPACITY_NEW_TOKENS 8
#   INFLLM_SWEEP_BLOCK_TOKENS        16
#   INFLLM_SWEEP_TIME                20    (minutes per job)
#   INFLLM_SWEEP_PARALLEL            0: one job at a time (sbatch --dependency=singleton), so
#                                    runs do not share nodes; 1: all at once
#   INFLLM_SWEEP_SBATCH_ARGS         more sbatch options, e.g. "--ntasks-per-node=4
#                                    --gpus-per-task=1 --exclusive --partition=gpu"
#   INFLLM_SWEEP_GENERATE_ARGS       more `infllm generate` options for every run
#   INFLLM_BIN, INFLLM_LAUNCHER, INFLLM_OVERSUBSCRIBE   passed to the jobs (jobs/generate.sbatch)
#
# Output: $INFLLM_SWEEP_DIR/runs/<experiment>-<policy>-n<ranks>/{run.json,slurm.log,
# output.jsonl,metrics.json,job.txt}, scaling.csv, and the PNGs of scripts/plot_scaling.py.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=${INFLLM_SWEEP_DIR:-$repo/build/sweep}
read -r -a ranks_list <<<"${INFLLM_SWEEP_RANKS:-2 4 8 16 32}"
read -r -a experiments <<<"${INFLLM_SWEEP_EXPERIMENTS:-strong weak capacity}"
read -r -a policies <<<"${INFLLM_SWEEP_POLICIES:-pooled local}"
strong_requests=${INFLLM_SWEEP_STRONG_REQUESTS:-64}
weak_per_rank=${INFLLM_SWEEP_WEAK_PER_RANK:-4}
prompt_tokens=${INFLLM_SWEEP_PROMPT_TOKENS:-256}
new_tokens=${INFLLM_SWEEP_NEW_TOKENS:-32}
pool_mb=${INFLLM_SWEEP_POOL_MB:-16}
cap_lengths=${INFLLM_SWEEP_CAPACITY_LENGTHS:-128,181,256,362,512,724,1024,1448,2048,2896,4096,5793,8192}
cap_pool_mb=${INFLLM_SWEEP_CAPACITY_POOL_MB:-0.25}
cap_new_tokens=${INFLLM_SWEEP_CAPACITY_NEW_TOKENS:-8}
block_tokens=${INFLLM_SWEEP_BLOCK_TOKENS:-16}
time_min=${INFLLM_SWEEP_TIME:-20}
read -r -a sbatch_extra <<<"${INFLLM_SWEEP_SBATCH_ARGS:-}"
read -r -a generate_extra <<<"${INFLLM_SWEEP_GENERATE_ARGS:-}"
export INFLLM_BIN=${INFLLM_BIN:-$repo/build/default/src/app/infllm}
tools=$repo/jobs/sweep_tools.py

say() { echo "scaling: $*"; }
die() {
  echo "scaling: error: $*" >&2
  exit 1
}

check_settings() {
  local r
  ((${#ranks_list[@]} > 0)) || die "INFLLM_SWEEP_RANKS is empty"
  for r in "${ranks_list[@]}"; do
    [[ $r =~ ^[1-9][0-9]*$ ]] || die "INFLLM_SWEEP_RANKS: '$r' is not a positive whole number"
  done
  for r in "${experiments[@]}"; do
    [[ $r == strong || $r == weak || $r == capacity ]] ||
      die "INFLLM_SWEEP_EXPERIMENTS: '$r' is not one of strong, weak, capacity"
  done
  for r in "${policies[@]}"; do
    [[ $r == pooled || $r == local ]] || die "INFLLM_SWEEP_POLICIES: '$r' is not pooled or local"
  done
  command -v sbatch >/dev/null || die "no sbatch: run on a Slurm login node (or scripts/slurm_local.sh up and export SLURM_CONF)"
  command -v python3 >/dev/null || die "no python3 (scripts/setup.sh installs it)"
}

submit() {
  check_settings
  [[ -x $INFLLM_BIN ]] || die "no infllm executable at $INFLLM_BIN (build it, or set INFLLM_BIN)"
  if [[ -d $out/runs ]] && [[ -n $(ls -A "$out/runs") ]]; then
    die "$out/runs holds an earlier sweep: move it away or set INFLLM_SWEEP_DIR"
  fi
  mkdir -p "$out/runs" "$out/workloads"
  out=$(cd "$out" && pwd)

  local model=${INFLLM_SWEEP_MODEL:-}
  if [[ -z $model ]]; then
    model=$out/model
    [[ -f $model/config.json ]] || "$INFLLM_BIN" make-model --preset micro --out "$model"
  fi
  [[ -e $model ]] || die "model $model: no such file or directory"
  model=$(cd "$(dirname "$model")" && pwd)/$(basename "$model")
  local vocab=${INFLLM_SWEEP_VOCAB:-}
  if [[ -z $vocab ]]; then
    vocab=$(python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["vocab_size"]))' \
      "$model/config.json" 2>/dev/null || echo 512)
  fi

  local dependency=(--dependency=singleton)
  [[ ${INFLLM_SWEEP_PARALLEL:-0} == 1 ]] && dependency=()
  : >"$out/jobs.txt"
  local exp policy r input pool nt n run job
  for exp in "${experiments[@]}"; do
    for r in "${ranks_list[@]}"; do
      case $exp in
        strong)
          n=$strong_requests input=$out/workloads/strong.jsonl pool=$pool_mb nt=$new_tokens
          [[ -f $input ]] || python3 "$tools" workload "$input" --requests "$n" \
            --prompt-tokens "$prompt_tokens" --vocab "$vocab"
          ;;
        weak)
          n=$((weak_per_rank * r)) input=$out/workloads/weak-n$r.jsonl pool=$pool_mb nt=$new_tokens
          [[ -f $input ]] || python3 "$tools" workload "$input" --requests "$n" \
            --prompt-tokens "$prompt_tokens" --vocab "$vocab"
          ;;
        capacity)
          input=$out/workloads/capacity.jsonl pool=$cap_pool_mb nt=$cap_new_tokens
          [[ -f $input ]] || python3 "$tools" capacity "$input" --lengths "$cap_lengths" --vocab "$vocab"
          n=$(wc -l <"$input")
          ;;
      esac
      for policy in "${policies[@]}"; do
        run=$out/runs/$exp-$policy-n$(printf '%03d' "$r")
        mkdir -p "$run"
        job=$(sbatch --parsable --ntasks="$r" --time="$time_min" --job-name=infllm-sweep \
          "${dependency[@]}" --chdir="$run" --output="$run/slurm.log" "${sbatch_extra[@]}" \
          "$repo/jobs/generate.sbatch" --model "$model" --input "$input" \
          --output output.jsonl --metrics metrics.json --kv-policy "$policy" \
          --kv-pool-mb "$pool" --block-tokens "$block_tokens" --max-new-tokens "$nt" \
          --ignore-eos --temperature 0 "${generate_extra[@]}") ||
          die "sbatch refused $exp/$policy at $r ranks"
        job=${job%%;*} # --parsable prints "id[;cluster]"
        cat >"$run/run.json" <<EOF
{"experiment": "$exp", "policy": "$policy", "ranks": $r, "requests": $n, "job_id": "$job",
 "kv_pool_mb": "$pool", "block_tokens": $block_tokens, "max_new_tokens": $nt,
 "input": "$input", "model": "$model"}
EOF
        echo "$job $run" >>"$out/jobs.txt"
        say "submitted job $job: $exp, $policy, $r ranks, $n requests, pool ${pool} MiB/rank"
      done
    done
  done
  say "$(wc -l <"$out/jobs.txt") jobs in $out/jobs.txt"
}

# job_record ID: "JobId=.. JobState=.. ExitCode=.. Restarts=.." from scontrol, else sacct.
job_record() {
  local line state code
  line=$(scontrol show job -o "$1" 2>/dev/null || true)
  if [[ -n $line ]]; then
    tr ' ' '\n' <<<"$line" | grep -E '^(JobId|JobState|ExitCode|Restarts)=' | tr '\n' ' '
    return 0
  fi
  if command -v sacct >/dev/null; then
    IFS='|' read -r state code < <(sacct -X -n -P -j "$1" -o State,ExitCode 2>/dev/null | tail -n1) || true
    [[ -n ${state:-} ]] && {
      echo "JobId=$1 JobState=${state%% *} ExitCode=$code"
      return 0
    }
  fi
  echo "JobId=$1 JobState=UNKNOWN"
}

wait_jobs() {
  [[ -s $out/jobs.txt ]] || die "no $out/jobs.txt: nothing submitted"
  local ids left last=-1 start=$SECONDS
  ids=$(awk '{print $1}' "$out/jobs.txt" | sort)
  while :; do
    left=$(comm -12 <(squeue -h -o %i 2>/dev/null | sort) <(echo "$ids") | wc -l)
    ((left == 0)) && break
    if ((left != last || (SECONDS - start) % 60 == 0)); then
      say "$left of $(wc -l <<<"$ids") jobs still queued or running ($((SECONDS - start)) s)"
      last=$left
    fi
    sleep 2
  done
  local job run record bad=0 partial=0
  while read -r job run; do
    record=$(job_record "$job")
    echo "$record" >"$run/job.txt"
    if [[ $record == *JobState=COMPLETED* ]]; then
      continue
    elif [[ $record == *ExitCode=1:0* ]]; then
      # infllm's exit 1: some request rejected or failed (the capacity experiment's purpose).
      partial=$((partial + 1))
    else
      say "job $job ($(basename "$run")) did not complete: $record; see $run/slurm.log"
      bad=$((bad + 1))
    fi
  done <"$out/jobs.txt"
  say "all jobs ended after $((SECONDS - start)) s: $partial with some requests rejected or failed (exit 1; expected in capacity runs), $bad broken"
}

collect() {
  python3 "$tools" collect "$out" "$out/scaling.csv"
}

plot() {
  python3 "$repo/scripts/plot_scaling.py" "$out/scaling.csv" --out-dir "$out"
}

case ${1:-all} in
  all)
    submit
    wait_jobs
    collect
    plot
    ;;
  submit) submit ;;
  wait) wait_jobs ;;
  collect) collect ;;
  plot) plot ;;
  *)
    echo "usage: $0 [all|submit|wait|collect|plot]   (settings: see the head of this file)" >&2
    exit 2
    ;;
esac
