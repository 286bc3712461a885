"""Jobs: the bounded queue, the job states, waiting and event streams, cancelling, the result cache.

It does not know how a job runs: it hands plans to an executor (`executors/`) and follows the typed
events that come back. No torch here, and `create_app` builds it without starting anything.
"""

from __future__ import annotations

import collections
import hashlib
import logging
import math
import threading
import time
import uuid

from inference_server.config import Settings
from inference_server.errors import ApiError
from inference_server.executors.events import (LOAD_FAILED, DeviceFree, Done, Executor, Failed, ImagesStored, ModelInfo,
                                               Progress)
from inference_server.jobs import cleanup
from inference_server.jobs.board import Job, JobBoard
from inference_server.jobs.cache import ResultCache, files_present
from inference_server.jobs.restart import SavedInputs
from inference_server.jobs.status import ENDED, JobStatus
from inference_server.jobs.storage_health import StorageHealth
from inference_server.jobs.store import JobStore
from inference_server.metrics import Metrics
from inference_server.model_names import SETTINGS
from inference_server.plans import Limits, Plan
from inference_server.safety import policy
from inference_server.safety.blocklist import Blocklist
from inference_server.storage import open_store
from inference_server.tasks import TaskRegistry

log = logging.getLogger(__name__)
CLEANUP_EVERY_S = 600


