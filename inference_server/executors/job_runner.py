"""Runs plans on a loaded engine, wherever the engine lives (the child process, or a test's thread).

The device's half (denoise and decode) runs on the caller's thread. The CPU's half (paste edits back,
encode, store) runs on a finisher thread when finishing overlaps the next job, so the device is free
for it (`DeviceFree`); at most one job's images wait to be encoded. Cancel and timeout are checked at
every step; nothing is raised into the engine from outside.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Callable

from inference_server.compositing import apply_finish
from inference_server.config import Settings
from inference_server.errors import JobFailure
from inference_server.executors.cancel_marks import CancelMarks
from inference_server.executors.events import DeviceFree, Done, Failed, ImagesStored, JobEvent, Progress, StoredImage
from inference_server.heap import release_free_heap
from inference_server.imaging import EXTENSIONS, MIME_TYPES, a1111_parameters, encode_image
from inference_server.safety import policy
from inference_server.safety.checkers import SafetyUnavailable, load_checker
from inference_server.storage import open_store

log = logging.getLogger(__name__)
INTERNAL_MESSAGE = "the job failed on an internal error; the server log has the detail under this job's id"


class JobRunner:
    def __init__(self, engine, settings: Settings, emit: Callable[[JobEvent], None]):
        self.engine = engine
        self.settings = settings
        self.files = open_store(settings)
        self._emit = emit
        # Loaded before the engine reports ready: a checker that cannot load is a load failure /readyz names.
        self.checker = load_checker(settings.safety_checker, settings.safety_labels, settings.safety_threshold)
        self.cancels = CancelMarks()
        self._overlap = settings.overlaps_finishing(engine.device)
        self._finisher = ThreadPoolExecutor(1, thread_name_prefix="finisher")
        self._previous_finish: Future | None = None

    def accept(self, job_id: str) -> None:
        """A run is on its way (maybe queued behind others): a cancel for it counts from now on."""
        self.cancels.accept(job_id)

    def cancel(self, job_id: str) -> None:
        self.cancels.cancel(job_id)

    def _is_cancelled(self, job_id: str) -> bool:
        return self.cancels.is_cancelled(job_id)

    def run(self, job_id: str, plan, fault: str | None = None) -> None:
        self.accept(job_id)
        started = time.monotonic()

        def on_step(step: int, total: int) -> None:
            self._emit(Progress(job_id, step, total))
            if self._is_cancelled(job_id):
                raise JobFailure("cancelled", "cancelled while running")
            if time.monotonic() - started > self.settings.job_timeout_s:
                raise JobFailure("timeout", f"the job ran over JOB_TIMEOUT_S={self.settings.job_timeout_s:.0f}")

        try:
            raw = self.engine.make_images(plan, on_step, fault=fault,
                                          should_stop=lambda: self._is_cancelled(job_id))
            if self._is_cancelled(job_id):  # it came during the last decode: the caller was told it is cancelled
                raise JobFailure("cancelled", "cancelled while running")
            swaps = getattr(self.engine, "swaps", None)  # a fake engine in tests may have no placement at all
            timings = {"swap_s": round(self.engine.last_swap_s, 3)} if swaps and swaps() else {}
        except Exception as exc:
            self._end_failed(job_id, exc)
            release_free_heap()
            return
        self._wait_for_previous_finish()
        if self._overlap:
            self._emit(DeviceFree(job_id))
            self._previous_finish = self._finisher.submit(self._finish, job_id, plan, raw, fault, started, timings)
        else:
            self._finish(job_id, plan, raw, fault, started, timings)

    def _wait_for_previous_finish(self) -> None:
        if self._previous_finish is not None:
            try:
                self._previous_finish.result()
            except Exception:  # already reported as the job's failure; it must not stop this one
                log.exception("finishing the previous job failed")

    def _finish(self, job_id: str, plan, raw: list, fault: str | None, started: float, timings: dict) -> None:
        try:
            self.engine.before_encoding(fault)
            model_id = self.engine.model_id(plan.model)
            encoded = []
            for seed, image in zip(plan.seeds, raw):
                final, safety = self._screen(apply_finish(plan.finish, image))
                text = a1111_parameters(plan.params, seed, model_id) if self.settings.png_metadata else None
                data = None if final is None else encode_image(final, plan.params["output_format"], text)
                encoded.append((seed, data, image.size if final is None else final.size, safety))
            if self._is_cancelled(job_id):  # it came while the images were encoded: store nothing
                raise JobFailure("cancelled", "cancelled while running")
            images = tuple(self._store(plan.params["output_format"], *image) for image in encoded)
            self._emit(ImagesStored(job_id, images, model_id))  # blocked ones too: the service counts them
            if policy.all_blocked([image.safety for image in images]):
                raise JobFailure(policy.UNSAFE_CONTENT, "every image of this job was blocked by the server's "
                                                        "content policy (SAFETY_POLICY=block)")
            self._emit(Done(job_id, {**timings, "run_s": round(time.monotonic() - started, 3)}))
        except Exception as exc:
            self._end_failed(job_id, exc)
        finally:
            self.cancels.forget(job_id)
            release_free_heap()

    def _screen(self, image):
        """(image to store or None, its safety entry); never an unchecked image."""
        try:
            return policy.screen(self.checker, image, self.settings.safety_policy)
        except SafetyUnavailable as exc:
            log.error("the safety checker failed: %s", exc)
            raise JobFailure("safety_unavailable", "the safety checker failed, so no image is returned "
                                                   "(see the server log)") from None

    def _store(self, output_format: str, seed: int, data: bytes | None, size: tuple[int, int],
               safety: dict) -> StoredImage:
        if data is None:  # blocked: nothing touches the disk
            return StoredImage("", seed, size[0], size[1], "", safety)
        try:
            name = self.files.save(data, EXTENSIONS[output_format])
        except (OSError, RuntimeError) as exc:  # a full disk, a read-only folder, a bucket that refuses
            log.error("could not store an image: %s", exc)
            raise JobFailure("storage", "the result could not be stored (see the server log)") from None
        return StoredImage(name, seed, size[0], size[1], MIME_TYPES[output_format], safety)

    def _end_failed(self, job_id: str, exc: Exception) -> None:
        self.cancels.forget(job_id)
        if isinstance(exc, JobFailure):
            self._emit(Failed(job_id, exc.code, exc.message))
        else:  # the detail (paths, library messages) goes to the log; the client gets a code and plain words
            log.error("job %s failed", job_id, exc_info=exc, extra={"job_id": job_id})
            self._emit(Failed(job_id, "internal", INTERNAL_MESSAGE))

    def close(self) -> None:
        self._wait_for_previous_finish()
        self._finisher.shutdown(wait=True)
