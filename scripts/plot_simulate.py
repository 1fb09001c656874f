#!/usr/bin/env python3
"""plot_simulate.py: the figures of a simulated scaling table, from `infllm simulate --csv`.

  scripts/plot_simulate.py SIM.csv [--out-dir DIR] [--title TEXT]

Writes into DIR (default: the CSV's folder):
  sim_throughput_vs_instances.png  generated tokens/s (simulated) against instances, one line
                                   per KV policy, with the ideal line from the smallest run
  sim_context_vs_instances.png     the longest request done (prompt + new tokens) per policy,
                                   and the pooled / local ratio on a second axis
  sim_bytes_moved_vs_instances.png GB moved by kind (push, pull, query, partial) in the pooled
                                   runs, stacked

Uses matplotlib (scripts/plot_env.py: a virtualenv .venv-plot made on first use). The CSV needs
the columns `instances, policy, tok_per_s, longest` and, for bytes, `push_GB, pull_GB, query_GB,
partial_GB`; a CSV without them is refused by name.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot_env import ensure_matplotlib, number, read_rows  # noqa: E402

NAME = "plot_simulate"
REQUIRED = ("instances", "policy", "tok_per_s", "longest")
BYTES = ("push_GB", "pull_GB", "query_GB", "partial_GB")


def read_rows_of(path):
    return read_rows(path, REQUIRED, NAME, "an `infllm simulate --csv` file")


def series(rows, policy, column):
    """(instances, values) of one policy, sorted by instances."""
    points = sorted((int(r["instances"]), number(r[column])) for r in rows if r["policy"] == policy)
    points = [(n, v) for n, v in points if v is not None]
    return [n for n, _ in points], [v for _, v in points]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("csv")
    p.add_argument("--out-dir")
    p.add_argument("--title", default="", help="a line above each figure (model, device)")
    a = p.parse_args()
    if not os.path.isfile(a.csv):
        sys.exit(f"{NAME}: {a.csv}: no such file (`infllm simulate --csv FILE` writes it)")
    rows = read_rows_of(a.csv)
    out_dir = a.out_dir or os.path.dirname(os.path.abspath(a.csv))
    os.makedirs(out_dir, exist_ok=True)
    ensure_matplotlib(__file__, NAME)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = [p for p in ("local", "pooled") if any(r["policy"] == p for r in rows)]
    counts = sorted({int(r["instances"]) for r in rows})
    title = (a.title + "\n") if a.title else ""

    def save(fig, name):
        path = os.path.join(out_dir, name)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
        print(f"{NAME}: wrote {path}", file=sys.stderr)

    fig, ax = plt.subplots(figsize=(6, 4))
    for policy in policies:
        xs, ys = series(rows, policy, "tok_per_s")
        if not xs:
            continue
        ax.plot(xs, ys, marker="o", label=policy)
        if policy == policies[-1]:
            ax.plot(xs, [ys[0] * x / xs[0] for x in xs], linestyle="--", color="grey",
                    label=f"linear from {xs[0]} ({policy})")
    ax.set_xscale("log", base=2)
    ax.set_xticks(counts, [str(n) for n in counts])
    ax.set_xlabel("instances")
    ax.set_ylabel("generated tokens/s (simulated)")
    ax.set_title(title + "throughput against instances")
    ax.legend()
    ax.grid(True, alpha=0.3)
    save(fig, "sim_throughput_vs_instances.png")

    fig, ax = plt.subplots(figsize=(6, 4))
    for policy in policies:
        xs, ys = series(rows, policy, "longest")
        if xs:
            ax.plot(xs, ys, marker="o", label=f"longest done, {policy}")
    ax.set_xscale("log", base=2)
    ax.set_xticks(counts, [str(n) for n in counts])
    ax.set_xlabel("instances")
    ax.set_ylabel("tokens (prompt + new)")
    if "local" in policies and "pooled" in policies:
        lx, ly = series(rows, "local", "longest")
        px, py = series(rows, "pooled", "longest")
        local = dict(zip(lx, ly))
        ratio = [(x, y / local[x]) for x, y in zip(px, py) if local.get(x)]
        if ratio:
            ax2 = ax.twinx()
            ax2.plot([x for x, _ in ratio], [r for _, r in ratio], color="black", linestyle=":",
                     marker="s", label="pooled / local")
            ax2.set_ylabel("context ratio, pooled / local")
            ax2.legend(loc="lower right")
    ax.set_title(title + "the longest context served")
    ax.legend(loc="upper left")
    ax.grid(True, alpha=0.3)
    save(fig, "sim_context_vs_instances.png")

    if all(c in rows[0] for c in BYTES) and "pooled" in policies:
        fig, ax = plt.subplots(figsize=(6, 4))
        xs = sorted({int(r["instances"]) for r in rows if r["policy"] == "pooled"})
        bottom = [0.0] * len(xs)
        positions = list(range(len(xs)))
        for column in BYTES:
            cx, cy = series(rows, "pooled", column)
            by = dict(zip(cx, cy))
            values = [by.get(x, 0.0) for x in xs]
            ax.bar(positions, values, bottom=bottom, label=column.replace("_GB", ""))
            bottom = [b + v for b, v in zip(bottom, values)]
        ax.set_xticks(positions, [str(x) for x in xs])
        ax.set_xlabel("instances")
        ax.set_ylabel("GB moved (pooled)")
        ax.set_title(title + "bytes moved by kind")
        ax.legend()
        ax.grid(True, axis="y", alpha=0.3)
        save(fig, "sim_bytes_moved_vs_instances.png")


if __name__ == "__main__":
    main()
