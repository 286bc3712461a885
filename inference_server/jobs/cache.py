"""A bounded cache of finished results, for identical requests with an explicit seed."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Callable


class ResultCache:
    def __init__(self, capacity: int, still_valid: Callable[[list[dict]], bool]):
        self.capacity = capacity
        self._still_valid = still_valid  # the files may have expired since
        self._entries: OrderedDict[str, list[dict]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> list[dict] | None:
        with self._lock:
            images = self._entries.get(key)
            if images is None:
                return None
            if not self._still_valid(images):
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return [dict(image) for image in images]

    def put(self, key: str, images: list[dict]) -> None:
        if self.capacity <= 0:
            return
        with self._lock:
            self._entries[key] = [dict(image) for image in images]
            self._entries.move_to_end(key)
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
