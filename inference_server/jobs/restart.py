"""Jobs that wait in the queue survive a restart: their inputs are saved, and planned again at the next start.

The job that was running is not run again (`JobStore.mark_interrupted`): if it is what took the server
down (the OOM killer), it would again.
"""

from __future__ import annotations

import logging
import time
from typing import Callable

from inference_server.errors import ApiError
from inference_server.jobs.status import JobStatus
from inference_server.jobs.store import CORRUPT, JobStore

log = logging.getLogger(__name__)
Replan = Callable[[str, dict, dict[str, bytes]], object]  # (task, fields, image bytes) -> Plan, or ApiError


class SavedInputs:
    def __init__(self, store: JobStore):
        self.store = store

    def save(self, job_id: str, seed: int, cacheable: bool, fields: dict, images: dict[str, bytes]) -> None:
        """With the seed it drew, so a job queued again after a restart makes the images it reported."""
        try:
            self.store.save_pending(job_id, {**fields, "seed": seed}, images, cacheable)
        except Exception:
            log.exception("could not save the inputs of job %s: a restart would cut it", job_id)

    def drop(self, job_id: str) -> None:
        try:
            self.store.drop_pending(job_id)
        except Exception:
            log.exception("could not drop the saved inputs of job %s", job_id)

    def replan_all(self, replan: Replan) -> list[tuple[dict, object]]:
        """(record, plan) of each saved job, oldest first; one that cannot be planned any more ends failed."""
        ready = []
        for record, fields, images, cacheable in self._saved():
            try:
                plan = replan(record["task"], fields, images)
            except ApiError as exc:  # the settings changed (a lower MAX_PIXELS, say): not this job's fault
                self.drop(record["id"])
                self.fail(record, f"after the restart it is refused: {exc.message}")
                continue
            except Exception as exc:  # its saved fields are broken: this job ends, the others still run
                log.error("job %s: its saved request cannot be planned again (%s: %s)", record["id"],
                          type(exc).__name__, exc, extra={"job_id": record["id"]})
                self.drop(record["id"])
                self.fail(record, "its saved request could not be read again; submit it again", CORRUPT)
                continue
            plan.cacheable = cacheable
            if plan.params != record["params"]:  # new defaults (another model, fast mode): report what runs
                record.update(params=plan.params, notices=plan.notices,
                              progress={"step": 0, "total": plan.params["num_inference_steps"] * len(plan.seeds)})
            ready.append((record, plan))
        if ready:
            log.info("queued again after the restart", extra={"jobs": len(ready)})
        return ready

    def fail_all(self, reason: str) -> None:
        for record, *_ in self._saved():
            self.drop(record["id"])
            self.fail(record, reason)

    def cancel(self, job_id: str) -> dict | None:
        """A saved job cancelled while the model loads; its record, or None if it is not waiting."""
        record = self.store.get(job_id)
        if record is None or record["status"] != JobStatus.QUEUED:
            return None
        self.drop(job_id)
        record.update(status=JobStatus.CANCELLED, position=None, finished_ts=time.time(),
                      error={"code": "cancelled", "message": "cancelled before it started"})
        return record

    def fail(self, record: dict, message: str, code: str = "interrupted") -> None:
        try:
            self.store.fail(record, time.time(), message, code)
        except Exception:
            log.exception("could not store job %s", record["id"])

    def _saved(self) -> list:
        try:
            return self.store.pending()
        except Exception:
            log.exception("could not read the jobs saved in the queue")
            return []
