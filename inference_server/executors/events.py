"""What crosses between the job service and an executor: plans one way, these typed events the other.

Plain picklable data, in the manner of Replicate cog's `eventtypes.py`: a job's events are zero or more
`Progress`, then `DeviceFree` (the device may take the next job while this one's images are encoded),
then either `ImagesStored` and `Done`, or `Failed`. No pixels: images travel as stored file names.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol

from inference_server.families import Family


@dataclass(frozen=True)
class ModelInfo:
    """A served model, as the HTTP side needs it to plan: its family decides sizes and defaults."""

    name: str  # `base`, `edit`: what a TaskSpec names
    model_id: str  # what was loaded: a hub id or a folder (reported in jobs, PNG text and /v1/info)
    family: Family
    device: str
    dtype: str

    def describe(self) -> dict:
        return {"model": self.model_id, "family": self.family.name, "device": self.device, "dtype": self.dtype}


@dataclass(frozen=True)
class Progress:
    job_id: str
    step: int
    total: int


@dataclass(frozen=True)
class DeviceFree:
    job_id: str


@dataclass(frozen=True)
class StoredImage:
    name: str  # the file's content-addressed name in storage; empty when the safety policy blocked it
    seed: int
    width: int
    height: int
    mime_type: str
    safety: dict | None = None  # what the safety checker found and did (safety/policy.py)


@dataclass(frozen=True)
class ImagesStored:
    job_id: str
    images: tuple[StoredImage, ...]
    model_id: str = ""


@dataclass(frozen=True)
class Done:
    job_id: str
    timings: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    job_id: str
    code: str  # cancelled, timeout, oom, worker_lost, storage, internal...
    message: str


@dataclass(frozen=True)
class Loaded:
    """The engine is up: its models by name, as `ModelInfo`; `capacity` jobs may run at once (replicas)."""

    models: dict
    capacity: int = 1


@dataclass(frozen=True)
class LoadFailed:
    message: str
    retry: bool = False  # the cause may pass (a cluster not reachable yet): start the engine again later


JobEvent = Progress | DeviceFree | ImagesStored | Done | Failed
ENDING = (Done, Failed)
# How an executor's `not_ready_reason` starts when the model cannot load: final, unlike a restart.
LOAD_FAILED = "the model failed to load"


class Executor(Protocol):
    """Runs plans somewhere (a child process, a thread, a Ray replica) and reports what happens."""

    def start(self) -> None:
        """Begin loading the models; returns at once."""

    def models(self) -> dict[str, ModelInfo] | None:
        """The loaded models by name; None while they load."""

    def not_ready_reason(self) -> str | None:
        """Why jobs cannot run now (loading, failed to load, restarting), or None."""

    def capacity(self) -> int:
        """How many jobs may run at once (one per replica); the dispatcher keeps that many in flight."""

    def submit(self, job_id: str, plan, fault: str | None = None) -> Iterator[JobEvent]:
        """Start a job; iterate its events until `Done` or `Failed`. `fault` is a test hook (INJECT_FAULTS)."""

    def cancel(self, job_id: str) -> None:
        """Ask the running job to stop at its next step; it then ends with `Failed("cancelled")`."""

    def stop(self) -> None:
        """Release the engine (end the child process, leave the cluster)."""
