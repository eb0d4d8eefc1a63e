"""The composition root: config -> objects, recovery, the engine and the web server, signals.

Shutdown is bounded and ordered: stop admitting changes (503) and report ``isRunning: false``,
stop listening, close event streams, let running jobs finish for ``shutdown_grace``, cancel what
is left and journal its outcome, write a final snapshot, exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys

from aiohttp import web

from scheduler.api.app import create_app
from scheduler.api.keys import DaemonState, Phase
from scheduler.api.security import check_bind, read_token
from scheduler.config import Config, load_config
from scheduler.errors import ConfigError, CorruptState, PersistenceError
from scheduler.ids import encode
from scheduler.library import Scheduler
from scheduler.logs import log_run, setup_logging
from scheduler.model import Job, JobStatus, Run
from scheduler.sdnotify import Notifier, watchdog_interval, watchdog_loop

log = logging.getLogger("scheduler.daemon")

EX_CONFIG = 78
EX_DATAERR = 65


class Daemon:
    def __init__(
        self, config: Config, *, environ: dict[str, str] | None = None, token: str | None = None
    ) -> None:
        self.config = config
        self.token = token
        self.environ = dict(os.environ if environ is None else environ)
        self.sched = Scheduler(config, environ=self.environ)
        self.state = DaemonState()
        self.notifier = Notifier.from_environment(self.environ)
        self._stop = asyncio.Event()
        self.sched.engine.listeners.append(self._log_run)

    def _log_run(self, job: Job, run: Run) -> None:
        log_run(
            log,
            job_id=encode(job.id),
            workflow=job.display_name,
            outcome=run.outcome,
            duration=run.duration,
            lateness=run.lateness,
            error=run.error or run.reason,
            attempt=run.attempt,
            task=job.task,
        )

    def request_stop(self) -> None:
        self._stop.set()

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)
        server = self.config.server
        app = create_app(self.sched, self.state, token=self.token)
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        try:
            await self.sched.start()
            self.state.loaded = True
            site = web.TCPSite(runner, server.host, server.port, reuse_address=True)
            await site.start()
            self.state.phase = Phase.RUNNING
            log.info(
                "scheduler listening on http://%s:%d with %d jobs",
                server.host,
                server.port,
                len(self.sched.store),
            )
            self.notifier.ready(self._status_line())
            async with asyncio.TaskGroup() as group:
                interval = watchdog_interval(self.environ)
                pinger = (
                    group.create_task(watchdog_loop(self.notifier, interval)) if interval else None
                )
                await self._stop.wait()
                if pinger is not None:
                    pinger.cancel()
            await self._shutdown(runner)
        finally:
            await runner.cleanup()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)
        return 0

    async def _shutdown(self, runner: web.AppRunner) -> None:
        log.info("stopping: running jobs get %ss to finish", self.config.scheduler.shutdown_grace)
        self.state.phase = Phase.STOPPING
        self.notifier.stopping()
        self.sched.hub.close_all()
        await runner.shutdown()
        await self.sched.stop()
        log.info("stopped")

    def _status_line(self) -> str:
        counts = self.sched.store.counts
        return (
            f"{len(self.sched.store)} jobs: {counts[JobStatus.PENDING]} pending, "
            f"{counts[JobStatus.RUNNING]} running, {counts[JobStatus.FAILED]} failed"
        )


def run_command(config_path: str) -> int:
    """``scheduler run -c FILE``: exit 78 on a bad config, 65 on damaged state."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EX_CONFIG
    try:
        token = read_token(os.environ, config.server.token_env)
        check_bind(config.server.host, token)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EX_CONFIG
    if config.server.token_env:
        os.environ.pop(config.server.token_env, None)  # nothing started from here inherits it
    setup_logging(fmt=config.scheduler.log_format, secrets=[token] if token else [])
    # A file-size limit must fail a write with EFBIG (answered 507), not kill the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        return asyncio.run(Daemon(config, token=token).run())
    except CorruptState as exc:
        log.critical("state is damaged, not starting: %s", exc.message)
        return EX_DATAERR
    except PersistenceError as exc:
        log.critical("cannot use the state directory: %s", exc.message)
        return EX_CONFIG
    except OSError as exc:
        log.critical("cannot start: %s", exc)
        return 1
    except KeyboardInterrupt:
        return 0
