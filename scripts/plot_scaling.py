#!/usr/bin/env python3
"""plot_scaling.py: the figures of the scaling sweep, from the CSV that jobs/scaling.sh writes.

  scripts/plot_scaling.py SCALING.csv [--out-dir DIR]

Writes into DIR (default: the CSV's folder):
  throughput_vs_ranks.png    generated tokens/s against ranks, strong and weak scaling, one
                             line per KV policy, with the ideal line from the smallest run
  max_context_vs_ranks.png   capacity experiment: the longest context (prompt + generated
                             tokens) served, against ranks, per policy
  remote_share_vs_ranks.png  share of the served requests' KV blocks that lived on other
                             ranks at their peak (remote_kv_share), per experiment, pooled

Uses matplotlib. When this Python lacks it, the script makes a virtualenv .venv-plot at the
repository root (python3 -m venv; matplotlib from PyPI, pinned) and runs itself again there.
Runs that failed (empty cells) are left out of the lines, not plotted as zero.
"""

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from plot_env import ensure_matplotlib, number, read_rows  # noqa: E402


def read_rows_of(path):
    return read_rows(path, ("experiment", "policy", "ranks"), "plot_scaling",
                     "a jobs/scaling.sh CSV")


def series(rows, experiment, policy, column):
    """(ranks, values) of one line, sorted by ranks, runs without a value left out."""
    points = []
    for r in rows:
        if r["experiment"] != experiment or r["policy"] != policy:
            continue
        x, y = number(r["ranks"]), number(r.get(column))
        if x is not None and y is not None:
            points.append((x, y))
    points.sort()
    return [p[0] for p in points], [p[1] for p in points]


STYLE = {"pooled": dict(marker="o", color="tab:blue"), "local": dict(marker="s", color="tab:orange")}


def plain_numbers(ax):
    """Tick labels as plain numbers (136, 4096), not powers (2^7) on log axes."""
    from matplotlib.ticker import ScalarFormatter
    f = ScalarFormatter()
    f.set_scientific(False)
    ax.yaxis.set_major_formatter(f)


def rank_axis(ax, rows):
    ranks = sorted({int(number(r["ranks"])) for r in rows if number(r["ranks"])})
    ax.set_xscale("log", base=2)
    ax.set_xticks(ranks)
    ax.set_xticklabels([str(r) for r in ranks])
    ax.set_xlabel("ranks")
    ax.grid(True, alpha=0.3)


def plot_throughput(plt, rows, out_dir):
    experiments = [e for e in ("strong", "weak") if any(r["experiment"] == e for r in rows)]
    if not experiments:
        return None
    fig, axes = plt.subplots(1, len(experiments), figsize=(6 * len(experiments), 4.5), squeeze=False)
    for ax, exp in zip(axes[0], experiments):
        for policy in ("pooled", "local"):
            x, y = series(rows, exp, policy, "tokens_per_s")
            if x:
                ax.plot(x, y, label=policy, **STYLE[policy])
        x, y = series(rows, exp, "local", "tokens_per_s")
        if not x:
            x, y = series(rows, exp, "pooled", "tokens_per_s")
        if x:
            ax.plot(x, [y[0] * xi / x[0] for xi in x], "k--", lw=1, label="ideal (linear)")
        title = "strong scaling (fixed workload)" if exp == "strong" else "weak scaling (fixed work per rank)"
        ax.set_title(title)
        ax.set_ylabel("generated tokens / s")
        ax.set_yscale("log")
        plain_numbers(ax)
        rank_axis(ax, rows)
        ax.legend()
    return save(plt, fig, out_dir, "throughput_vs_ranks.png")


def plot_capacity(plt, rows, out_dir):
    if not any(r["experiment"] == "capacity" for r in rows):
        return None
    fig, ax = plt.subplots(figsize=(6, 4.5))
    for policy in ("pooled", "local"):
        x, y = series(rows, "capacity", policy, "max_context_tokens")
        if x:
            ax.plot(x, y, label=policy, **STYLE[policy])
    ax.set_title("capacity: longest document served")
    ax.set_ylabel("max context (prompt + generated tokens)")
    ax.set_yscale("log", base=2)
    plain_numbers(ax)
    rank_axis(ax, rows)
    ax.legend()
    return save(plt, fig, out_dir, "max_context_vs_ranks.png")


def plot_remote_share(plt, rows, out_dir):
    experiments = [e for e in ("strong", "weak", "capacity") if any(r["experiment"] == e for r in rows)]
    if not experiments:
        return None
    fig, ax = plt.subplots(figsize=(6, 4.5))
    markers = {"strong": "o", "weak": "^", "capacity": "D"}
    for exp in experiments:
        x, y = series(rows, exp, "pooled", "remote_kv_share")
        if x:
            ax.plot(x, [100 * v for v in y], marker=markers[exp], label=f"{exp}, pooled")
    ax.set_title("KV blocks held on other ranks (peak, per request)")
    ax.set_ylabel("remote share of KV blocks (%)")
    ax.set_ylim(bottom=0)
    rank_axis(ax, rows)
    ax.legend()
    return save(plt, fig, out_dir, "remote_share_vs_ranks.png")


def save(plt, fig, out_dir, name):
    path = os.path.join(out_dir, name)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("csv")
    p.add_argument("--out-dir", default=None)
    a = p.parse_args()
    if not os.path.isfile(a.csv):
        sys.exit(f"plot_scaling: {a.csv}: no such file (jobs/scaling.sh collect writes it)")
    rows = read_rows_of(a.csv)
    out_dir = a.out_dir or os.path.dirname(os.path.abspath(a.csv))
    os.makedirs(out_dir, exist_ok=True)

    ensure_matplotlib(__file__, "plot_scaling")
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    for fn in (plot_throughput, plot_capacity, plot_remote_share):
        path = fn(plt, rows, out_dir)
        if path:
            print(f"plot_scaling: wrote {path}")


if __name__ == "__main__":
    main()
