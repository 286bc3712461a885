"""Result images on disk, named by their content hash (no job ids: same pixels, same file)."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path

_NAME = re.compile(r"^[0-9a-f]{40}\.(png|webp|jpg)$")


class FileStore:
    def __init__(self, folder: Path):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)

    def save(self, data: bytes, extension: str) -> str:
        name = f"{hashlib.sha256(data).hexdigest()[:40]}.{extension}"
        path = self.folder / name
        if path.exists():
            os.utime(path)
        else:
            temporary = path.with_suffix(".tmp")
            temporary.write_bytes(data)
            temporary.replace(path)
        return name

    def path(self, name: str) -> Path | None:
        """Only names this store made resolve: no user input ever becomes a filesystem path."""
        if not _NAME.match(name):
            return None
        path = self.folder / name
        return path if path.is_file() else None

    def read(self, name: str) -> bytes | None:
        """The file's bytes, or None when there is no such file (or the name is not one of ours)."""
        path = self.path(name)
        try:
            return path.read_bytes() if path is not None else None
        except FileNotFoundError:  # expired between the look-up and the read
            return None

    def exists(self, name: str) -> bool:
        return self.path(name) is not None

    def remove(self, names: set[str], untouched_since: float | None = None) -> None:
        """Delete these files; with `untouched_since`, spare one saved again since (a new job's identical result)."""
        for name in names:
            path = self.path(name)
            if path is None:
                continue
            try:
                if untouched_since is not None and path.stat().st_mtime >= untouched_since:
                    continue
                path.unlink(missing_ok=True)
            except FileNotFoundError:
                pass

    def probe(self) -> None:
        """Write and remove a small file; raises OSError where a result could not be stored (read-only, full)."""
        path = self.folder / f".probe-{os.getpid()}.tmp"
        path.write_bytes(b"\0" * 4096)
        path.unlink()
