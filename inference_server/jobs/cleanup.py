"""Removing finished jobs older than RESULT_TTL_S, with the files no remaining job lists, and giving the
freed pages of the store back to the disk. The store finds them by index (`JobStore.remove_expired`).
"""

from __future__ import annotations

import logging

from inference_server.jobs.cache import ResultCache
from inference_server.jobs.store import JobStore

log = logging.getLogger(__name__)


def remove_expired(store: JobStore, files, cache: ResultCache, cutoff: float) -> None:
    """Call with the job service's file-references lock held: no file goes while a new job starts listing it."""
    try:
        removed, stale = store.remove_expired(cutoff)
        store.compact()
    except Exception:
        log.exception("could not remove expired results")
        return
    cache.forget(removed)  # a later hit must not point at a removed job
    try:
        files.remove(stale, untouched_since=cutoff)
    except (OSError, RuntimeError):  # a folder that refuses, a bucket out of reach: they go at a later pass
        log.exception("could not remove expired result files")
