"""config.toml -> a frozen, fully validated :class:`Config`.

:mod:`.model` holds the records, :mod:`.keys` the check of every key, :mod:`.load` the loader,
:mod:`.reload` what a reload may change. The public names stay importable from here
(``from scheduler.config import Config, load_config``), the task definitions and ``FsyncMode``
included, although they live with the executors and in the vocabulary.
"""

from scheduler.config.load import load_config, parse_config
from scheduler.config.model import (
    AlertsConfig,
    ClusterConfig,
    Config,
    PersistenceConfig,
    SchedulerConfig,
    ServerConfig,
    StaticJob,
    job_defaults,
    static_jobs,
)
from scheduler.executors.tasks import RateLimit, TaskConfig, TaskKind
from scheduler.model import FsyncMode

__all__ = [
    "AlertsConfig",
    "ClusterConfig",
    "Config",
    "FsyncMode",
    "PersistenceConfig",
    "RateLimit",
    "SchedulerConfig",
    "ServerConfig",
    "StaticJob",
    "TaskConfig",
    "TaskKind",
    "job_defaults",
    "load_config",
    "parse_config",
    "static_jobs",
]
