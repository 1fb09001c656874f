#!/usr/bin/env python3
"""sweep_tools_test.py: `jobs/sweep_tools.py collect` on a sweep folder whose runs have long
per-step series (a 32-rank run's metrics): the scaling CSV keeps scalars only and reads back with
Python's csv module at its default field limit (131,072 characters), the series are in their
own per-run CSV, and every step is there. Before, the whole per_step list sat in one CSV field
and `jobs/scaling.sh plot` died reading it."""
import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
STEPS = 6000  # about 300,000 characters of per-step JSON


def main():
    sweep = tempfile.mkdtemp(prefix="infllm-sweep-test-")
    try:
        for policy in ("pooled", "local"):
            run = os.path.join(sweep, "runs", f"strong-{policy}-n32")
            os.makedirs(run)
            steps = [{"step": i, "tokens": 3 * i, "bytes": {"kv": 100 * i, "query": i}}
                     for i in range(1, STEPS + 1)]
            with open(os.path.join(run, "metrics.json"), "w") as f:
                json.dump({"requests": 4, "requests_by_status": {"done": 4},
                           "generated_tokens": 400, "wall_s": 2.0, "loans_total": 3,
                           "time_split_s": {"compute": 1.5}, "per_step": steps}, f)
            with open(os.path.join(run, "run.json"), "w") as f:
                json.dump({"experiment": "strong", "policy": policy, "ranks": 32}, f)
        out = os.path.join(sweep, "scaling.csv")
        subprocess.run([sys.executable, os.path.join(ROOT, "jobs", "sweep_tools.py"), "collect",
                        sweep, out], check=True, stdout=subprocess.DEVNULL)
        with open(out, newline="") as f:
            rows = list(csv.DictReader(f))  # raises on a field over the default limit
        assert len(rows) == 2, rows
        for row in rows:
            assert row["tokens_per_s"] == "200.0", row["tokens_per_s"]
            assert row["time_split_s.compute"] == "1.5", row
            assert "per_step" not in row, "a series left in the scaling CSV"
            series = os.path.join(sweep, row["per_step_csv"])
            with open(series, newline="") as f:
                steps = list(csv.DictReader(f))
            assert len(steps) == STEPS, len(steps)
            last = steps[-1]
            assert (last["step"], last["tokens"], last["bytes.kv"]) == (
                str(STEPS), str(3 * STEPS), str(100 * STEPS)), last
        print(f"sweep_tools_test: 2 runs of {STEPS} steps collected; ok")
    finally:
        shutil.rmtree(sweep)


if __name__ == "__main__":
    main()
