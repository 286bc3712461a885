"""A bounded cache of finished results, for identical requests with an explicit seed.

Each entry remembers the job that made the images, so a hit is stored as a pointer to it, not a copy.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import Callable

log = logging.getLogger(__name__)


class ResultCache:
    def __init__(self, capacity: int, still_valid: Callable[[list[dict]], bool]):
        self.capacity = capacity
        self._still_valid = still_valid  # the files may have expired since
        self._entries: OrderedDict[str, tuple[str, list[dict]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> tuple[str, list[dict]] | None:
        """(the id of the job that made the images, the images), or None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            origin, images = entry
            if not self._still_valid(images):
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return origin, [dict(image) for image in images]

    def put(self, key: str, origin: str, images: list[dict]) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._entries[key] = (origin, [dict(image) for image in images])
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)

    def forget(self, origins: set[str]) -> None:
        """Drop the entries made by these jobs (they expired: a hit must not point at a removed job)."""
        if not origins:
            return
        with self._lock:
            for key in [key for key, (origin, _) in self._entries.items() if origin in origins]:
                del self._entries[key]


def files_present(files) -> Callable[[list[dict]], bool]:
    """A cached result is valid while its files are still there (expiry may have taken them); a store that
    cannot say (a bucket out of reach) means no cache hit, never an error."""
    def check(images: list[dict]) -> bool:
        try:
            return all(files.exists(image["name"]) for image in images if image.get("name"))
        except RuntimeError:
            log.exception("could not look up cached result files")
            return False

    return check
