"""The Dockerfile, built with podman on a local Debian base and run: /readyz, the health check, a tiny generate.

Skipped unless IMAGE_TEST=1 (`make image-test` sets it): the first build downloads torch and its CUDA
libraries inside the image and takes minutes; later builds reuse the cached layers.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image

from tests.deploy.containers import RUN_LIMITS, Podman, missing_tools
from tests.support import free_port

pytestmark = [
    pytest.mark.skipif(os.environ.get("IMAGE_TEST") != "1",
                       reason="builds and runs the container image: make image-test"),
    pytest.mark.timeout(2400),  # a cold build (base, then torch and its CUDA libraries) took 8 min here
]

TAG = "localhost/qwen-image:test"
APP_UID = 10001  # the Dockerfile's `app` user


@pytest.fixture(scope="module")
def podman():
    missing = missing_tools()
    if missing:
        pytest.fail(f"missing {', '.join(missing)}: apt-get install -y podman runc debootstrap")
    store = Podman()
    yield store
    store.release()


@pytest.fixture(scope="module")
def image(podman):
    started = time.monotonic()
    podman.build_server_image(TAG, podman.debian_base())
    print(f"\nimage built in {time.monotonic() - started:.0f} s, {podman.image_size_bytes(TAG) / 1e9:.2f} GB")
    return TAG


def test_image_holds_the_server_only_and_runs_it_unprivileged(podman, image):
    probe = ("import json, os, sys; print(json.dumps({'uid': os.getuid(), 'app': sorted(os.listdir('/app')), "
             "'pycache': [d for d, _, _ in os.walk('/app') if d.endswith('__pycache__')], "
             "'python': list(sys.version_info[:2]), 'env': {k: os.environ.get(k) for k in "
             "('HOST', 'PORT', 'DATA_DIR', 'HF_HOME')}}))")
    result = podman("run", "--rm", *RUN_LIMITS, "--network", "none", image, "python3", "-c", probe)
    facts = json.loads(result.stdout.strip().splitlines()[-1])
    assert facts["uid"] == APP_UID
    assert facts["app"] == ["inference_server", "requirements-ray.txt", "requirements.txt"]  # no plugin, tests, data
    assert facts["pycache"] == []
    assert facts["python"] >= [3, 12]
    assert facts["env"] == {"HOST": "0.0.0.0", "PORT": "8000", "DATA_DIR": "/data", "HF_HOME": "/models"}

    inspected = json.loads(podman("image", "inspect", image).stdout)[0]
    assert inspected["Config"]["User"] == "app"
    assert set(inspected["Config"]["Volumes"]) == {"/data", "/models"}
    assert "/readyz" in " ".join(inspected["Healthcheck"]["Test"])  # kept: built with --format docker


def test_refuses_to_listen_in_the_open_without_api_keys(podman, image):
    result = podman("run", "--rm", *RUN_LIMITS, "--network", "none", image, check=False, timeout=120)
    assert result.returncode != 0
    assert "refusing to listen on 0.0.0.0 without API_KEYS" in result.stdout + result.stderr


@contextlib.contextmanager
def running_server(podman, image, tmp_path, *run_options: str, **env: str):
    """The server in the container on a free loopback port, with a bind-mounted data folder and HF cache."""
    data, models = tmp_path / "data", tmp_path / "models"
    data.mkdir()
    models.mkdir()
    os.chown(data, APP_UID, APP_UID)  # as docs/deploy.md says for bind mounts
    name, port, key = f"qwen-image-test-{uuid.uuid4().hex[:8]}", free_port(), "container-key"
    settings = {"PORT": str(port), "HOST": "127.0.0.1", "API_KEYS": key, "MODEL_ID": "tiny", "HF_HUB_OFFLINE": "1",
                **env}
    podman("run", "-d", "--name", name, *RUN_LIMITS, "--network", "host", *run_options,
           *[arg for item in settings.items() for arg in ("-e", "=".join(item))],
           "-v", f"{data}:/data", "-v", f"{models}:/models:ro", image)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 600
        while True:
            state = podman("inspect", "--format", "{{.State.Status}}", name).stdout.strip()
            assert state == "running", f"container {state}: {podman('logs', name).stderr[-3000:]}"
            try:
                if requests.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"not ready: {podman('logs', name).stderr[-3000:]}"
            time.sleep(1)
        yield name, url, key, data
    finally:
        podman("rm", "-f", "-t", "10", name, check=False)


@pytest.fixture()
def container(podman, image, tmp_path):
    with running_server(podman, image, tmp_path) as running:
        yield running


def generate_one(url: str, key: str) -> tuple[dict, bytes]:
    """A tiny generate, waited for; its image ref and PNG bytes."""
    auth = {"Authorization": f"Bearer {key}"}
    response = requests.post(f"{url}/v1/generate", headers={**auth, "Prefer": "wait=60"}, timeout=120,
                             json={"prompt": "a red lantern", "width": 64, "height": 48, "seed": 7,
                                   "num_inference_steps": 2})
    job = response.json()
    assert response.status_code == 200 and job["status"] == "succeeded", job
    (image_ref,) = job["images"]
    png = requests.get(url + image_ref["url"], headers=auth, timeout=30)
    assert png.status_code == 200
    decoded = Image.open(io.BytesIO(png.content))
    assert (decoded.format, decoded.size) == ("PNG", (64, 48))
    return image_ref, png.content


def test_container_serves_the_tiny_model(podman, container):
    name, url, key, data = container
    # The image's own HEALTHCHECK command, run once by podman.
    assert podman("healthcheck", "run", name, check=False).returncode == 0

    assert requests.post(f"{url}/v1/generate", json={"prompt": "a"}, timeout=30).status_code == 401
    image_ref, png = generate_one(url, key)
    # The result is on the data volume, which outlives the container. The url carries a signature
    # (?expires=&sig=) when the server has keys; the file is named by its path.
    stored_name = urlsplit(image_ref["url"]).path.rsplit("/", 1)[-1]
    assert (data / "files" / stored_name).read_bytes() == png


def test_the_image_runs_jobs_on_ray_serve(podman, image, tmp_path):
    """EXECUTOR=ray in the image as built: a local Ray inside the container, one CPU replica, the same API."""
    with running_server(podman, image, tmp_path, "--shm-size", "1g",
                        EXECUTOR="ray", RAY_REPLICAS="1") as (name, url, key, data):
        generate_one(url, key)
        # The job ran on a Serve replica: Ray titles its process `ray::ServeReplica:<app>:<deployment>`.
        titles = ("import os\nfor pid in filter(str.isdigit, os.listdir('/proc')):\n"
                  "    try:\n        print(open(f'/proc/{pid}/cmdline', 'rb').read().decode(errors='replace'))\n"
                  "    except OSError:\n        pass\n")
        processes = podman("exec", name, "python3", "-c", titles).stdout
        assert "ServeReplica:qwen-image" in processes, processes[-2000:]
