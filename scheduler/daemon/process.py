"""The composition root: config -> objects, recovery, the engine and the web server, signals.

Start: bind the port first (a port in use fails at once, before any state is touched; until
state is loaded the API answers 503), recover state, start the engine and the alerter, then
tell systemd ``READY=1``. The watchdog pings (``WATCHDOG=1``, from the event loop itself) run
from the first moment to the last, recovery and the shutdown drain included; a long recovery
asks systemd for more start time (``EXTEND_TIMEOUT_USEC``).

SIGHUP reloads config.toml (``RELOADING=1`` ... ``READY=1``, whatever the result): the file is
read and validated whole; any problem keeps the previous config in force and is logged with its
key path, shown in ``STATUS=`` and counted in ``scheduler_config_reloads_total``. A valid file is
applied in place (see :meth:`Daemon.reload`); a changed listening address is logged as needing
a restart.

Shutdown (SIGTERM, SIGINT) is bounded and ordered: ``STOPPING=1``; stop admitting changes (503)
and report ``isRunning: false``; close event streams; stop listening (requests in progress get
a few seconds); let running jobs finish for ``shutdown_grace``, cancel what is left and journal
its outcome; write a final snapshot; flush alerts; exit 0.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import resource
import signal
import sys
from collections.abc import Mapping
from typing import Any, Final

from aiohttp import web
from msgspec.structs import replace

from scheduler.api.app import create_app
from scheduler.api.keys import SETTINGS, DaemonState, Phase
from scheduler.api.metrics import METRICS
from scheduler.api.security import check_bind, read_token
from scheduler.api.server import BACKLOG, GuardedRunner, ServerLimits, throttle_accept_errors
from scheduler.config.load import Config, load_config
from scheduler.config.reload import keep_server, server_notes, summarize
from scheduler.daemon.sdnotify import Notifier, watchdog_interval, watchdog_loop
from scheduler.errors import ConfigError, CorruptState, PersistenceError, SchedulerError
from scheduler.events import RunRecorded
from scheduler.executors.factory import task_secrets
from scheduler.ids import encode
from scheduler.model import JobStatus
from scheduler.observability.alerts import Alerter
from scheduler.observability.logs import log_run, setup_logging
from scheduler.observability.metrics import SchedulerMetrics
from scheduler.runtime.library import Scheduler

log = logging.getLogger("scheduler.daemon")

EX_CONFIG = 78
EX_DATAERR = 65
EX_SOFTWARE = 70  # a long-lived task died: exit non-zero so systemd restarts the daemon

#: ``STATUS=`` is refreshed this often (seconds) when the counts changed, and at every event.
STATUS_EVERY: Final = 10.0
#: A recovery longer than this asks systemd for ``EXTEND_BY`` more start time, and again each
#: ``EXTEND_EVERY`` while it goes on; a wedged loop asks nothing and still times out.
EXTEND_AFTER: Final = 5.0
EXTEND_EVERY: Final = 10.0
EXTEND_BY: Final = 30.0
#: ``gc.set_threshold`` once running (see :func:`settle_collector`); the default is (700, 10, 10).
COLLECTOR_THRESHOLDS: Final = (10_000, 10, 10)


class Daemon:
    def __init__(
        self,
        config: Config,
        *,
        environ: dict[str, str] | None = None,
        token: str | None = None,
        status_every: float = STATUS_EVERY,
        limits: ServerLimits | None = None,
    ) -> None:
        self.config = config
        self.token = token
        self.limits = limits or server_limits(config)
        # Kept whole (the token variable included) so a reload can read the token again;
        # the library keeps that variable out of every job's environment.
        self.environ = dict(os.environ if environ is None else environ)
        self.sched = Scheduler(config, environ=self.environ)
        self.engine_failure: BaseException | None = None
        self.sched.on_engine_exit = self._engine_died
        self.state = DaemonState()
        self.notifier = Notifier.from_environment(self.environ)
        sched = self.sched
        self.alerter = Alerter(
            config.alerts, clock=sched.clock, engine=sched.engine, hub=sched.hub, store=sched.store
        )
        sched.add_service(self.alerter, name="alert sender")  # in the scheduler's task group
        self.status_every = status_every
        self.reloads = {"success": 0, "failure": 0}
        self._status_note: str | None = None
        self._stop_requested = False
        self._reload_pending = False
        self._wake = asyncio.Event()
        self._app: web.Application | None = None
        self._listening = False
        sched.hub.subscribe([RunRecorded], self._log_run)

    def _log_run(self, event: RunRecorded) -> None:
        job, run = event.job, event.run
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

    # --- signals -------------------------------------------------------------------------

    def request_stop(self) -> None:
        self._stop_requested = True
        self._wake.set()

    def _engine_died(self, error: BaseException | None) -> None:
        self.engine_failure = error or RuntimeError("the engine stopped")
        self.request_stop()

    def request_reload(self) -> None:
        """SIGHUP: reload once the daemon is running (several signals make one reload)."""
        self._reload_pending = True
        self._wake.set()

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        # HUP is caught from the first moment: its default action would kill the daemon.
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop)

    @staticmethod
    def _remove_signals(loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)

    # --- life cycle ----------------------------------------------------------------------

    async def run(self) -> int:
        """Serve until SIGTERM/SIGINT; 0 after a clean stop. A failure to start (port in
        use, damaged state) is raised as itself once the background tasks are stopped."""
        loop = asyncio.get_running_loop()
        self._install_signals(loop)
        throttle_accept_errors(loop)
        runner = self._runner()
        await runner.setup()
        failure: SchedulerError | OSError | None = None
        try:
            async with asyncio.TaskGroup() as group:
                interval = watchdog_interval(self.environ)
                pinger = (
                    group.create_task(watchdog_loop(self.notifier, interval)) if interval else None
                )
                try:
                    await self._serve(group, runner)
                except (SchedulerError, OSError) as exc:
                    failure = exc  # raised below as itself, not inside an ExceptionGroup
                finally:
                    if pinger is not None:
                        pinger.cancel()
        finally:
            await self._stop_listening(runner)
            self._remove_signals(loop)
            self.notifier.close()
        if failure is not None:
            raise failure
        return EX_SOFTWARE if self.engine_failure is not None else 0

    def _runner(self) -> GuardedRunner:
        """The app behind the bounded HTTP edge (see :mod:`scheduler.api.server`)."""
        limits = self.limits
        self._app = create_app(
            self.sched,
            self.state,
            token=self.token,
            max_streams=limits.max_streams,
            cors_routes=limits.cors_routes,
        )
        runner = GuardedRunner(
            self._app,
            limits=limits,
            nofile=soft_nofile(),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=5.0,
        )
        cap = runner.guard.max_connections
        if cap < limits.max_connections:
            log.warning(
                "server.max_connections %d lowered to %d to stay under the open-file limit"
                " (raise LimitNOFILE to allow more)",
                limits.max_connections,
                cap,
            )
        return runner

    async def _serve(self, group: asyncio.TaskGroup, runner: web.AppRunner) -> None:
        server = self.config.server
        await self.sched.claim_state()  # one daemon per state directory: refused before the port
        site = web.TCPSite(runner, server.host, server.port, reuse_address=True, backlog=BACKLOG)
        await site.start()
        self._listening = True
        await self._recover(group)
        self.state.phase = Phase.RUNNING
        log.info(
            "scheduler listening on http://%s:%d with %d jobs",
            server.host,
            server.port,
            len(self.sched.store),
        )
        self.notifier.ready(self._status_line())
        status = group.create_task(self._status_loop()) if self.notifier.enabled else None
        while not self._stop_requested:
            await self._wake.wait()
            self._wake.clear()
            if self._reload_pending and not self._stop_requested:
                self._reload_pending = False
                await self.reload()
        await self._shutdown(runner)
        if status is not None:
            status.cancel()

    async def _recover(self, group: asyncio.TaskGroup) -> None:
        extender = group.create_task(self._extend_start()) if self.notifier.enabled else None
        try:
            await self.sched.start()
        finally:
            if extender is not None:
                extender.cancel()
        settle_collector()
        self.state.loaded = True

    async def _extend_start(self) -> None:
        """While recovery runs, keep ``TimeoutStartSec`` from cutting it short."""
        await asyncio.sleep(EXTEND_AFTER)
        while True:
            self.notifier.notify(
                EXTEND_TIMEOUT_USEC=int(EXTEND_BY * 1_000_000),
                STATUS=f"recovering state: {len(self.sched.store)} jobs loaded so far",
            )
            await asyncio.sleep(EXTEND_EVERY)

    async def _shutdown(self, runner: web.AppRunner) -> None:
        grace = self.sched.config.scheduler.shutdown_grace
        running = self.sched.store.counts[JobStatus.RUNNING]
        log.info("stopping: %d running jobs get %gs to finish", running, grace)
        self.state.phase = Phase.STOPPING
        self.notifier.notify(
            STOPPING=1, STATUS=f"stopping: {running} running jobs get {grace:g}s to finish"
        )
        self.sched.hub.close_all()
        await self._stop_listening(runner)
        await self.sched.stop()
        log.info("stopped")

    async def _stop_listening(self, runner: web.AppRunner) -> None:
        """Close the listener and end requests in progress (once; safe to call again)."""
        if self._app is None:
            return
        self._app = None
        self._listening = False
        await runner.cleanup()

    # --- status --------------------------------------------------------------------------

    def _status_line(self) -> str:
        counts = self.sched.store.counts
        line = (
            f"{len(self.sched.store)} jobs: {counts[JobStatus.PENDING]} pending, "
            f"{counts[JobStatus.RUNNING]} running, {counts[JobStatus.FAILED]} failed"
        )
        if self.sched.store.paused:
            line += "; paused"
        return f"{line}; {self._status_note}" if self._status_note else line

    async def _status_loop(self) -> None:
        """``STATUS=`` for ``systemctl status``, throttled: sent only when it changed."""
        last = None
        while True:
            await self.sched.clock.sleep(self.status_every)
            line = self._status_line()
            if line != last:
                self.notifier.status(line)
                last = line

    # --- reload --------------------------------------------------------------------------

    async def reload(self) -> bool:
        """Re-read the config file and apply it; False (old config kept) on any problem.

        Applied in place: static jobs (added, changed from now, removed, by name), tasks,
        defaults, limits, intervals, retention, history, alerts, CORS origins, the API token
        (read again from the credential file or the variable) and the log format. A changed
        ``server.host``/``server.port`` (or journal setting) is logged as needing a restart and
        the running value stays. Running jobs and jobs created over the API are never touched.
        """
        self.notifier.reloading()
        try:
            ok = await self._reload()
        except Exception as exc:  # a reload, whatever goes wrong, never takes the daemon down
            log.exception("reload failed unexpectedly")
            ok = self._reload_failed([f"{type(exc).__name__}: {exc}"])
        finally:
            self.notifier.ready(self._status_line())
        result = "success" if ok else "failure"
        self.reloads[result] += 1
        metrics = self._metrics()
        if metrics is not None:
            metrics.config_reloads.labels(result).inc()
        return ok

    async def _reload(self) -> bool:
        path = self.config.path
        if path is None:
            return self._reload_failed(["the daemon was not started from a config file"])
        try:
            new = load_config(path)
            token = read_token(self.environ, new.server.token_env)
            check_bind(self.config.server.host, token)
        except ConfigError as exc:
            return self._reload_failed(exc.problems)
        old = self.config
        notes = server_notes(old, new)
        new = replace(new, server=keep_server(old.server, new.server))
        try:
            notes += await self.sched.apply_config(new)
        except SchedulerError as exc:
            # Validation passed, so only the disk can refuse (full): what was applied stays.
            return self._reload_failed([f"{path}: could not apply the new config: {exc.message}"])
        new = self.sched.config
        summary = summarize(old, new)
        if token != self.token:
            rest = "" if summary == "nothing changed" else f"; {summary}"
            summary = f"API token replaced{rest}"
        self._apply_daemon(new, token)
        self.config = new
        for note in notes:
            log.warning("reload: %s", note)
        self._status_note = (
            "reloaded; some changes need a restart (see the journal)" if notes else None
        )
        log.info("reloaded %s: %s", path, summary)
        return True

    def _reload_failed(self, problems: list[str]) -> bool:
        for problem in problems:
            log.error("reload failed: %s", problem)
        log.error(
            "reload failed with %d problem(s): still running on the previous config; fix the"
            " file (scheduler check -c %s) and reload again",
            len(problems),
            self.config.path,
        )
        self._status_note = (
            f"last reload failed ({len(problems)} problems, see the journal);"
            " running on the previous config"
        )
        return False

    def _apply_daemon(self, new: Config, token: str | None) -> None:
        """The parts of a reload that live outside the library: API guard, alerts, logs."""
        limits = server_limits(new)  # the stream cap and CORS routes apply at once
        self._update_settings(
            token=token,
            cors_origins=tuple(new.server.cors_origins),
            cors_routes=limits.cors_routes,
            max_streams=limits.max_streams,
        )
        self.alerter.reconfigure(new.alerts)
        # The old token stays redacted too: it may still be in a client's retry loop. Tasks'
        # secrets (headers, env) are re-read: a reload may have changed them.
        secrets = log_secrets(new, self.environ, token, self.token)
        setup_logging(fmt=new.scheduler.log_format, secrets=secrets)
        self.token = token

    def _update_settings(self, **changes: Any) -> None:
        app = self._app
        if app is None:
            return
        settings = app[SETTINGS]
        if changes.get("cors_origins") and not settings.cors_origins:
            # The response hook that adds CORS headers is installed at start only.
            log.warning(
                "reload: server.cors_origins was empty at start: this needs a restart"
                " (systemctl restart scheduler)"
            )
            changes.pop("cors_origins")
        for name, value in changes.items():
            setattr(settings, name, value)

    def _metrics(self) -> SchedulerMetrics | None:
        app = self._app
        return None if app is None else app.get(METRICS)


def log_secrets(config: Config, environ: Mapping[str, str], *tokens: str | None) -> list[str]:
    """What the log never shows: the API token(s), the database password (cluster mode), and
    every value the task executors redact from their own results (header credentials,
    secret-looking env values)."""
    secrets = [*(t for t in tokens if t), *task_secrets(config.tasks, environ)]
    if config.cluster is not None:
        from scheduler.cluster.db import cluster_password

        password = cluster_password(config, environ)
        if password:
            secrets.append(password)
    return secrets


def settle_collector() -> None:
    """Once the state is recovered and the engine runs: move every object alive now (the
    loaded jobs, the app, the engine) out of the collector's reach, and collect the young
    generation less often. The daemon owns its process, so it sets this, not the library.

    Why: a full collection walks every tracked object; with a million jobs loaded (their
    payload dicts are tracked) that is a ~40 ms stall of the loop, 4x the lateness budget.
    Frozen objects are never walked; they live as long as the store anyway. A larger young
    threshold makes the frequent collections rarer; each one still walks only new objects.
    """
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


def server_limits(config: Config) -> ServerLimits:
    """The HTTP edge's bounds, from ``[server]``."""
    server = config.server
    return ServerLimits(
        idle_timeout=server.idle_timeout,
        header_timeout=server.header_timeout,
        max_connections=server.max_connections,
        max_streams=server.max_streams,
        cors_routes=tuple(server.cors_routes),
    )


