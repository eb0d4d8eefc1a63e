"""Config files written for a test, and the problems loading one reports."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from scheduler.config import load_config
from scheduler.errors import ConfigError


def write(tmp_path: Path, text: str, name: str = "cfg.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def problems_of(tmp_path: Path, text: str, **kwargs: Any) -> list[str]:
    """The problem lines of loading ``text`` (it must fail), with the file named cfg.toml."""
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, **kwargs)
    # Problem lines name the file as the caller gave it; make them independent of tmp_path.
    return [line.replace(str(path), "cfg.toml") for line in caught.value.problems]
