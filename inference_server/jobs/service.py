"""Jobs: the bounded queue, the single worker per device, waiting, cancelling, the result cache.

No torch here: the engine is whatever `engine_loader(settings)` returns, loaded in
a background thread so `/readyz` can say "loading" meanwhile.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable, Iterator

from inference_server.config import Settings
from inference_server.errors import ApiError, JobFailure
from inference_server.jobs import worker
from inference_server.jobs.cache import ResultCache
from inference_server.jobs.files import FileStore
from inference_server.jobs.store import ENDED, JobStore
from inference_server.metrics import Metrics
from inference_server.plans import Limits, Plan, make_plan, read_request

log = logging.getLogger(__name__)


class Job:
    """A live job: its public record plus what only the worker needs (the plan, the cancel flag)."""

    def __init__(self, record: dict, plan: Plan, fault: str | None, cache_key: str | None):
        self.record = record
        self.plan = plan
        self.fault = fault
        self.cache_key = cache_key
        self.cancel_requested = False
        self.started = 0.0


class JobService:
    def __init__(self, settings: Settings, engine_loader: Callable, metrics: Metrics):
        self.settings = settings
        self.metrics = metrics
        self.store = JobStore(settings.data_dir / "jobs.sqlite3")
        self.files = FileStore(settings.data_dir / "files")
        self.cache = ResultCache(settings.cache_size, lambda images: all(self.files.exists(i["name"]) for i in images))
        # Held from "these files exist" to "a saved job lists them", and by cleanup: a file is never deleted
        # between the two (a cache hit, or a new result with the bytes of an expiring one).
        self._file_references = threading.Lock()
        self.interrupted_at_start = self.store.mark_interrupted()
        self.remove_expired()
        self.engine = None
        self.load_error: str | None = None
        self._live: dict[str, Job] = {}
        self._queue: collections.deque[Job] = collections.deque()
        self._running: Job | None = None  # on the device
        self._finishing: Job | None = None  # its images are being encoded while the device runs the next
        self._finisher = ThreadPoolExecutor(1, thread_name_prefix="finisher")
        self._handed_over: Future | None = None
        self._changed = threading.Condition()
        self._version = 0  # bumped on every change, so a waiter can tell it missed none
        self._heartbeat = time.monotonic()
        self._durations: collections.deque[float] = collections.deque(maxlen=20)
        metrics.queue_depth.set_function(lambda: len(self._queue))
        self._worker = threading.Thread(target=self._load_then_work, args=(engine_loader,), name="engine-worker",
                                        daemon=True)
        self._worker.start()

    # ---- readiness -------------------------------------------------------------------------
    def not_ready_reason(self) -> str | None:
        if self.load_error:
            return f"the model failed to load: {self.load_error}"
        if self.engine is None:
            return "the model is still loading"
        if not self._worker.is_alive():
            return "the worker thread has died: restart the server (see the log)"
        running = self._running
        if running is not None and time.monotonic() - self._heartbeat > self.settings.worker_stall_s:
            return f"the worker is stalled: job {running.record['id']} made no progress for " \
                   f"{self.settings.worker_stall_s:.0f} s"
        return None

    # ---- submission ------------------------------------------------------------------------
    def submit(self, plan: Plan, fault: str | None = None,
               inputs: tuple[dict, dict[str, bytes]] | None = None) -> dict:
        """Queue a plan; `inputs` (request fields, image bytes) are saved so a restart can queue it again."""
        reason = self.not_ready_reason()
        if reason:
            raise ApiError(503, "not_ready", reason, headers={"Retry-After": "5"})
        now = time.time()
        record = {
            "id": uuid.uuid4().hex, "task": plan.task, "status": "queued", "position": None,
            "progress": {"step": 0, "total": plan.params["num_inference_steps"] * len(plan.seeds)},
            "params": plan.params, "notices": plan.notices, "images": [], "error": None, "cache": "miss",
            "timings": {}, "created_ts": now, "finished_ts": None,
        }
        cache_key = plan.cache_key(self.engine.describe()["model"]) if plan.cacheable else None
        if cache_key:
            with self._file_references:
                cached = self.cache.get(cache_key)
                if cached is not None:
                    return self._answer_from_cache(record, cached)
        self._refuse_if_full()  # before writing inputs: an overloaded server must not write and delete them
        if inputs is not None:  # before the lock: writing image bytes must not hold up the worker's steps
            self._save_inputs(record["id"], plan, *inputs)
        with self._changed:
            try:
                self._refuse_if_full()  # again: others may have filled the queue meanwhile
            except ApiError:
                self._drop_inputs(record["id"])
                raise
            if not self._persist(record):
                self._drop_inputs(record["id"])
                raise ApiError(503, "storage_unavailable", "the job store cannot be written (see the server log)")
            job = Job(record, plan, fault, cache_key)
            self._live[record["id"]] = job
            self._queue.append(job)
            self._notify()
        return self.get(record["id"])

    def _refuse_if_full(self) -> None:
        if len(self._queue) >= self.settings.max_queue:
            self.metrics.rejected.inc()
            raise ApiError(429, "queue_full", f"the queue is full ({self.settings.max_queue} jobs waiting)",
                           headers={"Retry-After": str(self._retry_after())})

    def _save_inputs(self, job_id: str, plan: Plan, fields: dict, images: dict[str, bytes]) -> None:
        """With the seed it drew, so a job queued again after a restart makes the images it reported."""
        try:
            self.store.save_pending(job_id, {**fields, "seed": plan.params["seed"]}, images, plan.cacheable)
        except Exception:
            log.exception("could not save the inputs of job %s: a restart would cut it", job_id)

    def _drop_inputs(self, job_id: str) -> None:
        try:
            self.store.drop_pending(job_id)
        except Exception:
            log.exception("could not drop the saved inputs of job %s", job_id)

    def _queue_saved_jobs(self, engine) -> None:
        """Jobs that waited in the queue when the server stopped run now, in their order, with their seeds."""
        limits = Limits(self.settings.max_pixels, self.settings.masked_min_size)
        saved = self._saved_jobs()
        for record, fields, images, cacheable in saved:
            try:
                read = read_request(record["task"], fields, images, self.settings.max_pixels)
                plan = make_plan(record["task"], read.validated, read.images, read.digests, engine.family, limits)
            except Exception as exc:  # the settings changed (a lower MAX_PIXELS, say), or a bug: not this job's
                self._drop_inputs(record["id"])
                reason = exc.message if isinstance(exc, ApiError) else f"{type(exc).__name__}: {exc}"
                self._persist_failure(record, f"after the restart it is refused: {reason}")
                continue
            plan.cacheable = cacheable
            cache_key = plan.cache_key(engine.describe()["model"]) if cacheable else None
            if plan.params != record["params"]:  # new defaults (another model, fast mode): report what runs
                record.update(params=plan.params, notices=plan.notices,
                              progress={"step": 0, "total": plan.params["num_inference_steps"] * len(plan.seeds)})
            with self._changed:
                current = self.store.get(record["id"])
                if current is None or current["status"] != "queued":  # cancelled while the model loaded
                    continue
                job = Job(record, plan, None, cache_key)
                self._live[record["id"]] = job
                self._queue.append(job)
        if saved:
            log.info("queued again after the restart", extra={"jobs": len(saved)})

    def _fail_saved_jobs(self, reason: str) -> None:
        for record, *_ in self._saved_jobs():
            self._drop_inputs(record["id"])
            self._persist_failure(record, reason)

    def _saved_jobs(self) -> list:
        try:
            return self.store.pending()
        except Exception:
            log.exception("could not read the jobs saved in the queue")
            return []

    def _persist_failure(self, record: dict, message: str) -> None:
        try:
            self.store.fail(record, time.time(), message)
        except Exception:
            log.exception("could not store job %s", record["id"])

    def _answer_from_cache(self, record: dict, images: list[dict]) -> dict:
        total = record["progress"]["total"]
        record.update(status="succeeded", images=images, cache="hit", finished_ts=record["created_ts"],
                      progress={"step": total, "total": total}, timings={"queued_s": 0.0, "run_s": 0.0})
        if not self._persist(record):
            raise ApiError(503, "storage_unavailable", "the job store cannot be written (see the server log)")
        self.metrics.cache_hits.inc()
        return self.public(record)

    def _notify(self) -> None:
        """Call with the lock held: wakes long-polls and event streams."""
        self._version += 1
        self._changed.notify_all()

    def _persist(self, record: dict) -> bool:
        """A storage error must not kill the worker: the job lives on in memory, and the log says why."""
        try:
            self.store.save(record)
            return True
        except Exception:
            log.exception("could not store job %s", record["id"])
            return False

    def _retry_after(self) -> int:
        """A place frees when the running job ends: about one average job from now."""
        average = sum(self._durations) / len(self._durations) if self._durations else 2.0
        return max(1, math.ceil(average))

    # ---- reading, waiting, cancelling -----------------------------------------------------
    def get(self, job_id: str) -> dict:
        with self._changed:
            job = self._live.get(job_id)
            if job is not None:
                record = dict(job.record)
                record["position"] = self._position(job)
                return self.public(record)
        record = self.store.get(job_id) if _looks_like_id(job_id) else None
        if record is None:
            raise ApiError(404, "job_not_found", f"no job {job_id!r} (it may have expired)", "id")
        return self.public(record)

    def _position(self, job: Job) -> int | None:
        if job is self._running or job is self._finishing:
            return 0
        try:
            return self._queue.index(job) + 1
        except ValueError:
            return None

    def wait(self, job_id: str, timeout: float) -> dict:
        """Return as soon as the job ends (or `timeout` passes): completion without polling delay."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._still_to_end(job_id):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
        return self.get(job_id)

    def _still_to_end(self, job_id: str) -> bool:
        """Live and not ended; or saved before a restart and waiting for the model to load."""
        if job_id in self._live:
            return self._live[job_id].record["status"] not in ENDED
        if self.engine is not None or self.load_error or not _looks_like_id(job_id):
            return False
        saved = self.store.get(job_id)
        return saved is not None and saved["status"] == "queued"

    def events(self, job_id: str, keepalive_s: float = 15.0) -> Iterator[dict | None]:
        """Each change of the job, then its final state; None now and then as a keep-alive."""
        last = None
        while True:
            with self._changed:
                seen = self._version  # read before the snapshot: a change after it is not missed
            current = self.get(job_id)
            snapshot = (current["status"], current["progress"]["step"], current["position"])
            if snapshot != last:
                last = snapshot
                yield current
            if current["status"] in ENDED or not self._worker.is_alive():
                return
            with self._changed:
                changed = self._changed.wait_for(lambda: self._version != seen, keepalive_s)
            if not changed:
                yield None  # outside the lock: a slow client must not hold up the worker

    def cancel(self, job_id: str) -> dict:
        with self._changed:
            job = self._live.get(job_id)
            if job is None:
                current = self.get(job_id)  # 404 if unknown
                if current["status"] == "queued":  # saved before a restart, the model still loading
                    return self._cancel_saved(job_id)
                raise ApiError(409, "job_ended", f"job {job_id} already ended ({current['status']})", "id")
            if job in self._queue:
                self._queue.remove(job)
                self._finish(job, "cancelled", error={"code": "cancelled", "message": "cancelled before it started"})
            else:
                job.cancel_requested = True  # the worker stops at the next step
                self._notify()
        return self.get(job_id)

    def _cancel_saved(self, job_id: str) -> dict:
        """Call with the lock held, which `_queue_saved_jobs` takes before it queues a saved job."""
        record = self.store.get(job_id)
        self._drop_inputs(job_id)
        record.update(status="cancelled", position=None, finished_ts=time.time(),
                      error={"code": "cancelled", "message": "cancelled before it started"})
        if not self._persist(record):
            raise ApiError(503, "storage_unavailable", "the job store cannot be written (see the server log)")
        self._notify()
        return self.public(record)

    def public(self, record: dict) -> dict:
        out = {k: v for k, v in record.items() if not k.endswith("_ts")}
        out["created_at"] = _iso(record["created_ts"])
        out["finished_at"] = _iso(record["finished_ts"]) if record.get("finished_ts") else None
        out["images"] = [{k: v for k, v in image.items() if k != "name"} for image in record["images"]]
        return out

    # ---- the worker ------------------------------------------------------------------------
    def _load_then_work(self, engine_loader: Callable) -> None:
        try:
            engine = engine_loader(self.settings)
            self._queue_saved_jobs(engine)  # before new requests: they were first
            with self._changed:
                self.engine = engine
                self._notify()  # long-polls on saved jobs wait for this
            log.info("model ready", extra={"model": self.engine.describe()})
        except Exception as exc:  # the server stays up and says why in /readyz
            log.exception("model failed to load")
            self.load_error = f"{type(exc).__name__}: {exc}"
            self._fail_saved_jobs(f"after the restart the model failed to load: {self.load_error}")
            with self._changed:
                self._notify()
            return
        try:
            self._work_forever()
        except BaseException:
            log.exception("the worker thread died")  # /readyz now says so
            raise

    def _work_forever(self) -> None:
        last_cleanup = time.monotonic()
        while True:
            if time.monotonic() - last_cleanup > 600:  # busy or idle, expired results go
                last_cleanup = time.monotonic()
                self.remove_expired()
            with self._changed:
                if not self._queue:
                    self._changed.wait(60)
                job = self._queue.popleft() if self._queue else None
                if job is not None:
                    self._running = job
                    job.started = time.monotonic()
                    self._heartbeat = job.started
                    job.record.update(status="running", timings={"queued_s": round(time.time() -
                                                                                 job.record["created_ts"], 3)})
                    self._persist(job.record)
                    self._notify()
            if job is not None:
                self._drop_inputs(job.record["id"])  # a job cut while running is not run again
                self._run(job)

    def _run(self, job: Job) -> None:
        try:
            raw = worker.generate(self, job)
        except Exception as exc:
            self._fail(job, exc)
            worker.release_free_heap()
            return
        self._hand_over(job, raw)

    def _hand_over(self, job: Job, raw: list) -> None:
        """Encoding and storing overlap the device's next job; at most one job's images wait for them."""
        if self._handed_over is not None:
            try:
                self._handed_over.result()
            except Exception:  # already logged; it must not take the worker down with it
                log.exception("finishing the previous job failed")
        with self._changed:
            self._running, self._finishing = None, job
        if self.settings.overlaps_finishing(self.engine.describe()["device"]):
            self._handed_over = self._finisher.submit(self._complete, job, raw)
        else:
            self._complete(job, raw)

    def _complete(self, job: Job, raw: list) -> None:
        try:
            encoded = worker.encode(self, job, raw)
            with self._file_references:
                images = worker.store(self, job, encoded)
                if job.cache_key:
                    self.cache.put(job.cache_key, images)
                self._finish(job, "succeeded", images=images)
        except Exception as exc:
            self._fail(job, exc)
        finally:
            with self._changed:
                if self._finishing is job:  # only if even failing it failed: never `running` forever
                    self._finishing = None
            worker.release_free_heap()

    def _fail(self, job: Job, exc: Exception) -> None:
        if isinstance(exc, JobFailure):
            status = "cancelled" if exc.code == "cancelled" else "failed"
            self._finish(job, status, error={"code": exc.code, "message": exc.message})
        else:
            log.error("job failed", exc_info=exc, extra={"job_id": job.record["id"]})
            self._finish(job, "failed", error={"code": "internal", "message": f"{type(exc).__name__}: {exc}"})

    def on_step(self, job: Job, step: int, total: int) -> None:
        """Called by the engine after every denoising step: progress, cancel and timeout."""
        with self._changed:
            self._heartbeat = time.monotonic()
            job.record["progress"] = {"step": step, "total": total}
            self._notify()
        if job.cancel_requested:
            raise JobFailure("cancelled", "cancelled while running")
        if time.monotonic() - job.started > self.settings.job_timeout_s:
            raise JobFailure("timeout", f"the job ran over JOB_TIMEOUT_S={self.settings.job_timeout_s:.0f}")

    def _finish(self, job: Job, status: str, images: list | None = None, error: dict | None = None) -> None:
        with self._changed:
            record = job.record
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
                self._live.pop(record["id"], None)  # else served from memory until a restart
            if self._running is job:
                self._running = None
            if self._finishing is job:
                self._finishing = None
            if not job.started:  # cancelled in the queue
                self._drop_inputs(record["id"])
            self._notify()
        log.info("job %s", status, extra={"job_id": record["id"], "task": record["task"], "run_s": run_s,
                                          "error": (error or {}).get("code")})

    def remove_expired(self) -> None:
        with self._file_references:
            try:
                stale = self.store.remove_expired(time.time() - self.settings.result_ttl_s)
            except Exception:
                log.exception("could not remove expired results")
                return
            self.files.remove(stale)


def _looks_like_id(job_id: str) -> bool:
    return len(job_id) == 32 and all(c in "0123456789abcdef" for c in job_id)


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
