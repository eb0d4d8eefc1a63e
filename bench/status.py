"""``GET /api/scheduler`` against a bare aiohttp JSON handler, with wrk, in the same run.

    .venv/bin/python bench/status.py                  # 100,000 jobs, 5 s per measurement
    .venv/bin/python bench/status.py --jobs 1000000   # the issue's figure (the fill is slow)

1. Builds a state of ``--jobs`` jobs through the library and starts ``scheduler run`` on it
   (the same state and daemon as ``bench/api.py``: loopback, a token configured, a few command
   jobs running).
2. Fetches the card once, then starts a bare aiohttp app whose one handler answers
   ``web.json_response`` of that same document: the ceiling for this route on this machine now.
3. Measures both with the same wrk settings, alternating bare and daemon ``--rounds`` times so
   that a noisy neighbour hurts both alike, and prints each one's median run (req/s, p50, p99,
   and the server's CPU time per request, which a busy machine disturbs far less than the
   rate) and the ratio of the medians.

Target (issue 14): daemon >= 90 % of the bare handler's req/s, p99 <= 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
import time
import urllib.request
from pathlib import Path

from api import Daemon, fill, median4, report_cpu, start_script, write_config, wrk_cpu

BARE = """
import json, sys
from aiohttp import web
DOC = json.loads(sys.argv[2])
async def handler(request):
    return web.json_response(DOC)
app = web.Application()
app.router.add_get("/", handler)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)
"""

Figures = tuple[float, float, float, float]


def compare(bare: tuple[int, str], card: tuple[int, str], args: argparse.Namespace) -> None:
    """``bare`` and ``card`` are (server pid, URL)."""

    def measure(server: tuple[int, str]) -> Figures:
        pid, url = server
        return wrk_cpu(pid, url, args.seconds, connections=args.connections, auth=False)

    measure(bare)  # warm-up, not reported
    measure(card)
    bares: list[Figures] = []
    cards: list[Figures] = []
    for _ in range(args.rounds):
        bares.append(measure(bare))
        cards.append(measure(card))
    for name, runs in (("bare aiohttp JSON handler", bares), ("GET /api/scheduler", cards)):
        print(f"  {name}: " + ", ".join(f"{r[0]:,.0f}" for r in runs) + " req/s")
    label = f"({args.connections} connections, median of {args.rounds})"
    report_cpu(f"bare aiohttp JSON handler {label}", median4(bares), "(the ceiling)")
    report_cpu(f"GET /api/scheduler {label}", median4(cards), "target >= 90 %, p99 <= 5 ms")
    print(f"  ratio: {median4(cards)[0] / median4(bares)[0]:.1%} of the bare handler")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        config, port = write_config(root, "never")
        print(f"state with {args.jobs:,} jobs:")
        asyncio.run(fill(config, args.jobs))
        daemon = Daemon(config, port)
        try:
            time.sleep(1.0)  # let the sleepers start
            card = daemon.url + "/api/scheduler"
            with urllib.request.urlopen(card, timeout=5) as resp:
                document = resp.read().decode()
            print(f"  card: {len(document)} bytes; daemon pid {daemon.proc.pid}")
            bare, url = start_script(BARE, json.dumps(json.loads(document)))
            try:
                compare((bare.pid, url), (daemon.proc.pid, card), args)
            finally:
                bare.terminate()
                bare.wait(timeout=10)
        finally:
            daemon.stop()


if __name__ == "__main__":
    main()
