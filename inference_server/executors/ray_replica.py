"""What runs inside the Ray cluster: the engine replicas (a Serve deployment) and the cancel board (an actor).

A replica loads the models once, through the same loader as the local child, and runs one job at a time
with the same `JobRunner`, so its images are byte-identical to `EXECUTOR=local`. A job's events stream back
to the caller as the items of `run`. Cancel travels through a named detached actor: the front door cannot
pick the replica that serves a request, but the replica running a job waits on the board for that job's id.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import ray
from ray import serve

from inference_server.executors.child import load_callable
from inference_server.executors.events import ENDING
from inference_server.executors.job_runner import JobRunner

log = logging.getLogger(__name__)
NAMESPACE = "qwen_image"
APP_NAME = "qwen-image"
DEPLOYMENT = "EngineReplica"
BOARD_NAME = "qwen-image-board"
REMEMBERED_CANCELS = 10_000
CANCEL_WAIT_S = 30.0


@ray.remote(num_cpus=0, max_restarts=-1)
class CancelBoard:
    """Job ids to cancel, and the fingerprint of the deployed application (so a new front door can reuse it)."""

    def __init__(self):
        self._cancelled: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._wakers: dict[str, asyncio.Event] = {}
        self._deployed = ""

    async def cancel(self, job_id: str) -> None:
        self._cancelled[job_id] = None
        while len(self._cancelled) > REMEMBERED_CANCELS:  # cancels of jobs that had already ended
            self._cancelled.popitem(last=False)
        if job_id in self._wakers:
            self._wakers[job_id].set()

    async def wait_for_cancel(self, job_id: str, timeout: float) -> bool:
        """True as soon as the job is cancelled; False after `timeout` or once it is forgotten."""
        if job_id not in self._cancelled:
            waker = self._wakers.setdefault(job_id, asyncio.Event())
            try:
                await asyncio.wait_for(waker.wait(), timeout)
            except asyncio.TimeoutError:
                pass
        return job_id in self._cancelled

    async def forget(self, job_id: str) -> None:
        """The job ended: release its waiter."""
        self._cancelled.pop(job_id, None)
        waker = self._wakers.pop(job_id, None)
        if waker is not None:
            waker.set()

    async def deployed(self) -> str:
        return self._deployed

    async def set_deployed(self, fingerprint: str) -> None:
        self._deployed = fingerprint


def cancel_board() -> ray.actor.ActorHandle:
    """The one board of this cluster, made on first use and kept when front doors come and go."""
    return CancelBoard.options(name=BOARD_NAME, namespace=NAMESPACE, lifetime="detached",
                               get_if_exists=True).remote()


@serve.deployment(name=DEPLOYMENT, max_ongoing_requests=1, health_check_period_s=2, health_check_timeout_s=30)
class EngineReplica:
    def __init__(self, settings, loader: str, front_door_omp_threads: str | None = None):
        _bind_serve_grpc_to_the_node_address()
        if not ray.get_gpu_ids():  # before torch loads: the CPU threads of EXECUTOR=local, so the same bytes
            _use_omp_threads(front_door_omp_threads)
        # Encoding overlapped with the next job would need a second request on this replica: one at a time.
        self.settings = replace(settings, overlap_finishing="0")
        with _host_lock(Path(settings.data_dir) / ".engine-load.lock"):  # one tiny-model build per host
            self.engine = load_callable(loader)(self.settings)
        self._outboxes: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}
        self.runner = JobRunner(self.engine, self.settings, self._route)
        self._device = ThreadPoolExecutor(1, thread_name_prefix="device")  # a job left by its caller still ends first
        self._board = cancel_board()

    def model_infos(self) -> dict:
        return self.engine.model_infos()

    def _route(self, event) -> None:
        outbox = self._outboxes.get(event.job_id)
        if outbox is not None:
            loop, events = outbox
            loop.call_soon_threadsafe(events.put_nowait, event)

    async def run(self, job_id: str, plan, fault: str | None = None):
        """The job's events, ending with `Done` or `Failed`."""
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        self._outboxes[job_id] = (loop, events)
        self.runner.accept(job_id)  # before the watcher: a cancel may come before the device thread starts it
        watcher = asyncio.create_task(self._watch_cancel(job_id))
        loop.run_in_executor(self._device, self.runner.run, job_id, plan, fault)
        try:
            while True:
                event = await events.get()
                yield event
                if isinstance(event, ENDING):
                    return
        except (asyncio.CancelledError, GeneratorExit):  # the caller went away: stop the job at its next step
            self.runner.cancel(job_id)
            raise
        finally:
            watcher.cancel()
            self._outboxes.pop(job_id, None)
            self._board.forget.remote(job_id)

    async def _watch_cancel(self, job_id: str) -> None:
        while not await self._board.wait_for_cancel.remote(job_id, CANCEL_WAIT_S):
            pass
        self.runner.cancel(job_id)


def _use_omp_threads(value: str | None) -> None:
    """Ray gives a fractional-CPU worker OMP_NUM_THREADS=1; the local engine child inherits the server's
    setting (usually none: every core). Float sums split over another number of threads round differently."""
    if value is None:
        os.environ.pop("OMP_NUM_THREADS", None)
    else:
        os.environ["OMP_NUM_THREADS"] = value


def _bind_serve_grpc_to_the_node_address() -> None:
    """Serve 2.60 binds each replica's inter-deployment gRPC server to `[::]`, every interface, whatever the
    node's address: bind it to the node's address instead (127.0.0.1 for a local Ray). It starts after the
    replica's constructor, so patching the name that module calls is early enough."""
    from ray.serve._private import replica as serve_replica

    original = serve_replica.add_port_to_grpc_server
    if getattr(original, "bound_to_node", False):
        return
    node_address = ray.util.get_node_ip_address()

    def add_port(server, address: str):
        return original(server, address.replace("[::]", node_address, 1))

    add_port.bound_to_node = True
    serve_replica.add_port_to_grpc_server = add_port


class _host_lock:
    """An exclusive file lock: replicas on one host load (and build the tiny model) one after another."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "a")
        fcntl.flock(self._file, fcntl.LOCK_EX)

    def __exit__(self, *exc) -> None:
        fcntl.flock(self._file, fcntl.LOCK_UN)
        self._file.close()
