"""Two ``bench/all.py`` runs side by side: ``bench/compare.py OLD.json NEW.json``.

Prints, for every figure and size both runs measured, our figure in each and the ratio
NEW / OLD (for rates above 1 is better; for times and bytes below 1 is better).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def load(path: Path) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(path.read_text())
    return dict(doc["figures"])


def compare(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    lines = [f"{'figure':<48} {'jobs':>10} {'old':>12} {'new':>12} {'new/old':>8}"]
    for figure, rows in new.items():
        for n, row in rows.items():
            before = old.get(figure, {}).get(n, {}).get("ours")
            after = row.get("ours")
            if before is None or after is None:
                continue
            ratio = f"{after / before:>7.2f}x" if before else f"{'':>8}"
            lines.append(f"{figure:<48} {int(n):>10,} {before:>12,.1f} {after:>12,.1f} {ratio}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    opts = parser.parse_args()
    print("\n".join(compare(load(opts.old), load(opts.new))))


if __name__ == "__main__":
    main()
