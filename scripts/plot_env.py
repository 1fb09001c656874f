"""plot_env.py: what the project's plotting scripts (plot_scaling.py, plot_simulate.py) share:
matplotlib, and reading their CSV.

When this Python lacks matplotlib, ensure_matplotlib makes a virtualenv .venv-plot at the
repository root (python3 -m venv; matplotlib from PyPI, pinned) and runs the calling script
again there, with the same arguments.
"""

import csv
import math
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VENV = os.path.join(REPO, ".venv-plot")
MATPLOTLIB = "matplotlib==3.9.2"


def ensure_matplotlib(script, name):
    """Import matplotlib, or re-run `script` (its path) inside .venv-plot; `name` is for messages."""
    try:
        import matplotlib  # noqa: F401
        return
    except ImportError:
        pass
    if os.environ.get("INFLLM_PLOT_IN_VENV") == "1":
        sys.exit(f"{name}: matplotlib still missing inside {VENV}; remove it and run again")
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python):
        print(f"{name}: creating {VENV} with {MATPLOTLIB} (once)", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
    probe = subprocess.run([python, "-c", "import matplotlib"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        MATPLOTLIB], check=True)
    env = dict(os.environ, INFLLM_PLOT_IN_VENV="1")
    os.execve(python, [python, os.path.abspath(script)] + sys.argv[1:], env)


def number(text):
    """A CSV cell as a finite float, or None (empty, not a number, infinite)."""
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def read_rows(path, required, name, what):
    """The CSV's rows; exits naming the file when it has none or lacks a `required` column.
    `name` is the script's, `what` says which tool writes such a CSV."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        sys.exit(f"{name}: {path} has no rows")
    for column in required:
        if column not in rows[0]:
            sys.exit(f"{name}: {path} has no '{column}' column (not {what}?)")
    return rows