class JobService:
    def __init__(self, settings: Settings, executor: Executor, metrics: Metrics, tasks: TaskRegistry):
        self.settings = settings
        self.metrics = metrics
        self.executor = executor
        self.tasks = tasks
        self.limits = Limits(settings.max_pixels, settings.masked_min_size)
        self.store = JobStore(settings.data_dir / "jobs.sqlite3")
        self.files = open_store(settings)
        self.saved = SavedInputs(self.store)
        self.blocklist = Blocklist.from_file(settings.prompt_blocklist) if settings.prompt_blocklist else None
        self.safety_tag = policy.cache_tag(settings.safety_checker, settings.safety_policy, settings.safety_labels,
                                           settings.safety_threshold)
        self.cache = ResultCache(settings.cache_size, files_present(self.files))
        self.storage = StorageHealth(settings.storage_failures_unready, self.files.probe)
        # Held from "these files exist" to "a saved job lists them", and by cleanup: a file is never deleted
        # between the two (a cache hit, or a new result with the bytes of an expiring one).
        self._file_references = threading.Lock()
        self.board = JobBoard(self.store, lambda: not (self._accepting or self._gave_up),
                              lambda: self._dispatcher is not None and self._dispatcher.is_alive())
        self.get, self.wait, self.events = self.board.get, self.board.wait, self.board.events  # reads: the board's
        self._heartbeat = time.monotonic()
        self._durations: collections.deque[float] = collections.deque(maxlen=20)
        self._dispatcher: threading.Thread | None = None
        self._accepting = False  # saved jobs are queued again before new ones are taken
        self._gave_up = False  # the models failed to load
        self.interrupted_at_start = 0
        metrics.queue_depth.set_function(lambda: len(self.board.queue))

    def start(self) -> None:
        """Settle the last run's leftovers, start the executor and the dispatcher."""
        self.interrupted_at_start = self.store.mark_interrupted()
        self.remove_expired()
        self.executor.start()
        self._dispatcher = threading.Thread(target=self._dispatch_forever, name="dispatcher", daemon=True)
        self._dispatcher.start()

    # ---- readiness -------------------------------------------------------------------------
    def not_ready_reason(self) -> str | None:
        if self._dispatcher is None:
            return "the job service has not been started"
        reason = self.executor.not_ready_reason()
        if reason:
            return reason
        if not self._dispatcher.is_alive():
            return "the dispatcher thread has died: restart the server (see the log)"
        if not self._accepting:
            return "the model is still loading"
        reason = self.storage.not_ready_reason()
        if reason:
            return reason
        running = next(iter(self.board.on_device), None)
        if running is not None and time.monotonic() - self._heartbeat > self.settings.worker_stall_s:
            return f"the worker is stalled: job {running.record['id']} made no progress for " \
                   f"{self.settings.worker_stall_s:.0f} s"
        return None

    def models(self) -> dict[str, ModelInfo]:
        return self.executor.models() or {}

    def model_for(self, model_name: str) -> ModelInfo:
        """The model a task runs on, or 503 while loading; 404 when it is not served."""
        models = self.executor.models()
        if models is None:
            raise ApiError(503, "not_ready", self.not_ready_reason() or "not ready", headers={"Retry-After": "5"})
        if model_name not in models:
            env = SETTINGS.get(model_name, "the model settings")
            raise ApiError(404, "task_unavailable", f"this task needs the {model_name!r} model, which this server "
                                                    f"does not serve: set {env}")
        return models[model_name]

    def plan(self, task: str, fields: dict, raw_images: dict[str, bytes]) -> Plan:
        """Validate, decode and plan: every 4xx a request can earn, before it is queued."""
        spec = self.tasks.get(task)
        read = spec.read(fields, raw_images, self.settings.max_pixels)
        if self.blocklist is not None and self.blocklist.match(read.validated.prompt):
            raise ApiError(422, "prompt_blocked", "prompt: it contains words this server does not accept "
                                                  "(PROMPT_BLOCKLIST)", "prompt")
        return spec.plan(read, self.model_for(spec.model).family, self.limits)

    def cache_key(self, plan: Plan, owner: str | None = None) -> str | None:
        """Only seeded requests repeat; the model that runs them and the safety settings are part of the key.

        Per key unless SHARED_CACHE: a hit must not tell one key what another one asked for.
        """
        if not plan.cacheable:
            return None
        key = plan.cache_key(f"{self.model_for(plan.model).model_id}|{self.safety_tag}")
        if self.settings.shared_cache or owner is None:
            return key
        return hashlib.sha256(f"{owner}:{key}".encode()).hexdigest()

    # ---- submission ------------------------------------------------------------------------
    def submit(self, plan: Plan, fault: str | None = None,
               inputs: tuple[dict, dict[str, bytes]] | None = None, owner: str | None = None) -> dict:
        """Queue a plan; `inputs` (request fields, image bytes) are saved so a restart can queue it again.

        `owner` is the fingerprint of the key that sent it (None without keys): only that key sees the job.
        """
        reason = self.not_ready_reason()
        if reason:
            raise ApiError(503, "not_ready", reason, headers={"Retry-After": "5"})
        now = time.time()
        record = {
            "id": uuid.uuid4().hex, "task": plan.task, "status": JobStatus.QUEUED, "position": None,
            "progress": {"step": 0, "total": plan.params["num_inference_steps"] * len(plan.seeds)},
            "params": plan.params, "notices": plan.notices, "images": [], "error": None, "cache": "miss",
            "model": self.model_for(plan.model).model_id, "timings": {}, "created_ts": now, "finished_ts": None,
            "owner": owner,
        }
        cache_key = self.cache_key(plan, owner)
        if cache_key:
            with self._file_references:
                cached = self.cache.get(cache_key)
                if cached is not None:
                    return self._answer_from_cache(record, *cached)
        self._refuse_if_full()  # before writing inputs: an overloaded server must not write and delete them
        if inputs is not None:  # before the lock: writing image bytes must not hold up the dispatcher
            self.saved.save(record["id"], plan.params["seed"], plan.cacheable, *inputs)
        with self.board.changed:
            try:
                self._refuse_if_full()  # again: others may have filled the queue meanwhile
            except ApiError:
                self.saved.drop(record["id"])
                raise
            if not self._persist(record):
                self.saved.drop(record["id"])
                raise ApiError(503, "storage_unavailable", "the job store cannot be written (see the server log)")
            job = Job(record, plan, fault, cache_key)
            self.board.live[record["id"]] = job
            self.board.queue.append(job)
            self.board.notify()
        return self.board.get(record["id"])

    def _refuse_if_full(self) -> None:
        if len(self.board.queue) >= self.settings.max_queue:
            self.metrics.rejected.inc()
            raise ApiError(429, "queue_full", f"the queue is full ({self.settings.max_queue} jobs waiting)",
                           headers={"Retry-After": str(self.retry_after())})

    def _answer_from_cache(self, record: dict, origin: str, images: list[dict]) -> dict:
        """A small row pointing at the job that made the images (a flood of hits must not fill the disk)."""
        total = record["progress"]["total"]
        record.update(status=JobStatus.SUCCEEDED, images=images, cache="hit", finished_ts=record["created_ts"],
                      progress={"step": total, "total": total}, timings={"queued_s": 0.0, "run_s": 0.0})
        if not self._persist(record, hit_of=origin):
            raise ApiError(503, "storage_unavailable", "the job store cannot be written (see the server log)")
        self.metrics.cache_hits.inc()
        return self.board.public(record)

    def _persist(self, record: dict, hit_of: str | None = None) -> bool:
        """A storage error must not kill the dispatcher: the job lives on in memory, and the log says why."""
        try:
            self.store.save_hit(record, hit_of) if hit_of else self.store.save(record)
            return True
        except Exception:
            log.exception("could not store job %s", record["id"])
            return False

    def retry_after(self) -> int:
        """A place frees when the running job ends: about one average job from now."""
        average = sum(self._durations) / len(self._durations) if self._durations else 2.0
        return max(1, math.ceil(average))

    # ---- reading, waiting, cancelling -----------------------------------------------------
    # `owner`: the caller's key fingerprint (another key's job answers 404); None: every job (admin, no keys).
    def may_read_file(self, name: str, owner: str | None = None) -> bool:
        """Whether `owner` may read a result file: one of its jobs lists it (None: anyone may)."""
        if owner is None:
            return True
        try:
            return self.store.file_owned_by(name, owner)
        except Exception:
            log.exception("could not look up who may read file %s", name)
            return False

    def cancel(self, job_id: str, owner: str | None = None) -> dict:
        self.board.get(job_id, owner)  # 404 for another key's job
        with self.board.changed:
            job = self.board.live.get(job_id)
            if job is None:
                current = self.board.get(job_id)  # 404 if unknown
                if current["status"] == JobStatus.QUEUED:  # saved before a restart, the model still loading
                    record = self.saved.cancel(job_id)
                    if record is not None:
                        if not self._persist(record):
                            raise ApiError(503, "storage_unavailable", "the job store cannot be written")
                        self.board.notify()
                        return self.board.public(record)
                raise ApiError(409, "job_ended", f"job {job_id} already ended ({current['status']})", "id")
            if job in self.board.queue:
                self.board.queue.remove(job)
                self._finish(job, JobStatus.CANCELLED,
                             error={"code": "cancelled", "message": "cancelled before it started"})
            else:
                self.executor.cancel(job_id)  # the engine stops at its next step
                self.board.notify()
        return self.board.get(job_id)

    # ---- dispatching -----------------------------------------------------------------------
    def _dispatch_forever(self) -> None:
        if not self._wait_for_models():
            return
        last_cleanup = time.monotonic()
        slots = threading.Semaphore(self.executor.capacity())  # one per replica: that many jobs run at once
        while True:
            if time.monotonic() - last_cleanup > CLEANUP_EVERY_S:  # busy or idle, expired results go
                last_cleanup = time.monotonic()
                self.remove_expired()
            slots.acquire()
            if (job := self._next_job()) is None:
                slots.release()
                continue
            self.saved.drop(job.record["id"])  # a job cut while running is not run again
            events = self.executor.submit(job.record["id"], job.plan, job.fault)
            threading.Thread(target=self._follow, args=(job, events, slots), name="follow", daemon=True).start()

    def _wait_for_models(self) -> bool:
        """Until the executor has loaded; then saved jobs are queued again, before any new request."""
        while self.executor.models() is None:
            reason = self.executor.not_ready_reason()
            if reason and reason.startswith(LOAD_FAILED):
                self.saved.fail_all(f"after the restart {reason}")
                with self.board.changed:
                    self._gave_up = True
                    self.board.notify()
                return False
            time.sleep(0.1)
        for record, plan in self.saved.replan_all(self.plan):
            cache_key = self.cache_key(plan, record.get("owner"))
            with self.board.changed:
                current = self.store.get(record["id"])
                if current is None or current["status"] != JobStatus.QUEUED:  # cancelled while the model loaded
                    continue
                job = Job(record, plan, None, cache_key)
                self.board.live[record["id"]] = job
                self.board.queue.append(job)
        with self.board.changed:
            self._accepting = True
            self.board.notify()  # long-polls on saved jobs wait for this
        log.info("model ready", extra={"models": {name: m.describe() for name, m in self.models().items()}})
        return True

    def _next_job(self) -> Job | None:
        while reason := self.executor.not_ready_reason():  # the engine's process is restarting, or gone
            if reason.startswith(LOAD_FAILED):  # it will not come back: end what waits
                with self.board.changed:
                    for job in list(self.board.queue):
                        self.board.queue.remove(job)
                        self._finish(job, JobStatus.FAILED, error={"code": "worker_lost", "message": reason})
            time.sleep(0.2)
        with self.board.changed:
            if not self.board.queue:
                self.board.changed.wait(60)
            if not self.board.queue:
                return None
            job = self.board.queue.popleft()
            self.board.on_device.add(job)
            job.started = self._heartbeat = time.monotonic()
            job.record.update(status=JobStatus.RUNNING,
                              timings={"queued_s": round(time.time() - job.record["created_ts"], 3)})
            self._persist(job.record)
            self.board.notify()
        return job

    def _follow(self, job: Job, events, slots: threading.Semaphore) -> None:
        """Apply one job's events to its record until it ends; free the device as soon as the engine says."""
        images: tuple = ()
        try:
            for event in events:
                if isinstance(event, Progress):
                    with self.board.changed:
                        self._heartbeat = time.monotonic()
                        job.record["progress"] = {"step": event.step, "total": event.total}
                        self.board.notify()
                elif isinstance(event, DeviceFree):
                    with self.board.changed:
                        self.board.on_device.discard(job)
                        self.board.finishing = job
                    slots.release()  # the job's slot is free at `DeviceFree`, or else when it ends
                    slots = None
                elif isinstance(event, ImagesStored):
                    images = event.images
                    self._count_safety_actions(images)
                elif isinstance(event, Done):
                    if "swap_s" in event.timings:  # it waited for its transformer to be moved in
                        job.record["timings"] = {**job.record.get("timings", {}), "swap_s": event.timings["swap_s"]}
                    self.storage.job_stored()
                    self._succeed(job, images)
                elif isinstance(event, Failed):
                    if event.code == "storage":
                        self.storage.job_failed_to_store()
                    status = JobStatus.CANCELLED if event.code == "cancelled" else JobStatus.FAILED
                    self._finish(job, status, error={"code": event.code, "message": event.message})
        except Exception:  # never leave a job running forever
            log.exception("following job %s failed", job.record["id"])
            self._finish(job, JobStatus.FAILED, error={"code": "internal", "message": "an internal error (see the log)"})
        finally:
            if slots is not None:
                slots.release()

    def _succeed(self, job: Job, stored: tuple) -> None:
        images = [_image_entry(image) for image in stored]
        with self._file_references:
            self._finish(job, JobStatus.SUCCEEDED, images=images)
            stored = job.record["status"] == JobStatus.SUCCEEDED and job.record["id"] not in self.board.live
            if job.cache_key and stored:  # a hit points at this job's row: only once it is in the store
                self.cache.put(job.cache_key, job.record["id"], images)

    def _count_safety_actions(self, stored: tuple) -> None:
        for image in stored:
            if image.safety and image.safety.get("action", "none") != "none":
                self.metrics.safety_actions.labels(image.safety["action"]).inc()

    def _finish(self, job: Job, status: JobStatus, images: list | None = None, error: dict | None = None) -> None:
        with self.board.changed:
            record = job.record
            if record["status"] in ENDED:
                return
            run_s = round(time.monotonic() - job.started, 3) if job.started else 0.0
            record.update(status=status, images=images or [], error=error, finished_ts=time.time(), position=None)
            record["timings"] = {**record.get("timings", {}), "run_s": run_s}
            if job.started:
                self._durations.append(run_s)
                self.metrics.job_seconds.labels(record["task"]).observe(run_s)
            if error:
                self.metrics.failures.labels(error["code"]).inc()
            else:
                self.metrics.images.labels(record["task"]).inc(len(record["images"]))
            if self._persist(record):
                self.board.live.pop(record["id"], None)  # else served from memory until a restart
            self.board.on_device.discard(job)
            if self.board.finishing is job:
                self.board.finishing = None
            if not job.started:  # cancelled in the queue
                self.saved.drop(record["id"])
            self.board.notify()
        log.info("job %s", status, extra={"job_id": record["id"], "task": record["task"], "run_s": run_s,
                                          "error": (error or {}).get("code")})

    def remove_expired(self) -> None:
        with self._file_references:
            cleanup.remove_expired(self.store, self.files, self.cache, time.time() - self.settings.result_ttl_s)

    def stop(self) -> None:
        self.executor.stop()


def _image_entry(image) -> dict:
    """A result image as the job lists it; a blocked one has no file, only its seed and why."""
    if not image.name:
        return {"seed": image.seed, "width": image.width, "height": image.height, "blocked": True,
                "safety": image.safety}
    return {"name": image.name, "url": f"/v1/files/{image.name}", "seed": image.seed, "width": image.width,
            "height": image.height, "mime_type": image.mime_type, "safety": image.safety}
