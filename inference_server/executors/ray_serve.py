"""EXECUTOR=ray: jobs run on Ray Serve replicas, one per GPU, each running one job at a time.

The HTTP process stays free of Ray as it is of torch: it supervises the Ray driver (`ray_bridge.py`) as the
local executor supervises its engine, over the same pipes and events. `capacity()` is the replica count, so
the job service keeps one job in flight per replica and its own queue, with its 429, holds across the cluster.
"""

from __future__ import annotations

from inference_server.executors.local import LocalExecutor


class RayExecutor(LocalExecutor):
    CHILD_MODULE = "inference_server.executors.ray_bridge"
