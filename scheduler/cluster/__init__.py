"""Cluster mode: several daemons share one job set in PostgreSQL (``[cluster]`` in the config).

Nothing here is imported unless the config has a ``[cluster]`` section, and psycopg is an
optional extra (``pip install 'scheduler[cluster]'``), so the single box loads none of it.

:mod:`.db` connects (the password, the pool, the database clock, the one mapping of an
unreachable database to :class:`~scheduler.errors.Unavailable`); :mod:`.schema` holds the
tables as numbered migrations; :mod:`.codec` turns jobs and runs into rows; :mod:`.cli` and
:mod:`.importer` are ``scheduler cluster init|status|import``. The node's replica, the event
feed, the node's lease, claims, completions and the engine build on these.
"""

from __future__ import annotations

import importlib

from scheduler.errors import ConfigError

#: The optional packages of cluster mode (the ``cluster`` extra).
CLUSTER_MODULES = ("psycopg", "psycopg_pool")
NO_CLUSTER_EXTRA = (
    "cluster mode needs the PostgreSQL driver: pip install 'scheduler[cluster]' "
    "(psycopg and psycopg-pool)"
)


def require_driver() -> None:
    """Raise :class:`ConfigError` (naming the extra to install) when a config with
    ``[cluster]`` meets an install without the driver: a clear refusal, not a traceback."""
    for name in CLUSTER_MODULES:
        try:
            importlib.import_module(name)  # cluster mode loads it next anyway
        except ImportError:
            raise ConfigError([f"cluster: {NO_CLUSTER_EXTRA}"]) from None
