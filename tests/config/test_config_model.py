"""What a loaded config is made of: one FsyncMode, static jobs that are job specs, the job
defaults, and the names the config has always been imported by."""

from __future__ import annotations

import textwrap
from pathlib import Path

import msgspec
import pytest

import scheduler.config
import scheduler.config.load
import scheduler.config.model
import scheduler.model
import scheduler.persistence.journal
from scheduler.config import Config, SchedulerConfig, job_defaults, load_config, static_jobs
from scheduler.config.reload import summarize
from scheduler.errors import InvalidInput
from scheduler.jobspec import JobDefaults, JobSpec
from scheduler.model import Backoff, RetryPolicy, Schedule

JOBS = """
    [tasks.work]
    kind = "python"
    callable = "json:dumps"

    [[jobs]]
    name = "nightly"
    task = "work"
    cron = "0 3 * * *"

    [[jobs]]
    name = "often"
    task = "work"
    every = "5m"
    retry = { max = 2 }
"""


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "cfg.toml"
    path.write_text(textwrap.dedent(text))
    return load_config(path)


def test_fsync_mode_is_one_type_for_config_and_the_journal() -> None:
    assert scheduler.config.FsyncMode is scheduler.model.FsyncMode
    assert scheduler.persistence.journal.FsyncMode is scheduler.model.FsyncMode


def test_a_static_job_is_the_job_spec_the_api_would_parse(tmp_path: Path) -> None:
    config = load(tmp_path, JOBS)
    assert [type(job) for job in config.jobs] == [JobSpec, JobSpec]
    nightly, often = config.jobs
    assert (nightly.name, nightly.task, nightly.schedule) == (
        "nightly",
        "work",
        Schedule(cron="0 3 * * *"),
    )
    assert often.policy.retry.max == 2


def test_the_old_name_of_a_static_job_is_the_job_spec() -> None:
    assert scheduler.config.StaticJob is JobSpec
    assert scheduler.config.load.StaticJob is JobSpec


def test_static_jobs_are_found_by_name(tmp_path: Path) -> None:
    config = load(tmp_path, JOBS)
    assert static_jobs(config) == {"nightly": config.jobs[0], "often": config.jobs[1]}
    fewer = msgspec.structs.replace(config, jobs=config.jobs[1:])
    assert summarize(config, fewer) == "jobs removed: nightly"


def test_a_static_job_without_a_name_in_a_config_built_in_code_is_refused() -> None:
    config = Config(
        jobs=(JobSpec(name="a", task="t", timezone="UTC"), JobSpec(task="t", timezone="UTC"))
    )
    with pytest.raises(InvalidInput, match=r"^jobs\[1\]\.name: expected a unique name") as caught:
        static_jobs(config)
    assert caught.value.field == "jobs[1].name"


def test_the_job_defaults_come_from_the_scheduler_and_retry_sections() -> None:
    retry = RetryPolicy(max=7, backoff=Backoff.FIXED)
    config = Config(
        scheduler=SchedulerConfig(timezone="Europe/Berlin"), retry=retry, default_timeout=90.0
    )
    assert job_defaults(config) == JobDefaults(timezone="Europe/Berlin", retry=retry)


@pytest.mark.parametrize(
    "name",
    [
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
    ],
)
def test_the_names_config_was_imported_by_still_import_from_both_places(name: str) -> None:
    assert getattr(scheduler.config.load, name) is getattr(scheduler.config, name)
    assert name in scheduler.config.__all__
