"""The engine side's job runner, driven directly: cancels reach their jobs, and ids are not kept for ever."""

from __future__ import annotations

import pytest

from inference_server.config import Settings
from inference_server.executors.cancel_marks import CancelMarks
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
    assert [type(e) for e in events] == [Progress, Failed] and events[-1].code == "cancelled"


def test_a_cancel_that_crossed_the_run_on_its_way_still_stops_it(runner_and_events):
    """The service may send `cancel` just before `run` (the job left the queue, the run is being sent)."""
    runner, events = runner_and_events
    runner.cancel("crossed")
    runner.accept("crossed")
    runner.run("crossed", plan())
    assert isinstance(events[-1], Failed) and events[-1].code == "cancelled"


def test_a_job_with_no_cancel_runs_to_the_end_and_leaves_nothing_behind(runner_and_events):
    runner, events = runner_and_events
    runner.run("plain", plan())
    assert isinstance(events[-1], Done) and any(isinstance(e, ImagesStored) for e in events)
    assert runner.cancels.held() == 0


def test_late_cancels_are_kept_only_up_to_a_bound():
    marks = CancelMarks(remembered=8)
    for index in range(1000):  # cancels that crossed their jobs' ends, over a long uptime
        marks.accept(f"job-{index}")
        marks.forget(f"job-{index}")
        marks.cancel(f"job-{index}")
    assert marks.held() == 8
    marks.cancel("early")  # the newest cancels are the ones kept
    marks.accept("early")
    assert marks.is_cancelled("early")
    marks.accept("job-0")  # long forgotten: not cancelled
    assert not marks.is_cancelled("job-0")
