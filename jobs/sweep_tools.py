#!/usr/bin/env python3
"""sweep_tools.py: the Python half of jobs/scaling.sh (standard library only).

  sweep_tools.py workload OUT.jsonl --requests N --prompt-tokens P [--seed S]
      N synthetic requests of exactly P prompt tokens each (token ids, not text, so lengths are
      exact whatever the tokenizer)
  sweep_tools.py capacity OUT.jsonl --lengths L1,L2,...
      one request per length: the documents of the capacity experiment
  sweep_tools.py collect SWEEP_DIR OUT.csv
      one CSV row per run folder SWEEP_DIR/runs/*/ (run.json, job.txt, metrics.json,
      output.jsonl), fixed columns first, then every scalar metrics key found (nested keys
      joined with '.'); anything missing is an empty cell, never an error. A list in the
      metrics (per_step: one row per engine step) is a series: it goes to its own CSV in the
      run folder, RUN/<key>.csv (one row per element, its keys flattened the same way), and
      the row's `<key>_csv` column names that file. The CSV of a 32-rank run thus stays small
      enough for any CSV reader (Python's csv refuses fields over 131,072 characters).

Token ids are drawn from 3..vocab-1 (ids 0-2 are the micro model's special tokens) with a
small linear congruential generator, so a workload is the same on every machine.
"""

import argparse
import csv
import glob
import json
import math
import os
import sys

FIXED = [
    "experiment", "policy", "ranks", "requests", "done", "generated_tokens", "wall_s",
    "tokens_per_s", "loans_total",
    # derived from the output and the job, not from metrics
    "rejected", "failed", "prompt_tokens", "max_context_tokens", "remote_kv_share",
    "kv_pool_mb", "job_id", "job_state", "exit_code", "restarts",
]


def token_stream(seed, vocab):
    """Deterministic ids in [3, vocab): a 64-bit LCG (Knuth's MMIX constants)."""
    state = (seed * 2654435761 + 1) & 0xFFFFFFFFFFFFFFFF
    while True:
        state = (state * 6364136223846793005 + 1442695040888963407) & 0xFFFFFFFFFFFFFFFF
        yield 3 + (state >> 33) % (vocab - 3)


def write_requests(path, lengths, seed, vocab, prefix):
    with open(path, "w") as f:
        for i, n in enumerate(lengths):
            ids = token_stream(seed * 1000003 + i, vocab)
            tokens = [next(ids) for _ in range(n)]
            f.write(json.dumps({"id": f"{prefix}-{i:05d}", "tokens": tokens}) + "\n")


def cmd_workload(a):
    if a.requests < 1 or a.prompt_tokens < 1:
        sys.exit("sweep_tools workload: --requests and --prompt-tokens must be positive")
    write_requests(a.out, [a.prompt_tokens] * a.requests, a.seed, a.vocab, "req")


def cmd_capacity(a):
    try:
        lengths = [int(x) for x in a.lengths.replace(",", " ").split()]
    except ValueError:
        sys.exit(f"sweep_tools capacity: --lengths {a.lengths!r}: expected whole numbers")
    if not lengths or min(lengths) < 1:
        sys.exit("sweep_tools capacity: --lengths needs positive lengths")
    write_requests(a.out, lengths, a.seed, a.vocab, "doc")


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def read_records(path):
    """Output records; a torn or foreign line is skipped, not fatal."""
    records = []
    try:
        with open(path) as f:
            for line in f:
                try:
                    r = json.loads(line)
                except ValueError:
                    continue
                if isinstance(r, dict):
                    records.append(r)
    except OSError:
        pass
    return records


