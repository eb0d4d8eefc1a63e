"""The scheduler's tests. Fixtures are in conftest.py, helpers in plain modules (fakes.py,
daemon_proc.py, polling.py, and harness.py in a folder), never in a ``test_*.py``."""

from pathlib import Path

#: The repository's root: where README.md, config.toml and scheduler/ are.
ROOT = Path(__file__).resolve().parents[1]
