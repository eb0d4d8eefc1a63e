"""Alerts: a JSON POST to each ``[alerts] webhook_urls`` entry when something needs a person.

What is sent, each once (deduplicated by state, not by time):

- ``job_failed`` when a job fails for good (its retries are spent), and ``job_recovered`` when
  that job next succeeds. A recurring job that keeps failing alerts once, not every run.
- ``threshold_crossed`` / ``threshold_cleared`` for ``failure_rate`` (failed attempts over
  finished ones in ``window``, once at least :data:`MIN_RUNS` finished), ``mean_run_time``
  (over the runs that finished in ``window``), ``waiting_jobs`` (due runs waiting for a slot)
  and ``slot_utilisation`` (runs in flight over ``max_concurrency``). Thresholds are checked
  every ``check_interval``; the two instantaneous ones change state only after holding for
  :data:`GAUGE_HOLD` checks in a row, so one busy moment does not page twice.
- ``job_missed`` when occurrences of a recurring job did not run (at most once per job per
  ``window``, with the count) and ``job_recovered`` when it next runs on time: the policy is in
  :mod:`.alerts_missed`. ``[alerts] missed_runs = false`` turns it off.

How, so that alerting can never hurt scheduling: the engine and hub callbacks only update
counters and ``put_nowait`` into a bounded queue (full: the alert is dropped and logged); one
sender task posts each alert with a few retries and exponential backoff on the injected clock.
A failing alert webhook is logged and nothing else: it raises no alert (no loop) and never
touches a job. Webhook URLs often carry a secret, so logs name them by position only.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import socket
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Final

import aiohttp
import msgspec

from scheduler import ids
from scheduler.clock import Clock
from scheduler.config.load import AlertsConfig
from scheduler.durations import format_duration
from scheduler.events import Hub, JobCompleted, JobFailed, RunRecorded, Settled
from scheduler.model import Job, JobType, Outcome
from scheduler.observability.alerts_missed import Change, MissedRuns, Notice, summary_of
from scheduler.observability.metrics import Dispatch
from scheduler.observability.thresholds import RunWindow, Threshold
from scheduler.store import Store
from scheduler.views import iso

log = logging.getLogger("scheduler.alerts")

MIN_RUNS: Final = 10  # below this many finished runs in the window a rate means little
GAUGE_HOLD: Final = 2
_FAILING_MEMORY: Final = 10_000  # jobs remembered as failing (oldest forgotten first)
_RETRY_STATUSES: Final = frozenset({408, 425, 429})


class Kind(enum.StrEnum):
    JOB_FAILED = "job_failed"
    JOB_RECOVERED = "job_recovered"
    JOB_MISSED = "job_missed"
    THRESHOLD_CROSSED = "threshold_crossed"
    THRESHOLD_CLEARED = "threshold_cleared"


class JobInfo(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    id: str
    workflow_id: str | None
    workflow_name: str
    task: str
    status: str
    error: str | None
    attempt: int
    scheduled_time: str | None
    timezone: str


class Alert(msgspec.Struct, frozen=True, kw_only=True, rename="camel"):
    """The webhook body. ``text`` repeats ``summary`` so chat webhooks (Slack, Mattermost)
    show it as is; ``id`` is also sent as ``Idempotency-Key`` so a retried delivery can be
    recognised."""

    id: str
    kind: Kind
    alert: str
    severity: str
    summary: str
    text: str
    time: str
    host: str
    job: JobInfo | None = None
    value: float | None = None
    threshold: float | None = None
    window: str | None = None
    #: job_missed, and its job_recovered: occurrences missed in the job's window, the oldest
    #: and newest of them (in the job's zone), the newest record's reason and the cause.
    count: int | None = None
    first_missed: str | None = None
    last_missed: str | None = None
    reason: str | None = None
    cause: str | None = None


class Alerter:
    """Owns the alert queue and its sender. ``start()`` after the engine starts, ``close()``
    at shutdown (after the engine stopped, so its last failures still go out). It listens
    from the start: the engine plans what is overdue as it starts, before any service runs,
    and the runs missed while the daemon was down are recorded then."""

    def __init__(
        self,
        config: AlertsConfig,
        *,
        clock: Clock,
        engine: Dispatch,
        hub: Hub,
        store: Store,
        check_interval: float = 15.0,
        attempts: int = 4,
        backoff: float = 1.0,
        request_timeout: float = 10.0,
        queue_size: int = 256,
    ) -> None:
        self.config = config
        self.clock = clock
        self.engine = engine
        self.hub = hub
        self.store = store
        self.check_interval = check_interval
        self.attempts = attempts
        self.backoff = backoff
        self.request_timeout = request_timeout
        self.window = RunWindow(config.window)
        self.thresholds = {
            "failure_rate": Threshold("failure_rate"),
            "mean_run_time": Threshold("mean_run_time"),
            "waiting_jobs": Threshold("waiting_jobs", GAUGE_HOLD),
            "slot_utilisation": Threshold("slot_utilisation", GAUGE_HOLD),
        }
        self.failing: OrderedDict[str, None] = OrderedDict()
        self.missed = MissedRuns(window=config.window, since=clock.time())
        self._flush_armed = False
        self.raised = 0
        self.dropped = 0
        self.delivered = 0
        self.failed_deliveries = 0
        self.host = socket.gethostname()
        self._queue: asyncio.Queue[Alert | None] = asyncio.Queue(queue_size)
        self._seq = 0
        self._listening = False
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._listen()

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start listening and the sender, as one task owned by this object."""
        if self._task is None:
            self._closing = False
            self._listen()
            self._task = asyncio.get_running_loop().create_task(self.serve(), name="alerts")

    async def close(self, grace: float = 5.0) -> None:
        """Send what is queued (no more retry waits) for up to ``grace`` s, then stop. Also
        ends a :meth:`serve` run by the caller's own TaskGroup (it returns once drained)."""
        self._closing = True
        with contextlib.suppress(asyncio.QueueFull):  # full: the sender drains, then stops
            self._queue.put_nowait(None)
        task, self._task = self._task, None
        if task is None:
            return
        await asyncio.wait({task}, timeout=grace)
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    async def serve(self) -> None:
        """Listen, check thresholds every ``check_interval`` and send alerts until closed."""
        self._listen()
        async with asyncio.TaskGroup() as group:
            checker = group.create_task(self._check_loop())
            try:
                await self._send_loop()
            finally:
                checker.cancel()

    def reconfigure(self, config: AlertsConfig) -> None:
        """Apply a reloaded ``[alerts]`` section; a new window starts empty."""
        if config.window != self.config.window:
            self.window = RunWindow(config.window)
        self.missed.window = config.window
        self.config = config
        if not self.missed_runs:
            self.missed.clear()

    @property
    def missed_runs(self) -> bool:
        """Whether missed-run alerts are on: ``missed_runs``, by default on with webhooks."""
        return self.config.missed_runs is not False and bool(self.config.webhook_urls)

    def _listen(self) -> None:
        if not self._listening:
            self._listening = True
            self.hub.subscribe([RunRecorded], self.on_run)
            self.hub.subscribe([JobFailed, JobCompleted], self.on_settled)

    # --- inputs (called synchronously by the engine and the hub: never block, never raise) --

    def on_run(self, event: RunRecorded) -> None:
        run = event.run
        if self._closing:
            return
        if run.outcome in (Outcome.SUCCESS, Outcome.ERROR, Outcome.TIMEOUT):
            failed = run.outcome is not Outcome.SUCCESS  # thresholds are daemon-wide
            self.window.add(self.clock.time(), failed=failed, duration=run.duration)
        if self.missed_runs and event.job.type is JobType.RECURRING:
            self.missed.observe(event.job, run, self.clock.time())
            if self.missed.due and not self._flush_armed:
                # Queued once the engine's turn ends: the alert then shows the job rescheduled.
                self._flush_armed = True
                asyncio.get_running_loop().call_soon(self._flush_missed)

    def on_settled(self, event: Settled) -> None:
        if self._closing or event.job_id is None:
            return
        job_id = ids.encode(event.job_id)
        if isinstance(event, JobFailed) and event.final:
            if job_id not in self.failing:
                self._remember_failing(job_id)
                self._job_alert(Kind.JOB_FAILED, job_id)
        elif isinstance(event, JobCompleted) and job_id in self.failing:
            del self.failing[job_id]
            self._job_alert(Kind.JOB_RECOVERED, job_id)

    def _remember_failing(self, job_id: str) -> None:
        self.failing[job_id] = None
        while len(self.failing) > _FAILING_MEMORY:
            self.failing.popitem(last=False)

    # --- thresholds ----------------------------------------------------------------------

    async def _check_loop(self) -> None:
        while True:
            await self.clock.sleep(self.check_interval)
            self.check()

    def check(self) -> None:
        """Evaluate every threshold now and queue an alert for each one that changed; prune
        the missed-run windows."""
        cfg = self.config
        self.missed.prune(self.clock.time(), lambda job_id: self.store.get(job_id) is not None)
        self._flush_missed()
        runs, failures, seconds = self.window.totals(self.clock.time())
        rate = failures / runs if runs >= MIN_RUNS else None
        mean = seconds / runs if runs else None
        slots = self.engine.max_concurrency
        use = self.engine.in_flight() / slots if slots else 0.0
        waiting = float(self.engine.waiting())
        self._evaluate("failure_rate", rate, cfg.failure_rate, f"{failures} of {runs} runs")
        self._evaluate("mean_run_time", mean, cfg.mean_run_time, f"{runs} runs")
        self._evaluate("waiting_jobs", waiting, cfg.waiting_jobs, "due runs waiting for a slot")
        self._evaluate("slot_utilisation", use, cfg.slot_utilisation, f"{slots} slots")

    def _evaluate(self, name: str, value: float | None, limit: float, detail: str) -> None:
        changed = self.thresholds[name].step(value is not None and value > limit)
        if changed is None:
            return
        kind = Kind.THRESHOLD_CROSSED if changed else Kind.THRESHOLD_CLEARED
        shown, shown_limit = _show(name, value), _show(name, limit)
        if changed:
            summary = f"{_LABELS[name]} is {shown}, above {shown_limit} ({detail})"
        elif value is None:
            summary = f"{_LABELS[name]} cleared: too few runs in the window to measure"
        else:
            summary = f"{_LABELS[name]} is back to {shown} (limit {shown_limit})"
        windowed = name in ("failure_rate", "mean_run_time")
        self._queue_alert(
            kind,
            name,
            "warning" if changed else "resolved",
            summary,
            value=value,
            threshold=limit,
            window=format_duration(self.config.window) if windowed else None,
        )

    # --- building and queueing -----------------------------------------------------------

    def _job_alert(self, kind: Kind, job_id: str) -> None:
        job = self.store.get(ids.decode(job_id))
        if job is None:
            return
        info = job_info(job)
        if kind is Kind.JOB_FAILED:
            tries = f"{job.attempt} attempt{'s' if job.attempt != 1 else ''}"
            summary = f"Job {job.display_name} failed after {tries}: {job.error or 'no message'}"
            severity = "error"
        else:
            summary = f"Job {job.display_name} succeeded again"
            severity = "resolved"
        self._queue_alert(kind, kind.value, severity, summary, job=info)

    def _flush_missed(self) -> None:
        """Queue the waiting missed-run alerts while the queue is less than half full, so
        that a burst of them (a thousand jobs missing at once) is sent in full and leaves
        room for the other alerts."""
        self._flush_armed = False
        half = self._queue.maxsize // 2
        while not self._closing and self.missed.due and self._queue.qsize() < half:
            for notice in self.missed.take():
                self._missed_alert(notice)

    def _missed_alert(self, notice: Notice) -> None:
        job = self.store.get(notice.job.id) or notice.job  # as it is now: rescheduled
        zone = job.timezone
        missed = notice.change is Change.MISSED
        self._queue_alert(
            Kind.JOB_MISSED if missed else Kind.JOB_RECOVERED,
            Kind.JOB_MISSED.value,
            "warning" if missed else "resolved",
            summary_of(notice, job.display_name, zone),
            job=job_info(job),
            count=notice.runs,
            first_missed=iso(notice.first, zone),
            last_missed=iso(notice.last, zone),
            reason=notice.reason,
            cause=notice.cause.value,
        )

    def _queue_alert(
        self,
        kind: Kind,
        name: str,
        severity: str,
        summary: str,
        *,
        job: JobInfo | None = None,
        value: float | None = None,
        threshold: float | None = None,
        window: str | None = None,
        count: int | None = None,
        first_missed: str | None = None,
        last_missed: str | None = None,
        reason: str | None = None,
        cause: str | None = None,
    ) -> None:
        if not self.config.webhook_urls:
            return
        now = self.clock.time()
        self._seq += 1
        self.raised += 1
        alert = Alert(
            id=f"{self.host}:{round(now * 1000)}:{self._seq}",
            kind=kind,
            alert=name,
            severity=severity,
            summary=summary,
            text=summary,
            time=datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds"),
            host=self.host,
            job=job,
            value=value,
            threshold=threshold,
            window=window,
            count=count,
            first_missed=first_missed,
            last_missed=last_missed,
            reason=reason,
            cause=cause,
        )
        try:
            self._queue.put_nowait(alert)
        except asyncio.QueueFull:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning(
                    "alert queue full: %d alerts dropped so far (%s)", self.dropped, summary
                )

    # --- sending -------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        timeout = aiohttp.ClientTimeout(total=self.request_timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not (self._closing and self._queue.empty()):
                alert = await self._queue.get()
                if alert is None:
                    return
                self._flush_missed()
                body = msgspec.json.encode(alert)
                for position, url in enumerate(self.config.webhook_urls, 1):
                    if await self._deliver(session, url, body, alert.id, position):
                        self.delivered += 1
                    else:
                        self.failed_deliveries += 1

    async def _deliver(
        self, session: aiohttp.ClientSession, url: str, body: bytes, alert_id: str, position: int
    ) -> bool:
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": alert_id,
            "User-Agent": "scheduler-alerts",
        }
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                if self._closing:
                    break
                await self.clock.sleep(self.backoff * 2 ** (attempt - 1))
            try:
                async with session.post(url, data=body, headers=headers) as resp:
                    if resp.status < 300:
                        return True
                    problem = f"HTTP {resp.status}"
                    if resp.status < 500 and resp.status not in _RETRY_STATUSES:
                        break
            except (aiohttp.ClientError, TimeoutError) as exc:
                problem = type(exc).__name__
        log.warning("alert webhook #%d did not take alert %s: %s", position, alert_id, problem)
        return False


def job_info(job: Job) -> JobInfo:
    return JobInfo(
        id=ids.encode(job.id),
        workflow_id=job.workflow_id,
        workflow_name=job.display_name,
        task=job.task,
        status=job.status.value,
        error=job.error,
        attempt=job.attempt,
        scheduled_time=iso(job.scheduled, job.timezone),
        timezone=job.timezone,
    )


_LABELS: Final = {
    "failure_rate": "Failure rate",
    "mean_run_time": "Mean run time",
    "waiting_jobs": "Jobs waiting for a slot",
    "slot_utilisation": "Slot use",
}


def _show(name: str, value: float | None) -> str:
    if value is None:
        return "unknown"
    if name in ("failure_rate", "slot_utilisation"):
        return f"{value:.0%}"
    if name == "mean_run_time":
        return format_duration(round(value)) if value >= 10 else f"{value:.1f}s"
    return f"{value:g}"
