"""The live jobs and those who wait on them: positions, long-polls and event streams.

The job service changes jobs under `changed` and calls `notify()`; readers wake on it. A job that is not
live is read from the store.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Callable, Iterator

from inference_server.errors import ApiError
from inference_server.jobs.status import ENDED, JobStatus
from inference_server.jobs.store import JobStore
from inference_server.plans import Plan


class Job:
    """A live job: its public record plus what only dispatching needs (the plan, the test fault)."""

    def __init__(self, record: dict, plan: Plan, fault: str | None, cache_key: str | None):
        self.record = record
        self.plan = plan
        self.fault = fault
        self.cache_key = cache_key
        self.started = 0.0


class JobBoard:
    def __init__(self, store: JobStore, saved_may_start: Callable[[], bool], dispatching: Callable[[], bool]):
        self.store = store
        self.saved_may_start = saved_may_start  # jobs saved before a restart still wait for the model to load
        self.dispatching = dispatching
        self.live: dict[str, Job] = {}
        self.queue: collections.deque[Job] = collections.deque()
        self.on_device: set[Job] = set()  # one job per replica of the executor (`capacity()`)
        self.finishing: Job | None = None  # its images are being encoded while the device runs the next
        self.changed = threading.Condition()  # wakes long-polls, event streams and the dispatcher
        self.version = 0  # bumped on every change, so a waiter can tell it missed none

    def notify(self) -> None:
        """Call with `changed` held."""
        self.version += 1
        self.changed.notify_all()

    def get(self, job_id: str, viewer: str | None = None) -> dict:
        """The public job; with `viewer` (a key's fingerprint), 404 unless that key submitted it, as if unknown.

        A job with no owner (stored before keys were set, or by a version before keys were tenants) is shared.
        """
        with self.changed:
            job = self.live.get(job_id)
            if job is not None:
                record = dict(job.record)
                record["position"] = self.position(job)
        if job is None:
            record = self.store.get(job_id) if _looks_like_id(job_id) else None
        if record is None or (viewer is not None and record.get("owner") not in (None, viewer)):
            raise ApiError(404, "job_not_found", f"no job {job_id!r} (it may have expired)", "id")
        return self.public(record)

    def position(self, job: Job) -> int | None:
        if job in self.on_device or job is self.finishing:
            return 0
        try:
            return self.queue.index(job) + 1
        except ValueError:
            return None

    def wait(self, job_id: str, timeout: float, viewer: str | None = None) -> dict:
        """Return as soon as the job ends (or `timeout` passes): completion without polling delay."""
        self.get(job_id, viewer)  # another key's job: 404 at once, not after the wait
        deadline = time.monotonic() + timeout
        with self.changed:
            while self._still_to_end(job_id):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self.changed.wait(remaining)
        return self.get(job_id)

    def _still_to_end(self, job_id: str) -> bool:
        """Live and not ended; or saved before a restart and waiting for the model to load."""
        if job_id in self.live:
            return self.live[job_id].record["status"] not in ENDED
        if not self.saved_may_start() or not _looks_like_id(job_id):
            return False
        saved = self.store.get(job_id)
        return saved is not None and saved["status"] == JobStatus.QUEUED

    def events(self, job_id: str, viewer: str | None = None, keepalive_s: float = 15.0) -> Iterator[dict | None]:
        """Each change of the job, then its final state; None now and then as a keep-alive (404 checked first)."""
        self.get(job_id, viewer)
        return self._changes(job_id, keepalive_s)

    def _changes(self, job_id: str, keepalive_s: float) -> Iterator[dict | None]:
        last = None
        while True:
            with self.changed:
                seen = self.version  # read before the snapshot: a change after it is not missed
            current = self.get(job_id)
            snapshot = (current["status"], current["progress"]["step"], current["position"])
            if snapshot != last:
                last = snapshot
                yield current
            if current["status"] in ENDED or not self.dispatching():
                return
            with self.changed:
                changed = self.changed.wait_for(lambda: self.version != seen, keepalive_s)
            if not changed:
                yield None  # outside the lock: a slow client must not hold up the dispatcher

    def public(self, record: dict) -> dict:
        out = {k: v for k, v in record.items() if not k.endswith("_ts") and k != "owner"}
        out["created_at"] = _iso(record["created_ts"])
        out["finished_at"] = _iso(record["finished_ts"]) if record.get("finished_ts") else None
        out["images"] = [{k: v for k, v in image.items() if k != "name"} for image in record["images"]]
        return out


def _looks_like_id(job_id: str) -> bool:
    return len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
