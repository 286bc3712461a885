"""Podman with a private store, and a Debian base image made locally, for building and running our image.

No container registry can be reached from these machines, so the base is made with debootstrap from the
Debian mirror apt already uses, and imported. Everything lives under one cache folder (IMAGE_TEST_DIR,
default .cache/image-test, gitignored) and is reused by the next run: the base, and the image's layers.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = Path(os.environ.get("IMAGE_TEST_DIR") or ROOT / ".cache" / "image-test")
# trixie's python3 is 3.13; the server needs 3.12 or newer.
RELEASE = os.environ.get("IMAGE_TEST_RELEASE", "trixie")
# Locally added CAs (a TLS-inspecting proxy's, for one): the base gets them, as a site's own base image would.
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
# crun fails on these machines (setrlimit without CAP_SYS_RESOURCE, hybrid cgroups): runc with explicit limits.
RUN_LIMITS = ["--runtime", "runc", "--ulimit", "nofile=1024:1024", "--ulimit", "nproc=4096:4096"]


def missing_tools() -> list[str]:
    return [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]


def debian_mirror() -> str:
    """The first Debian archive in apt's sources (IMAGE_TEST_MIRROR overrides)."""
    if os.environ.get("IMAGE_TEST_MIRROR"):
        return os.environ["IMAGE_TEST_MIRROR"]
    sources = sorted(Path("/etc/apt").glob("sources.list.d/*.sources")) + sorted(Path("/etc/apt").glob("sources.list*"))
    for path in sources:
        if not path.is_file():
            continue
        for url in re.findall(r"https?://\S+", "\n".join(line for line in path.read_text().splitlines()
                                                       if not line.lstrip().startswith("#"))):
            if url.rstrip("/").endswith("/debian"):
                return url
    return "http://deb.debian.org/debian"


class Podman:
    """`podman` on a private storage root under the cache folder, so tests never touch the machine's images."""

    def __init__(self, cache: Path = CACHE):
        self.cache = cache
        self.global_flags = ["--root", str(cache / "storage"), "--runroot", str(cache / "run"),
                             "--storage-driver", "overlay", "--cgroup-manager", "cgroupfs", "--events-backend", "file"]

    def __call__(self, *args: str, check: bool = True, timeout: float = 1800, **kwargs) -> subprocess.CompletedProcess:
        result = subprocess.run(["podman", *self.global_flags, *args], capture_output=True, text=True,
                                timeout=timeout, **kwargs)
        if check and result.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args[:3])} failed ({result.returncode}):\n"
                               f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}")
        return result

    def image_exists(self, tag: str) -> bool:
        result = self("image", "exists", tag, check=False)
        if result.returncode not in (0, 1):  # 1: no such image; anything else is a broken store
            raise RuntimeError(f"podman image exists {tag}: {result.stderr}")
        return result.returncode == 0

    def release(self) -> None:
        """The overlay driver leaves its folder bind-mounted; unmount it so the cache folder can be deleted."""
        mount = self.cache / "storage" / "overlay"
        if os.path.ismount(mount):
            subprocess.run(["umount", str(mount)], check=False, capture_output=True)

    def debian_base(self) -> str:
        """The debootstrapped Debian base (made once, ~1 min), plus a layer with the host's local CAs."""
        base = f"localhost/qwen-image-base:{RELEASE}"
        if not self.image_exists(base):
            self.cache.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=self.cache) as scratch:
                rootfs = Path(scratch) / "rootfs"
                subprocess.run(["debootstrap", "--variant=minbase", RELEASE, str(rootfs), debian_mirror()],
                               check=True, capture_output=True, timeout=900)
                tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
                self("import", "-", base, stdin=tar.stdout)
                tar.wait()
        cas = sorted(LOCAL_CAS.glob("*.crt")) if LOCAL_CAS.is_dir() else []
        if not cas:
            return base
        digest = hashlib.sha256(b"".join(ca.name.encode() + ca.read_bytes() for ca in cas)).hexdigest()[:12]
        with_cas = f"{base}-ca-{digest}"
        if not self.image_exists(with_cas):
            with tempfile.TemporaryDirectory(dir=self.cache) as context:
                for ca in cas:
                    shutil.copy(ca, Path(context) / ca.name)
                Path(context, "Containerfile").write_text(
                    f"FROM {base}\nCOPY *.crt /usr/local/share/ca-certificates/\n")
                self("build", "--network", "none", "-t", with_cas, context)
        return with_cas

    def build_server_image(self, tag: str, base: str) -> None:
        """The project's Dockerfile on the given base; pip inside reaches the registry through the host's network."""
        self("build", "--format", "docker", "--network", "host", "--build-arg", f"BASE_IMAGE={base}",
             "-t", tag, "-f", str(ROOT / "Dockerfile"), str(ROOT))
        self("image", "prune", "-f", check=False)  # the layers an earlier build replaced

    def image_size_bytes(self, tag: str) -> int:
        return int(self("image", "inspect", "--format", "{{.Size}}", tag).stdout.strip())
