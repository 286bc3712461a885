"""The Ray driver: a child of the HTTP process that speaks the local child's pipe protocol and runs jobs on
Ray Serve replicas (`ray_replica.py`).

Ray's client blocks in its own C++ and gRPC threads, which a gevent-patched process must not host, so the
front door keeps Ray in this plain process: plans in, events out, as with `child.py`. It joins the cluster at
RAY_ADDRESS (or starts one on loopback), deploys the replicas unless the same application already runs
there (a restarted front door reuses it), then streams each job's events from a replica on a thread of its
own; many jobs run at once, one per replica. If the cluster goes away it exits, and the supervisor in
`local.py` fails the jobs in flight with `worker_lost` and starts it again.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import os
import secrets
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import fields, replace
from pathlib import Path

from inference_server.executors.cancel_marks import CancelMarks
from inference_server.executors.child import connect_to_parent
from inference_server.executors.events import ENDING, Failed, LoadFailed, Loaded
from inference_server.executors.wire import read_message

log = logging.getLogger(__name__)
ROOT = Path(__file__).resolve().parents[2]  # the folder that holds `inference_server`
PING_EVERY_S = 5.0
BUSY_PAUSE_S = 0.5
LEAVING = threading.Event()  # set once the front door has gone: the cluster's silence is then expected
# Settings that only the HTTP side reads: changing them does not call for new replicas.
HTTP_ONLY = {"host", "port", "api_keys", "cors_origins", "max_connections", "header_timeout_s", "body_timeout_s",
             "max_waits_per_key", "max_queue", "max_upload_mb", "cache_size", "result_ttl_s", "worker_stall_s",
             "log_prompts", "executor", "ray_address", "prompt_blocklist", "public_base_url", "file_url_secret",
             "file_url_ttl_s", "openai_wait_s", "rate_limit", "admin_keys", "shared_cache", "storage_failures_unready"}


def ray_environment(loopback: bool) -> None:
    """Before Ray is imported (it reads these once). On loopback, every port Ray opens stays on 127.0.0.1
    (with `_node_ip_address`); a driver of a multi-host cluster must be reachable from the other hosts."""
    if loopback:
        os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["RAY_USAGE_STATS_ENABLED"] = "0"
    os.environ.pop("RAY_ADDRESS", None)  # our setting of the same name is passed explicitly
    paths = [str(ROOT), *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    os.environ["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))  # workers import `inference_server`


def connect(settings) -> None:
    host, _, port = settings.ray_address.rpartition(":")
    ray_environment(loopback=not settings.ray_address or _is_loopback(host))
    if not settings.ray_address and not (os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH")):
        # A token of the local cluster's own, handed down through the environment: none written to ~/.ray.
        os.environ.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=secrets.token_hex(32))
    import ray  # after the environment: Ray reads it once

    from inference_server.executors.ray_replica import NAMESPACE  # imports Ray too

    if settings.ray_address:  # a token-auth cluster needs RAY_AUTH_MODE=token and its token in our environment
        with socket.create_connection((host or "127.0.0.1", int(port)), timeout=5):  # fail fast, not in 60 s
            pass
        ray.init(address=settings.ray_address, namespace=NAMESPACE, log_to_driver=False)
    else:
        ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, namespace=NAMESPACE,
                 _temp_dir=str(ray_temp_dir(settings.data_dir)), object_store_memory=512 * 2**20,
                 log_to_driver=False)


def _is_loopback(host: str) -> bool:
    try:
        return host in ("", "localhost") or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def ray_temp_dir(data_dir: Path) -> Path:
    """Under DATA_DIR, unless that path is too long for the Unix sockets Ray makes inside it (107 bytes for
    `<this>/session_<date>_<time>_<pid>/sockets/plasma_store`)."""
    folder = Path(data_dir).resolve() / "ray"
    if len(str(folder)) > 40:
        digest = hashlib.sha1(str(folder).encode()).hexdigest()[:10]
        folder = Path(tempfile.gettempdir()) / f"qwen-ray-{digest}"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def replica_count(settings) -> int:
    import ray

    if settings.ray_replicas.strip().lower() != "auto":
        return max(1, int(settings.ray_replicas))
    return max(1, int(ray.cluster_resources().get("GPU", 0)))


def actor_options(replicas: int) -> dict:
    import ray

    if ray.cluster_resources().get("GPU", 0) >= 1:
        return {"num_gpus": 1}
    cpus = ray.cluster_resources().get("CPU", 1)
    return {"num_cpus": min(0.5, cpus / (replicas + 1))}  # a whole CPU each would leave replicas unscheduled


def fingerprint(settings, loader: str, replicas: int) -> str:
    engine_side = {f.name: getattr(settings, f.name) for f in fields(settings) if f.name not in HTTP_ONLY}
    return hashlib.sha256(repr((sorted(engine_side.items()), loader, replicas)).encode()).hexdigest()


def deploy(settings, loader: str):
    """A handle to the replicas, deployed unless the same application already runs (a restarted front door)."""
    import ray
    from ray import serve
    from ray.serve.schema import ApplicationStatus

    from inference_server.executors import ray_replica

    settings = replace(settings, data_dir=Path(settings.data_dir).resolve())  # replicas run elsewhere
    replicas = replica_count(settings)
    wanted = fingerprint(settings, loader, replicas)
    board = ray_replica.cancel_board()
    serve.start(proxy_location="Disabled")  # Serve's HTTP proxy would take port 8000: we call through handles
    running = serve.status().applications.get(ray_replica.APP_NAME)
    # Serve heals replicas of a deployed application itself (DEPLOYING, UNHEALTHY while one restarts): only one
    # that failed, is going, or was deployed with other settings is deployed again.
    reusable = running is not None and running.status in (ApplicationStatus.RUNNING, ApplicationStatus.DEPLOYING,
                                                          ApplicationStatus.UNHEALTHY)
    if reusable and ray.get(board.deployed.remote()) == wanted:
        log.info("reusing the running Ray Serve application", extra={"replicas": replicas,
                                                                    "status": str(running.status)})
    else:
        app = ray_replica.EngineReplica.options(
            num_replicas=replicas, max_queued_requests=replicas,
            ray_actor_options=actor_options(replicas)).bind(settings, loader, os.environ.get("OMP_NUM_THREADS"))
        serve.run(app, name=ray_replica.APP_NAME, route_prefix=None)
        ray.get(board.set_deployed.remote(wanted))
    handle = serve.get_deployment_handle(ray_replica.DEPLOYMENT, app_name=ray_replica.APP_NAME)
    return handle, board, replicas


class Bridge:
    def __init__(self, handle, board, emit):
        self.handle = handle
        self.board = board
        self.emit = emit
        self._cancelled = CancelMarks()  # read by `run` while it waits for a busy Serve

    def run(self, job_id: str, plan, fault: str | None) -> None:
        """Stream one job's events from a replica; a replica that dies mid-job ends it with `worker_lost`."""
        from ray.exceptions import ActorUnavailableError, RayActorError
        from ray.serve.exceptions import BackPressureError

        ended = False
        self._cancelled.accept(job_id)
        try:
            while True:
                try:
                    for event in self.handle.options(stream=True).run.remote(job_id, plan, fault):
                        self.emit(event)
                        ended = ended or isinstance(event, ENDING)
                    break
                except BackPressureError:  # another front door filled Serve's queue: ours holds the job meanwhile
                    if self._cancelled.is_cancelled(job_id):
                        self.emit(Failed(job_id, "cancelled", "cancelled before it started"))
                        ended = True
                        return
                    time.sleep(BUSY_PAUSE_S)
        except (RayActorError, ActorUnavailableError) as exc:
            log.error("the replica running job %s died: %s", job_id, str(exc).splitlines()[0])
        except Exception as exc:
            log.exception("job %s failed on Ray", job_id)
            self.emit(Failed(job_id, "internal", f"{type(exc).__name__}: {exc}"))
            ended = True
        finally:
            self._cancelled.forget(job_id)
            if not ended:
                self.emit(Failed(job_id, "worker_lost", "the Ray replica running the job died; Ray restarts it: "
                                                        "submit the job again"))

    def cancel(self, job_id: str) -> None:
        self._cancelled.cancel(job_id)
        self.board.cancel.remote(job_id)

    def watch_cluster(self) -> None:
        """A cluster that stopped answering ends this process: the supervisor starts it again, and /readyz
        names Ray until it answers."""
        import ray

        while not LEAVING.wait(PING_EVERY_S):
            try:
                ray.get(self.board.deployed.remote(), timeout=PING_EVERY_S * 2)
            except Exception as exc:
                if LEAVING.is_set():  # the front door is going: ray.shutdown() is under way
                    return
                log.error("the Ray cluster does not answer: %s", exc)
                os._exit(3)


