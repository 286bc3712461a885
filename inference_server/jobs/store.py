"""Jobs in SQLite, so a restart loses no finished result and no job still waiting in the queue."""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from inference_server.jobs.status import JobStatus

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    task TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at REAL NOT NULL,
    finished_at REAL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_finished ON jobs(finished_at);
CREATE INDEX IF NOT EXISTS jobs_created ON jobs(created_at, id);
CREATE TABLE IF NOT EXISTS pending (
    id TEXT PRIMARY KEY,
    fields TEXT NOT NULL,
    cacheable INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_images (
    id TEXT NOT NULL,
    name TEXT NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (id, name)
);
"""


class JobStore:
    """One connection behind a lock: writes are rare (a job's state changes), reads are by id."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL: a killed process loses nothing; only a power cut might
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def save(self, job: dict) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO jobs (id, task, status, created_at, finished_at, body) VALUES (?,?,?,?,?,?)",
                (job["id"], job["task"], job["status"], job["created_ts"], job.get("finished_ts"), json.dumps(job)),
            )

    def get(self, job_id: str) -> dict | None:
        with self._lock:
            row = self._db.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return json.loads(row[0]) if row else None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                yield
                self._db.execute("COMMIT")
            except BaseException:
                if self._db.in_transaction:  # else a failed COMMIT would leave every later write uncommitted
                    self._db.execute("ROLLBACK")
                raise

    def save_pending(self, job_id: str, fields: dict, images: dict[str, bytes], cacheable: bool) -> None:
        """What a queued job needs to be planned again after a restart: its request fields and image bytes."""
        with self._transaction():
            self._db.execute("INSERT OR REPLACE INTO pending (id, fields, cacheable) VALUES (?,?,?)",
                             (job_id, json.dumps(fields), int(cacheable)))
            self._db.executemany("INSERT OR REPLACE INTO pending_images (id, name, data) VALUES (?,?,?)",
                                 [(job_id, name, data) for name, data in images.items()])

    def drop_pending(self, job_id: str) -> None:
        with self._transaction():
            self._db.execute("DELETE FROM pending WHERE id = ?", (job_id,))
            self._db.execute("DELETE FROM pending_images WHERE id = ?", (job_id,))

    def pending(self) -> list[tuple[dict, dict, dict[str, bytes], bool]]:
        """Queued jobs with their inputs, oldest first: (record, fields, images, cacheable)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT jobs.body, pending.fields, pending.cacheable, pending.id FROM jobs JOIN pending "
                "ON jobs.id = pending.id WHERE jobs.status = ? ORDER BY jobs.created_at", (JobStatus.QUEUED,)).fetchall()
            result = []
            for body, fields, cacheable, job_id in rows:
                images = dict(self._db.execute("SELECT name, data FROM pending_images WHERE id = ?",
                                               (job_id,)).fetchall())
                result.append((json.loads(body), json.loads(fields), images, bool(cacheable)))
        return result

    def mark_interrupted(self) -> int:
        """At start: a job cut while running reads `failed`/`interrupted`, never `running` forever.

        It is not run again: if it took the server down (the kernel's OOM killer), it would again. A queued
        job whose inputs were saved waits for `pending()`; one without (saved by an older version) is cut too.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM jobs WHERE status = ? OR (status = ? AND id NOT IN (SELECT id FROM pending))",
                (JobStatus.RUNNING, JobStatus.QUEUED)).fetchall()
            self._db.execute("DELETE FROM pending WHERE id NOT IN (SELECT id FROM jobs WHERE status = ?)",
                             (JobStatus.QUEUED,))
            self._db.execute("DELETE FROM pending_images WHERE id NOT IN (SELECT id FROM pending)")
        now = time.time()
        for (body,) in rows:
            self.fail(json.loads(body), now, "the server stopped before this job finished; submit it again")
        return len(rows)

    def fail(self, job: dict, now: float, message: str) -> None:
        """End a job that never got to run to its end: `failed` with code `interrupted`."""
        job.update(status=JobStatus.FAILED, position=None, finished_ts=now, error={"code": "interrupted", "message": message})
        self.save(job)

    def remove_expired(self, older_than: float) -> set[str]:
        """Delete jobs that ended before `older_than`; return file names no remaining job uses."""
        with self._lock:
            rows = self._db.execute("SELECT id, body FROM jobs WHERE finished_at < ?", (older_than,)).fetchall()
            names = {image["name"] for _, body in rows for image in json.loads(body).get("images", [])}
            self._db.executemany("DELETE FROM jobs WHERE id = ?", [(job_id,) for job_id, _ in rows])
            still_used = {
                name for name in names
                if self._db.execute("SELECT 1 FROM jobs WHERE body LIKE ? LIMIT 1", (f"%{name}%",)).fetchone()
            }
        return names - still_used

    def list_recent(self, limit: int, before: tuple[float, str] | None = None) -> list[dict]:
        """Newest first, by (created_at, id); `before` is the (created_at, id) of the last job already seen."""
        with self._lock:
            if before is None:
                rows = self._db.execute("SELECT body FROM jobs ORDER BY created_at DESC, id DESC LIMIT ?",
                                        (limit,)).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT body FROM jobs WHERE (created_at, id) < (?, ?) ORDER BY created_at DESC, id DESC LIMIT ?",
                    (before[0], before[1], limit)).fetchall()
        return [json.loads(body) for (body,) in rows]
