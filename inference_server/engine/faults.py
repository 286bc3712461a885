"""The tests' fault hooks (INJECT_FAULTS=1 only), as a wrapper engine chosen at load time.

The `X-Inject-Fault` header of a request reaches here as the job's `fault`; the real engine never sees it:
- `slow=S` sleeps S s per step;
- `wedge` stops beating at step 1 until the job is cancelled;
- `oom` raises CUDA's out-of-memory error from the first step;
- `slow_finish=S` sleeps S s before the images are encoded;
- `crash` ends the engine's process at the first step (as the OOM killer would);
- `os_error` raises, from the first step, an OSError that names a file under the server's folders.
"""

from __future__ import annotations

import os
import time

import torch


class FaultyEngine:
    def __init__(self, engine):
        self._engine = engine

    def __getattr__(self, name: str):  # anything not faulted: the wrapped engine's (models, device, model_id...)
        return getattr(self._engine, name)

    def make_images(self, plan, on_step, fault=None, should_stop=lambda: False):
        if not fault:
            return self._engine.make_images(plan, on_step)

        def faulty_step(step: int, total: int) -> None:
            if fault.startswith("slow="):
                time.sleep(float(fault.split("=", 1)[1]))
            elif fault == "oom":
                raise torch.OutOfMemoryError("CUDA out of memory (injected by the test hook)")
            elif fault == "crash":
                os._exit(137)
            elif fault == "os_error":
                raise OSError(30, "Read-only file system", os.path.join(os.getcwd(), "files", "injected.tmp"))
            elif fault == "wedge" and step == 1:
                while not should_stop():
                    time.sleep(0.05)
            on_step(step, total)

        return self._engine.make_images(plan, faulty_step)

    def before_encoding(self, fault: str | None) -> None:
        if fault and fault.startswith("slow_finish="):
            time.sleep(float(fault.split("=", 1)[1]))

    def call_pipeline(self, *args, **kwargs):
        return self._engine.call_pipeline(*args, **kwargs)
