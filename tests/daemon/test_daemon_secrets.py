"""The daemon's log never shows a task's own secrets, even in a traceback an executor logs."""

from __future__ import annotations

import io
import logging

from scheduler.config import Config, TaskConfig, TaskKind
from scheduler.daemon.process import log_secrets
from scheduler.observability.logs import setup_logging


def test_task_header_and_env_secrets_are_redacted_from_the_log() -> None:
    config = Config(
        tasks={
            "hook": TaskConfig(
                kind=TaskKind.HTTP,
                url="http://127.0.0.1:9/hook",
                headers={"Authorization": "Bearer hook-credential-771"},
            ),
            "cmd": TaskConfig(
                kind=TaskKind.COMMAND, argv=("true",), env={"DB_PASSWORD": "pw-42-abc"}
            ),
        }
    )
    secrets = log_secrets(config, {"INHERITED_TOKEN": "inherited-999-x"}, "api-token-123456")
    stream = io.StringIO()
    setup_logging(fmt="text", secrets=secrets, stream=stream)
    try:
        logging.getLogger("scheduler.test").error(
            "failed: %s %s %s %s",
            "hook-credential-771",
            "pw-42-abc",
            "inherited-999-x",
            "api-token-123456",
        )
    finally:
        setup_logging(fmt="text", secrets=[])
    text = stream.getvalue()
    for secret in ("hook-credential-771", "pw-42-abc", "inherited-999-x", "api-token-123456"):
        assert secret not in text
    assert text.count("[redacted]") == 4
