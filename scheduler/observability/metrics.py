"""Prometheus metrics: what a monitoring system needs, with no job ids as labels.

Counts that the store already keeps (jobs by status, the next run, slots in use) are read at
scrape time by a custom collector, so there is no second bookkeeping that could drift. What
only exists as a stream (runs by outcome, durations, lateness, missed occurrences) is counted
by an engine listener, in the daemon's own ``CollectorRegistry`` (never the process-global one:
an embedding app, or a test, may build several schedulers in one process).

Label values are bounded sets: ``outcome`` is an :class:`Outcome`, ``status`` a
:class:`JobStatus` and ``reason`` one of :data:`MISSED_REASONS`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Final, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from scheduler.events import Hub, RunRecorded
from scheduler.model import JobStatus, Outcome, Run
from scheduler.store import Store

#: ``misfire``: an occurrence not run because the daemon was down or paused, the clock jumped,
#: or it was later than its misfire grace. ``overlap``: skipped because the previous run of the
#: job was still running (``overlap = "skip"``).
MISSED_REASONS: Final = ("misfire", "overlap")
#: ``scheduler_config_reloads_total{result}``: a failed reload left the previous config in force.
RELOAD_RESULTS: Final = ("success", "failure")

#: Run times from a webhook call of a few milliseconds to a batch job of an hour.
_SUB_SECOND: Final = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5)
DURATION_BUCKETS: Final = (*_SUB_SECOND, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
#: Start lateness around the 10 ms precision target, then catch-up runs after downtime.
LATENESS_BUCKETS: Final = (0.001, 0.0025, *_SUB_SECOND, 1, 5, 30, 60, 300, 3600)
_EXECUTED = frozenset(
    {Outcome.SUCCESS, Outcome.ERROR, Outcome.TIMEOUT, Outcome.CANCELLED, Outcome.INTERRUPTED}
)


class Dispatch(Protocol):
    """What the metrics read of an engine (a single box's, or a cluster node's)."""

    @property
    def hub(self) -> Hub: ...

    @property
    def max_concurrency(self) -> int: ...

    def in_flight(self) -> int: ...

    def waiting(self) -> int: ...


class ClusterGauges(Protocol):
    """A cluster node's own figures (``scheduler.cluster``): ``(kind, name, help, value)``
    with kind ``gauge`` or ``counter``."""

    def metrics(self) -> list[tuple[str, str, str, float]]: ...


class _StateCollector(Collector):
    """Gauges read from the store and the engine at scrape time (O(1) each)."""

    def __init__(
        self, store: Store, engine: Dispatch | None, cluster: ClusterGauges | None = None
    ) -> None:
        self.store = store
        self.engine = engine
        self.cluster = cluster

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("scheduler_jobs", "Jobs stored, by status.", labels=["status"])
        for status in JobStatus:
            jobs.add_metric([status.value], self.store.counts[status])
        yield jobs
        nxt = GaugeMetricFamily(
            "scheduler_next_run_timestamp_seconds",
            "When the next pending job is due (Unix time); no sample when nothing is scheduled.",
        )
        job = self.store.next_job()
        if job is not None and job.scheduled is not None:
            nxt.add_metric([], job.scheduled)
        yield nxt
        yield GaugeMetricFamily(
            "scheduler_paused",
            "1 while dispatching is paused for the whole daemon.",
            value=1.0 if self.store.paused else 0.0,
        )
        if self.engine is not None:
            yield from self._slots(self.engine)
        if self.cluster is not None:
            for kind, name, text, value in self.cluster.metrics():
                family = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
                yield family(name, text, value=value)

    def _slots(self, engine: Dispatch) -> Iterator[Metric]:
        yield GaugeMetricFamily(
            "scheduler_runs_in_flight", "Runs executing now.", value=engine.in_flight()
        )
        yield GaugeMetricFamily(
            "scheduler_max_concurrency",
            "Concurrency slots (max_concurrency).",
            value=engine.max_concurrency,
        )
        yield GaugeMetricFamily(
            "scheduler_waiting_jobs",
            "Due runs waiting for a concurrency slot.",
            value=engine.waiting(),
        )


class SchedulerMetrics:
    """One scheduler's metrics in its own registry. Feed it with :meth:`attach` (or call
    :meth:`observe` for every recorded run); render with :meth:`render`."""

    def __init__(
        self,
        store: Store,
        engine: Dispatch | None = None,
        *,
        process: bool = True,
        cluster: ClusterGauges | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._engine: Dispatch | None = None
        self._unsubscribe: Callable[[], None] | None = None
        reg = self.registry
        self.runs = Counter(
            "scheduler_runs",
            "Runs recorded, by outcome (missed and skipped ones included).",
            ["outcome"],
            registry=reg,
        )
        self.duration = Histogram(
            "scheduler_run_duration_seconds",
            "Run time of runs that executed.",
            buckets=DURATION_BUCKETS,
            registry=reg,
        )
        self.lateness = Histogram(
            "scheduler_lateness_seconds",
            "Start time minus scheduled time of scheduled runs (not manual ones).",
            buckets=LATENESS_BUCKETS,
            registry=reg,
        )
        self.missed = Counter(
            "scheduler_missed_runs",
            "Scheduled occurrences that did not run, by reason.",
            ["reason"],
            registry=reg,
        )
        self.config_reloads = Counter(
            "scheduler_config_reloads",
            "Reloads of config.toml (SIGHUP), by result; a failed one keeps the previous config.",
            ["result"],
            registry=reg,
        )
        # Every label value is present from the start, so rate() works before the first event.
        for outcome in Outcome:
            self.runs.labels(outcome.value)
        for reason in MISSED_REASONS:
            self.missed.labels(reason)
        for result in RELOAD_RESULTS:
            self.config_reloads.labels(result)
        reg.register(_StateCollector(store, engine, cluster))
        if process:
            ProcessCollector(registry=reg)
            PlatformCollector(registry=reg)
        if engine is not None:
            self.attach(engine)

    def attach(self, engine: Dispatch) -> None:
        """Count every run the engine records from now on."""
        self.detach()
        self._unsubscribe = engine.hub.subscribe([RunRecorded], self._recorded)
        self._engine = engine

    def detach(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
        self._unsubscribe = None
        self._engine = None

    def _recorded(self, event: RunRecorded) -> None:
        self.observe(event.run)

    def observe(self, run: Run) -> None:
        """Count one recorded run (called synchronously by the hub; never raises)."""
        self.runs.labels(run.outcome.value).inc()
        if run.outcome is Outcome.MISSED:
            self.missed.labels("misfire").inc(run.count)
            return
        if run.outcome is Outcome.SKIPPED_OVERLAP:
            self.missed.labels("overlap").inc()
            return
        if run.outcome in _EXECUTED:
            duration = run.duration
            if duration is not None and duration >= 0:
                self.duration.observe(duration)
            # A retry's delay after its fire is backoff, not lateness: first attempts only.
            if run.lateness is not None and run.attempt <= 1:
                self.lateness.observe(max(0.0, run.lateness))

    def render(self, accept: str | None = None) -> tuple[bytes, str]:
        """The exposition (Prometheus text, or OpenMetrics when ``accept`` asks for it) and
        its content type."""
        encoder, content_type = choose_encoder(accept or "")
        return encoder(self.registry), content_type