def flatten(obj, prefix="", lists=None):
    """Scalars by dotted key; a list goes to `lists` (by dotted key) instead, when given."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}.", lists))
    elif isinstance(obj, list):
        if lists is not None:
            lists[prefix[:-1]] = obj
        else:
            out[prefix[:-1]] = json.dumps(obj)
    else:
        out[prefix[:-1]] = obj
    return out


def write_series(run_dir, key, items):
    """RUN/<key>.csv: one row per element of a metrics list, columns its flattened keys."""
    rows = [flatten(x) if isinstance(x, dict) else {"value": x} for x in items]
    columns = []
    for r in rows:
        columns += [c for c in r if c not in columns]
    path = os.path.join(run_dir, f"{key}.csv")
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, restval="")
        w.writeheader()
        w.writerows(rows)
    return path


def num(v):
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def run_row(run_dir):
    meta = read_json(os.path.join(run_dir, "run.json")) or {}
    metrics = read_json(os.path.join(run_dir, "metrics.json")) or {}
    records = read_records(os.path.join(run_dir, "output.jsonl"))
    lists = {}
    flat = flatten(metrics, "", lists) if isinstance(metrics, dict) else {}
    for key, items in lists.items():
        flat[f"{key}_csv"] = os.path.relpath(write_series(run_dir, key, items),
                                             os.path.dirname(os.path.dirname(run_dir)))
    by_status = metrics.get("requests_by_status", {}) if isinstance(metrics, dict) else {}
    if not isinstance(by_status, dict):
        by_status = {}

    def count(status):
        n = num(by_status.get(status))
        return n if n is not None else sum(r.get("status") == status for r in records)

    done = [r for r in records if r.get("status") == "done"]
    generated = num(metrics.get("generated_tokens"))
    if generated is None:
        generated = sum(num(r.get("generated_tokens")) or 0 for r in records)
    wall = num(metrics.get("wall_s"))
    block_tokens = int(meta.get("block_tokens", 16))
    contexts = [(num(r.get("prompt_tokens")) or 0) + (num(r.get("generated_tokens")) or 0)
                for r in done]
    blocks = sum(math.ceil(c / block_tokens) for c in contexts)
    remote = sum(num(r.get("remote_blocks_max")) or 0 for r in done)

    job = {}
    job_txt = os.path.join(run_dir, "job.txt")
    if os.path.exists(job_txt):
        with open(job_txt) as f:
            for part in f.read().split():
                key, _, value = part.partition("=")
                job[key] = value

    row = {
        "experiment": meta.get("experiment", ""),
        "policy": meta.get("policy", ""),
        "ranks": meta.get("ranks", ""),
        "requests": num(metrics.get("requests")) or meta.get("requests", len(records)),
        "done": count("done"),
        "generated_tokens": generated,
        "wall_s": wall if wall is not None else "",
        "tokens_per_s": round(generated / wall, 3) if wall else "",
        "loans_total": metrics.get("loans_total", ""),
        "rejected": count("rejected"),
        "failed": count("failed"),
        "prompt_tokens": metrics.get("prompt_tokens",
                                     sum(num(r.get("prompt_tokens")) or 0 for r in records)),
        "max_context_tokens": max(contexts, default=0),
        "remote_kv_share": round(remote / blocks, 6) if blocks else "",
        "kv_pool_mb": meta.get("kv_pool_mb", ""),
        "job_id": job.get("JobId", meta.get("job_id", "")),
        "job_state": job.get("JobState", ""),
        "exit_code": job.get("ExitCode", ""),
        "restarts": job.get("Restarts", ""),
    }
    extras = {k: v for k, v in flat.items() if k not in row}
    return row, extras


def cmd_collect(a):
    run_dirs = sorted(d for d in glob.glob(os.path.join(a.sweep_dir, "runs", "*")) if os.path.isdir(d))
    if not run_dirs:
        sys.exit(f"sweep_tools collect: no run folders under {a.sweep_dir}/runs")
    rows, extra_keys = [], set()
    for d in run_dirs:
        row, extras = run_row(d)
        row.update(extras)
        extra_keys.update(extras)
        rows.append(row)
    order = {"strong": 0, "weak": 1, "capacity": 2}
    rows.sort(key=lambda r: (order.get(r["experiment"], 9), r["experiment"], r["policy"],
                             int(r["ranks"]) if str(r["ranks"]).isdigit() else 0))
    columns = FIXED + sorted(extra_keys)
    with open(a.out, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, restval="")
        w.writeheader()
        w.writerows(rows)
    shown = ["experiment", "policy", "ranks", "requests", "done", "rejected", "wall_s",
             "tokens_per_s", "loans_total", "max_context_tokens", "remote_kv_share", "job_state"]
    table = [shown] + [[str(r.get(c, "")) for c in shown] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(shown))]
    for line in table:
        print("  " + "  ".join(v.ljust(w) for v, w in zip(line, widths)).rstrip())
    missing = sum(1 for r in rows if r["wall_s"] == "")
    print(f"sweep_tools: {len(rows)} runs -> {a.out}"
          + (f" ({missing} without metrics: see their slurm.log)" if missing else ""))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    w = sub.add_parser("workload")
    w.add_argument("out")
    w.add_argument("--requests", type=int, required=True)
    w.add_argument("--prompt-tokens", type=int, required=True)
    w.add_argument("--seed", type=int, default=1)
    w.add_argument("--vocab", type=int, default=512)
    c = sub.add_parser("capacity")
    c.add_argument("out")
    c.add_argument("--lengths", required=True)
    c.add_argument("--seed", type=int, default=2)
    c.add_argument("--vocab", type=int, default=512)
    k = sub.add_parser("collect")
    k.add_argument("sweep_dir")
    k.add_argument("out")
    a = p.parse_args()
    {"workload": cmd_workload, "capacity": cmd_capacity, "collect": cmd_collect}[a.cmd](a)


if __name__ == "__main__":
    main()
