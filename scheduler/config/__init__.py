"""config.toml -> a frozen, fully validated :class:`Config` (see :mod:`.load`), and what a
reload may change (:mod:`.reload`). The public names stay importable from here:
``from scheduler.config import Config, load_config``."""

from scheduler.config.load import (
    AlertsConfig,
    Config,
    FsyncMode,
    PersistenceConfig,
    RateLimit,
    SchedulerConfig,
    ServerConfig,
    StaticJob,
    TaskConfig,
    TaskKind,
    load_config,
    parse_config,
)

__all__ = [
    "AlertsConfig",
    "Config",
    "FsyncMode",
    "PersistenceConfig",
    "RateLimit",
    "SchedulerConfig",
    "ServerConfig",
    "StaticJob",
    "TaskConfig",
    "TaskKind",
    "load_config",
    "parse_config",
]
