"""Jobs in SQLite, so a restart loses no finished result."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from pathlib import Path

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
"""
ENDED = ("succeeded", "failed", "cancelled")


class JobStore:
    """One connection behind a lock: writes are rare (a job's state changes), reads are by id."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
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

    def mark_interrupted(self) -> int:
        """Jobs cut by a crash or restart read `failed`/`interrupted`, never `running` forever."""
        with self._lock:
            rows = self._db.execute("SELECT body FROM jobs WHERE status IN ('queued', 'running')").fetchall()
        now = time.time()
        for (body,) in rows:
            job = json.loads(body)
            job.update(status="failed", position=None, finished_ts=now,
                       error={"code": "interrupted", "message": "the server stopped before this job finished; "
                                                                  "submit it again"})
            self.save(job)
        return len(rows)

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
