"""The engine side's job runner, driven directly: cancels reach accepted jobs and leave nothing behind."""

from __future__ import annotations

import pytest

from inference_server.config import Settings
from inference_server.executors.events import Done, Failed, ImagesStored, Progress
from inference_server.executors.job_runner import JobRunner
from inference_server.plans import Plan
from tests.server.fake_engine import FakeEngine


@pytest.fixture()
def runner_and_events(tmp_path):
    events: list = []
    runner = JobRunner(FakeEngine(), Settings.from_env({"DATA_DIR": str(tmp_path), "OVERLAP_FINISHING": "0"}),
                       events.append)
    yield runner, events
    runner.close()


def plan(steps: int = 3) -> Plan:
    params = {"prompt": "x", "seed": 5, "num_inference_steps": steps, "output_format": "png"}
    return Plan("generate", "text2image", params, [5], {"num_inference_steps": steps, "width": 8, "height": 8})


def test_a_cancel_for_a_job_still_waiting_its_turn_stops_it_at_its_first_step(runner_and_events):
    runner, events = runner_and_events
    runner.accept("waiting")  # the child reads `run`, then a `cancel`, before the job reaches the device
    runner.cancel("waiting")
    runner.run("waiting", plan())
    assert [type(e) for e in events] == [Progress, Failed]
    assert events[-1].code == "cancelled"


def test_a_late_cancel_is_dropped_and_does_not_touch_the_next_run(runner_and_events):
    runner, events = runner_and_events
    runner.run("done-already", plan())
    assert isinstance(events[-1], Done)
    runner.cancel("done-already")  # it crossed the job's end on the pipe
    runner.cancel("never-sent")
    assert runner._cancelled == {}  # nothing kept for jobs that are not live: no slow leak over a long uptime

    events.clear()
    runner.run("done-already", plan())  # were the cancel kept, this run would be cancelled
    assert isinstance(events[-1], Done) and any(isinstance(e, ImagesStored) for e in events)
