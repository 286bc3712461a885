"""Jobs in SQLite, so a restart loses no finished result and no job still waiting in the queue.

A row that cannot be read (its body is not a job's JSON, its saved fields are broken) never stops the
server: it is rewritten as `failed` with code `corrupt_record`, and the log says which.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from inference_server.jobs.status import JobStatus
from inference_server.jobs.store_schema import open_database

log = logging.getLogger(__name__)
CORRUPT = "corrupt_record"
_REQUIRED = {"id": str, "task": str, "status": str, "created_ts": (int, float), "images": list, "params": dict}
_ROW = "id, task, created_at, finished_at, body, owner, hit_of"
COMPACT_AT_FREE_PAGES = 2560  # about 10 MB freed (saved inputs dropped): give it back to the disk


class JobStore:
    """One connection behind a lock: writes are rare (a job's state changes), reads are by id."""

    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._db = open_database(str(path))
        self._lock = threading.Lock()

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

    # ---- jobs ------------------------------------------------------------------------------
    def save(self, job: dict) -> None:
        """The whole record, and which files it lists (for expiry and for who may read them)."""
        with self._transaction():
            self._db.execute(
                "INSERT OR REPLACE INTO jobs (id, task, status, created_at, finished_at, body, owner, hit_of) "
                "VALUES (?,?,?,?,?,?,?,NULL)",
                (job["id"], job["task"], job["status"], job["created_ts"], job.get("finished_ts"), json.dumps(job),
                 job.get("owner")))
            self._db.execute("DELETE FROM job_files WHERE job_id = ?", (job["id"],))
            self._db.executemany("INSERT OR IGNORE INTO job_files (name, job_id) VALUES (?,?)",
                                 [(image["name"], job["id"]) for image in job.get("images") or [] if image.get("name")])

    def save_hit(self, record: dict, origin_id: str) -> None:
        """A cache hit: a few dozen bytes pointing at the job whose images it reuses, not a copy of its record."""
        with self._lock:
            self._db.execute(
                "INSERT INTO jobs (id, task, status, created_at, finished_at, body, owner, hit_of) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (record["id"], record["task"], JobStatus.SUCCEEDED, record["created_ts"], record["created_ts"],
                 json.dumps({"notices": record["notices"]}) if record["notices"] else "{}", record.get("owner"),
                 origin_id))

    def get(self, job_id: str) -> dict | None:
        with self._lock:
            row = self._db.execute(f"SELECT {_ROW} FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return self._read(row) if row is not None else None

    def list_recent(self, limit: int, before: tuple[float, str] | None = None,
                    owner: str | None = None) -> list[dict]:
        """Newest first, by (created_at, id); `before` is the (created_at, id) of the last job already seen.

        With `owner`, only that key's jobs (and those with no owner), as `JobBoard.get` shows them.
        """
        conditions, values = [], []
        if before is not None:
            conditions.append("(created_at, id) < (?, ?)")
            values += before
        if owner is not None:
            conditions.append("(owner = ? OR owner IS NULL)")
            values.append(owner)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._lock:
            rows = self._db.execute(f"SELECT {_ROW} FROM jobs {where} ORDER BY created_at DESC, id DESC LIMIT ?",
                                    (*values, limit)).fetchall()
        return [self._read(row) for row in rows]

    def _read(self, row: tuple) -> dict:
        """A row as its record: a cache hit over the job it points at; an unreadable one as corrupt_record."""
        if row[6] is None:
            record = _parse(row[4])
        else:
            with self._lock:
                origin = self._db.execute("SELECT body FROM jobs WHERE id = ?", (row[6],)).fetchone()
            record = _as_hit(_parse(origin[0]) if origin else None, row)
        return record if record is not None else self._rewrite_corrupt(row)

    def _rewrite_corrupt(self, row: tuple) -> dict:
        job_id, task, created_at, finished_at, _, owner, _ = row
        log.error("job %s: its stored record cannot be read; it now reads failed/%s", job_id, CORRUPT,
                  extra={"job_id": job_id})
        record = corrupt_record(job_id, task, created_at, finished_at, owner)
        try:
            self.drop_pending(job_id)
            self.save(record)
        except Exception:
            log.exception("could not rewrite the corrupt record of job %s", job_id)
        return record

    def fail(self, job: dict, now: float, message: str, code: str = "interrupted") -> None:
        """End a job that never got to run to its end: `failed` with code `interrupted` (or the one given)."""
        job.update(status=JobStatus.FAILED, position=None, finished_ts=now, error={"code": code, "message": message})
        self.save(job)

    def mark_interrupted(self) -> int:
        """At start: a job cut while running reads `failed`/`interrupted`, never `running` forever.

        It is not run again: if it took the server down (the kernel's OOM killer), it would again. A queued
        job whose inputs were saved waits for `pending()`; one without (saved by an older version) is cut too.
        """
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_ROW} FROM jobs WHERE finished_at IS NULL "
                "AND (status = ? OR (status = ? AND id NOT IN (SELECT id FROM pending)))",
                (JobStatus.RUNNING, JobStatus.QUEUED)).fetchall()
            self._db.execute("DELETE FROM pending WHERE id NOT IN (SELECT id FROM jobs WHERE status = ?)",
                             (JobStatus.QUEUED,))
            self._db.execute("DELETE FROM pending_images WHERE id NOT IN (SELECT id FROM pending)")
        now = time.time()
        for row in rows:
            record = _parse(row[4])
            if record is None:
                self._rewrite_corrupt(row)
            else:
                self.fail(record, now, "the server stopped before this job finished; submit it again")
        return len(rows)

    # ---- saved inputs ----------------------------------------------------------------------
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
        if self._free_pages() >= COMPACT_AT_FREE_PAGES:
            self.compact()

    def pending(self) -> list[tuple[dict, dict, dict[str, bytes], bool]]:
        """Queued jobs with their inputs, oldest first: (record, fields, images, cacheable).

        One that cannot be read ends `failed`/`corrupt_record` here; the others are returned all the same.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT jobs.id, jobs.task, jobs.created_at, jobs.finished_at, jobs.body, jobs.owner, jobs.hit_of, "
                "pending.fields, pending.cacheable FROM jobs JOIN pending ON jobs.id = pending.id "
                "WHERE jobs.status = ? ORDER BY jobs.created_at", (JobStatus.QUEUED,)).fetchall()
        result = []
        for row in rows:
            job_id, fields, cacheable = row[0], row[7], row[8]
            record = _parse(row[4])
            try:
                fields = json.loads(fields)
                with self._lock:
                    images = dict(self._db.execute("SELECT name, data FROM pending_images WHERE id = ?",
                                                   (job_id,)).fetchall())
            except (ValueError, TypeError, RecursionError):
                fields = None
            if record is None or not isinstance(fields, dict):
                self._rewrite_corrupt(row[:7])
                continue
            result.append((record, fields, images, bool(cacheable)))
        return result

    # ---- files, expiry, disk ---------------------------------------------------------------
    def file_owned_by(self, name: str, owner: str | None) -> bool:
        """Whether a job of this owner (or one with no owner, or a cache hit of this owner's) lists the file."""
        with self._lock:
            return self._db.execute(
                "SELECT 1 FROM job_files f JOIN jobs j ON j.id = f.job_id WHERE f.name = ? "
                "AND (j.owner = ? OR j.owner IS NULL) UNION ALL SELECT 1 FROM job_files f JOIN jobs j "
                "ON j.hit_of = f.job_id WHERE f.name = ? AND j.owner = ? LIMIT 1",
                (name, owner, name, owner)).fetchone() is not None

    def remove_expired(self, older_than: float) -> tuple[set[str], set[str]]:
        """Delete jobs that ended before `older_than`: (their ids, the file names no remaining job lists).

        A job some cache hit still points at stays until the last such hit expires. Every step is an index
        search, whatever the number of rows: no body is read and no table is scanned.
        """
        with self._transaction():
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS expiring (id TEXT PRIMARY KEY)")
            self._db.execute("CREATE TEMP TABLE IF NOT EXISTS expiring_files (name TEXT PRIMARY KEY)")
            self._db.execute("DELETE FROM expiring")
            self._db.execute("DELETE FROM expiring_files")
            self._db.execute("INSERT INTO expiring SELECT id FROM jobs WHERE finished_at < ? AND (hit_of IS NOT NULL "
                             "OR NOT EXISTS (SELECT 1 FROM jobs AS hit WHERE hit.hit_of = jobs.id "
                             "AND hit.finished_at >= ?))", (older_than, older_than))
            self._db.execute("INSERT OR IGNORE INTO expiring_files SELECT f.name FROM expiring e "
                             "CROSS JOIN job_files f ON f.job_id = e.id")  # CROSS: the few expiring ones first
            self._db.execute("DELETE FROM job_files WHERE job_id IN (SELECT id FROM expiring)")
            self._db.execute("DELETE FROM jobs WHERE id IN (SELECT id FROM expiring)")
            removed = {job_id for (job_id,) in self._db.execute("SELECT id FROM expiring")}
            stale = {name for (name,) in self._db.execute(
                "SELECT name FROM expiring_files e WHERE NOT EXISTS (SELECT 1 FROM job_files f WHERE f.name = e.name)")}
        return removed, stale

    def _free_pages(self) -> int:
        with self._lock:
            return self._db.execute("PRAGMA freelist_count").fetchone()[0]

    def compact(self) -> None:
        """Give freed pages back to the disk, and fold the WAL in, so the file shrinks after a burst."""
        with self._lock:
            self._db.execute("PRAGMA incremental_vacuum").fetchall()
            self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()


def _parse(body: str | None) -> dict | None:
    """The record, or None when it is not one (not JSON, or a field a reader needs is missing)."""
    try:
        record = json.loads(body)
    except (ValueError, TypeError, RecursionError):
        return None
    if not isinstance(record, dict) or any(not isinstance(record.get(key), kind) for key, kind in _REQUIRED.items()):
        return None
    return record if all(isinstance(image, dict) for image in record["images"]) else None


def _as_hit(origin: dict | None, row: tuple) -> dict | None:
    """A cache hit as the client reads it: the original job's result under the hit's own id, time and owner."""
    if origin is None:
        return None
    job_id, _, created_at, _, body, owner, _ = row
    try:
        own = json.loads(body) if body else {}
    except (ValueError, RecursionError):
        own = {}
    total = (origin.get("progress") or {}).get("total", 0)
    return {**origin, "id": job_id, "status": JobStatus.SUCCEEDED, "position": None,
            "progress": {"step": total, "total": total}, "notices": own.get("notices", []) if isinstance(own, dict)
            else [], "error": None, "cache": "hit", "timings": {"queued_s": 0.0, "run_s": 0.0},
            "created_ts": created_at, "finished_ts": created_at, "owner": owner}


def corrupt_record(job_id: str, task: str, created_at: float | None, finished_at: float | None,
                   owner: str | None) -> dict:
    now = time.time()
    return {"id": job_id, "task": task or "unknown", "status": JobStatus.FAILED, "position": None,
            "progress": {"step": 0, "total": 0}, "params": {}, "notices": [], "images": [],
            "error": {"code": CORRUPT, "message": "this job's stored record could not be read; submit it again"},
            "cache": "miss", "model": None, "timings": {}, "created_ts": created_at or now,
            "finished_ts": finished_at or now, "owner": owner}