def shut_down_on_sigterm() -> None:
    """Leave the cluster cleanly when the front door goes (a pipe at EOF, SIGTERM, or the parent's death):
    a local Ray killed outright leaves its agents behind, retrying a dead GCS for a minute."""

    def leave(_signum, _frame):
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, leave)


def main() -> int:
    shut_down_on_sigterm()
    commands_in, emit = connect_to_parent(death_signal=signal.SIGTERM)  # not the engine child's SIGKILL
    start = read_message(commands_in)
    if start is None:
        return 0
    _, settings, loader = start
    try:
        return serve_jobs(settings, loader, commands_in, emit)
    finally:
        import ray

        LEAVING.set()
        if ray.is_initialized():
            ray.shutdown()  # the front door is stopping; a cluster we joined keeps its replicas for the next one


def serve_jobs(settings, loader: str, commands_in, emit) -> int:
    where = settings.ray_address or "a local Ray instance"
    try:
        connect(settings)
    except Exception as exc:
        if not settings.ray_address:
            log.exception("Ray did not start")
            emit(LoadFailed(f"a local Ray did not start: {type(exc).__name__}: {exc}"))
            return 1
        log.error("Ray is not reachable: %s", exc)
        emit(LoadFailed(f"Ray is not reachable at {where}: {type(exc).__name__}: {exc}", retry=True))
        return 1
    try:
        handle, board, replicas = deploy(settings, loader)
        models = handle.model_infos.remote().result(timeout_s=600)
    except Exception as exc:
        log.exception("the Ray Serve replicas failed to start")
        emit(LoadFailed(f"the Ray Serve replicas failed to start on {where}: {type(exc).__name__}: {exc}"))
        return 1
    emit(Loaded(models, capacity=replicas))
    bridge = Bridge(handle, board, emit)
    threading.Thread(target=bridge.watch_cluster, name="ray-ping", daemon=True).start()
    while (command := read_message(commands_in)) is not None:
        if command[0] == "cancel":
            bridge.cancel(command[1])
        else:
            threading.Thread(target=bridge.run, args=command[1:], name=f"job-{command[1]}", daemon=True).start()
    return 0


if __name__ == "__main__":
    sys.exit(main())
