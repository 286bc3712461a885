"""A real Ray head on loopback, started and stopped by PID, for servers that join it with RAY_ADDRESS."""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support import ROOT, free_port

LOOPBACK_ENV = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0"}


class RayHead:
    """`ray start --head --block` in its own session: stopping it ends the GCS, the raylet and their agents."""

    def __init__(self, temp_dir: Path, num_cpus: int = 2):
        self.temp_dir = Path(temp_dir)
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.num_cpus = num_cpus
        self.process: subprocess.Popen | None = None
        # Its own token, given to whoever joins (RAY_ADDRESS), rather than one written to ~/.ray.
        self.auth_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}

    def start(self, timeout: float = 120) -> "RayHead":
        self.temp_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **LOOPBACK_ENV, **self.auth_env, "PYTHONPATH": str(ROOT)}
        env.pop("RAY_ADDRESS", None)
        ray = str(Path(sys.executable).with_name("ray"))
        command = [ray, "start", "--head", "--block", "--node-ip-address=127.0.0.1", f"--port={self.port}",
                   f"--ray-client-server-port={free_port()}", f"--num-cpus={self.num_cpus}", "--num-gpus=0",
                   "--include-dashboard=false", "--disable-usage-stats", f"--temp-dir={self.temp_dir}",
                   f"--object-store-memory={300 * 2**20}"]
        log = open(self.temp_dir / "head.log", "ab")
        self.process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while "Ray runtime started" not in self.log():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the Ray head did not start: {self.log()[-3000:]}")
            time.sleep(0.5)
        return self

    def log(self) -> str:
        path = self.temp_dir / "head.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        """SIGTERM to `ray start --block` stops what it started; then the session's leftovers, by group id."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self.process.poll() is None:
            self.process.wait()
