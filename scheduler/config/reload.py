"""What a reload of config.toml changes, and what it cannot change without a restart.

Policy (SPEC "config.toml", issue 6): a reload applies the new file in place, never losing a
running job. A few keys name resources the running process holds and cannot swap safely: the
listening socket (``server.host``, ``server.port``), the open journal (``persistence.dir``,
``fsync``, ``batch_interval``, ``enabled``), and every key of ``[cluster]`` (the database, the
node's id and lease: the pool and the node's registration hold them). A change to one of them is
not an error (the rest of the file is applied); it is reported as "needs a restart" and the
running value stays in force, so the config the process reports is the one it really runs, and
the note is repeated on every reload until the restart happens.

Maintenance windows (``[[maintenance]]``) apply at once: the jobs a removed or shortened window
held are released (see :meth:`scheduler.engine.loop.Engine.set_maintenance`).

Everything here is pure: the daemon and
:meth:`scheduler.runtime.library.Scheduler.apply_config` do the applying.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from typing import Any, Final

import msgspec
from msgspec.structs import asdict, replace

from scheduler.config.model import Config, PersistenceConfig, ServerConfig, static_jobs

SERVER_RESTART_KEYS: Final = ("host", "port", "idle_timeout", "header_timeout", "max_connections")
PERSISTENCE_RESTART_KEYS: Final = ("dir", "fsync", "batch_interval", "enabled")
CLUSTER_RESTART_KEYS: Final = ("url", "password_env", "node_id", "lease", "schema")
#: Sections whose values may be logged as they are; other sections may carry secrets (webhook
#: URLs with a key in them, task headers), so a summary names their changed keys only.
_SHOWN_SECTIONS: Final = ("scheduler", "retry")


def _notes(
    section: str, old: msgspec.Struct, new: msgspec.Struct, keys: Iterable[str]
) -> list[str]:
    notes = []
    for key in keys:
        was, now = getattr(old, key), getattr(new, key)
        if was != now:
            notes.append(
                f"{section}.{key} changed from {_show(was)} to {_show(now)}: this needs a restart"
                f" (systemctl restart scheduler); still using {_show(was)}"
            )
    return notes


def server_notes(old: Config, new: Config) -> list[str]:
    """One "needs a restart" line per changed listening key."""
    return _notes("server", old.server, new.server, SERVER_RESTART_KEYS)


def persistence_notes(old: Config, new: Config) -> list[str]:
    """One "needs a restart" line per changed journal key."""
    return _notes("persistence", old.persistence, new.persistence, PERSISTENCE_RESTART_KEYS)


def cluster_notes(old: Config, new: Config) -> list[str]:
    """One "needs a restart" line per changed ``[cluster]`` key (every one names the database,
    the node or its lease, which the running process holds), or for the section coming or
    going. The URL holds no password (the loader refuses one), so values can be shown."""
    if old.cluster is None and new.cluster is None:
        return []
    if old.cluster is None or new.cluster is None:
        if old.cluster is None:
            change, now, was = "added", "cluster mode", "the single box"
        else:
            change, now, was = "removed", "the single box", "cluster mode"
        return [
            f"[cluster] {change}: moving to {now} needs a restart"
            f" (systemctl restart scheduler); still running as {was}"
        ]
    return _notes("cluster", old.cluster, new.cluster, CLUSTER_RESTART_KEYS)


def keep_cluster(old: Config, new: Config) -> Config:
    """``new`` with the ``[cluster]`` in force (``old``'s): no key of it applies in place."""
    return replace(new, cluster=old.cluster)


def keep_server(old: ServerConfig, new: ServerConfig) -> ServerConfig:
    """``new`` with the listening keys that are in force (``old``'s)."""
    return replace(new, **{key: getattr(old, key) for key in SERVER_RESTART_KEYS})


def keep_persistence(old: PersistenceConfig, new: PersistenceConfig) -> PersistenceConfig:
    """``new`` with the journal keys that are in force (``old``'s)."""
    return replace(new, **{key: getattr(old, key) for key in PERSISTENCE_RESTART_KEYS})


def summarize(old: Config, new: Config) -> str:
    """One line saying what a reload changes, for the log: jobs and tasks by name, settings by
    key (with values only where they cannot be secret). ``"nothing changed"`` if so."""
    parts = [
        *_named("jobs", static_jobs(old), static_jobs(new)),
        *_named("tasks", old.tasks, new.tasks),
        *_named("maintenance", _windows(old), _windows(new)),
    ]
    if (old.cluster is None) != (new.cluster is None):
        parts.append("cluster added" if old.cluster is None else "cluster removed")
    for section in ("server", "scheduler", "retry", "persistence", "alerts", "cluster"):
        was_struct, now_struct = getattr(old, section), getattr(new, section)
        if was_struct is None or now_struct is None:
            continue  # a section that came or went: said above
        was, now = asdict(was_struct), asdict(now_struct)
        for key in sorted(was.keys() | now.keys()):
            if was.get(key) == now.get(key):
                continue
            if section in _SHOWN_SECTIONS:
                parts.append(f"{section}.{key} {_show(was.get(key))} -> {_show(now.get(key))}")
            else:
                parts.append(f"{section}.{key} changed")
    if old.default_timeout != new.default_timeout:
        parts.append(f"retry.timeout {_show(old.default_timeout)} -> {_show(new.default_timeout)}")
    return "; ".join(parts) or "nothing changed"


def _windows(config: Config) -> dict[str, Any]:
    return {window.name: window for window in config.maintenance}


def _named(kind: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    added = sorted(new.keys() - old.keys())
    removed = sorted(old.keys() - new.keys())
    changed = sorted(name for name in old.keys() & new.keys() if old[name] != new[name])
    parts = []
    for verb, names in (("added", added), ("changed", changed), ("removed", removed)):
        if names:
            parts.append(f"{kind} {verb}: {', '.join(names)}")
    return parts


def _show(value: object) -> str:
    if isinstance(value, enum.Enum):
        return repr(value.value)
    if isinstance(value, msgspec.Struct):
        return msgspec.json.encode(value).decode()
    return repr(value)
