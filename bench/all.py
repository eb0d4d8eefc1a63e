"""``make bench``: how cost grows with the number of jobs, ours beside APScheduler 3.11.

    .venv/bin/python bench/all.py                       # 10k, 100k and 1M jobs (many minutes)
    .venv/bin/python bench/all.py --sizes 10000,100000  # quicker
    .venv/bin/python bench/compare.py bench/results/A.json bench/results/B.json

For each figure, one table: a row per size, our figure, APScheduler's where it can do the same
work (through its own API, in memory, in the same run) and the ratio. Every part runs in a
fresh subprocess of ``bench/engine.py`` so memory figures do not mix. Figures:

- add rate (jobs/s) and memory per pending job (bytes, by RSS) at N jobs;
- due rate: N jobs due now, completed per second (and, up to 100k, with the journal on);
- start lateness of 1,000 runs due across 2 s with N other jobs pending (min, p50, p99,
  max: min below 0 would be a run started before its instant);
- ``GET /api/scheduler`` and ``GET /api/jobs?limit=50`` latency (p50, p99) with N jobs.

An operation that should be O(1) or O(log n) in the number of jobs shows it here: its figure
stays flat down a table. The figures are also written as JSON to ``bench/results/`` (one file
per run, named by its UTC time) so that two runs can be compared with ``bench/compare.py``.
Daemon restart with 1M jobs is measured by ``bench/persistence.py`` (it needs a state
directory on disk, not an in-memory scheduler).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
#: Runs timed for the lateness figure, and the seconds they are spread over.
LATE_RUNS, LATE_SPAN = 1_000, 2.0
#: Sequential requests timed for the latency figures.
REQUESTS = 1_000
#: APScheduler is left out of a part at sizes where it would take too long to be useful.
APS_DUE_MAX = 100_000


def part(name: str, *args: Any) -> dict[str, float]:
    """One part of bench/engine.py in a fresh interpreter; its figures."""
    out = subprocess.run(
        [sys.executable, str(HERE / "engine.py"), "--part", name, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=3600,
    )
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"bench part {name} {args} failed")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def measure(sizes: list[int]) -> dict[str, dict[str, dict[str, float | None]]]:
    """figure -> size -> {"ours": ..., "aps": ...}."""
    figures: dict[str, dict[str, dict[str, float | None]]] = {}

    def put(figure: str, n: int, ours: float, aps: float | None) -> None:
        figures.setdefault(figure, {})[str(n)] = {"ours": ours, "aps": aps}

    for n in sizes:
        print(f"... {n:,} jobs", file=sys.stderr, flush=True)
        a, pa = part("add_ours", n), part("add_aps", n)
        put("add rate (jobs/s)", n, a["per_s"], pa["per_s"])
        put("memory per pending job (bytes)", n, a["bytes_per_job"], pa["bytes_per_job"])
        d = part("due_ours", n)
        pd = part("due_aps", n) if n <= APS_DUE_MAX else None
        put("due now, completed (runs/s)", n, d["per_s"], pd["per_s"] if pd else None)
        if n <= APS_DUE_MAX:  # the same journalled (fsync = batch); the creates take a while
            b = part("due_ours_batch", n)
            put("due now, journalled with fsync = batch (runs/s)", n, b["per_s"], None)
        lo = part("lateness_ours", LATE_RUNS, LATE_SPAN, n)
        lp = part("lateness_aps", LATE_RUNS, LATE_SPAN, n)
        for key in ("min_ms", "p50_ms", "p99_ms", "max_ms"):
            put(f"start lateness {key[:-3]} (ms), N other jobs pending", n, lo[key], lp[key])
        for path in ("/api/scheduler", "/api/jobs?limit=50"):
            got = part("status_ours", n, REQUESTS, path)
            label = f"GET {path}"
            put(f"{label} p50 (ms)", n, got["p50_ms"], None)
            put(f"{label} p99 (ms)", n, got["p99_ms"], None)
    return figures


def table(figure: str, rows: dict[str, dict[str, float | None]]) -> str:
    lines = [figure, f"  {'jobs':>10} {'ours':>14} {'APScheduler':>14} {'ratio':>8}"]
    for n, row in rows.items():
        ours, aps = row["ours"], row["aps"]
        peer = f"{aps:>14,.1f}" if aps is not None else f"{'-':>14}"
        ratio = f"{ours / aps:>7.2f}x" if ours is not None and aps else f"{'':>8}"
        lines.append(f"  {int(n):>10,} {ours or 0:>14,.1f} {peer} {ratio}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", default="10000,100000,1000000", help="job counts, comma-separated"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="the JSON file (default: results/<UTC time>.json)"
    )
    opts = parser.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",") if s]
    started = time.monotonic()
    figures = measure(sizes)
    for figure, rows in figures.items():
        print(table(figure, rows), end="\n\n")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = opts.out or RESULTS / f"{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "when": stamp,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": len(os.sched_getaffinity(0)),
        "seconds": round(time.monotonic() - started, 1),
        "figures": figures,
    }
    out.write_text(json.dumps(doc, indent=1) + "\n")
    print(f"figures written to {out}")


if __name__ == "__main__":
    main()