def soft_nofile() -> int | None:
    """The soft limit on open files, or None when there is none."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return None if soft == resource.RLIM_INFINITY else soft


def run_command(config_path: str) -> int:
    """``scheduler run -c FILE``: exit 78 on a bad config, 65 on damaged state."""
    try:
        config = load_config(config_path)
        if config.cluster is not None:
            from scheduler.cluster import require_driver

            require_driver()
        environ = dict(os.environ)
        token = read_token(environ, config.server.token_env)
        check_bind(config.server.host, token)
    except ConfigError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return EX_CONFIG
    if config.server.token_env:
        os.environ.pop(config.server.token_env, None)  # nothing started from here inherits it
    setup_logging(fmt=config.scheduler.log_format, secrets=log_secrets(config, environ, token))
    # A file-size limit must fail a write with EFBIG (answered 507), not kill the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    # A phase boundary for restart measurements (bench/restart.py): imports and config done.
    log.info("starting scheduler %s (pid %d)", config_path, os.getpid())
    try:
        return asyncio.run(Daemon(config, environ=environ, token=token).run())
    except CorruptState as exc:
        log.critical("state is damaged, not starting: %s", exc.message)
        return EX_DATAERR
    except PersistenceError as exc:
        log.critical("cannot use the state directory: %s", exc.message)
        return EX_CONFIG
    except SchedulerError as exc:
        log.critical("cannot start: %s", exc.message)
        return 1
    except OSError as exc:
        log.critical("cannot start: %s", exc)
        return 1
    except KeyboardInterrupt:
        return 0
