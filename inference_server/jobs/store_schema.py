"""The job store's tables, and how a store written by an older version is brought up to date at start-up.

Version 1 adds what expiry, tenants and small cache hits need: `jobs.owner` (a key's fingerprint, never the
key), `jobs.hit_of` (a cache hit points at the job whose images it reuses), and `job_files` (which job lists
which file, so expiry finds the files no job uses any more by index instead of scanning every body). It also
switches the file to `auto_vacuum=INCREMENTAL`, so deleted saved inputs can be given back to the disk.
"""

from __future__ import annotations

import json
import logging
import sqlite3

log = logging.getLogger(__name__)
VERSION = 1

_TABLES = """
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

_VERSION_1 = """
CREATE TABLE IF NOT EXISTS job_files (
    name TEXT NOT NULL,
    job_id TEXT NOT NULL,
    PRIMARY KEY (name, job_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS job_files_by_job ON job_files(job_id);
CREATE INDEX IF NOT EXISTS jobs_hits ON jobs(hit_of, owner) WHERE hit_of IS NOT NULL;
CREATE INDEX IF NOT EXISTS jobs_unfinished ON jobs(status) WHERE finished_at IS NULL;
"""


def open_database(path: str) -> sqlite3.Connection:
    """Connect, create or upgrade the tables, and return the connection (autocommit; WAL)."""
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA auto_vacuum=INCREMENTAL")  # takes effect only on a new file; an old one is converted below
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")  # WAL: a killed process loses nothing; only a power cut might
    # A short WAL, truncated after each checkpoint: a burst of writes (a flood of cache hits, a 20 MB upload)
    # must not leave a large file behind.
    db.execute("PRAGMA wal_autocheckpoint=256")
    db.execute("PRAGMA journal_size_limit=1048576")
    db.executescript(_TABLES)
    _upgrade(db)
    return db


def _upgrade(db: sqlite3.Connection) -> None:
    version = db.execute("PRAGMA user_version").fetchone()[0]
    if version < 1:
        columns = {row[1] for row in db.execute("PRAGMA table_info(jobs)")}
        for column in ("owner", "hit_of"):
            if column not in columns:
                db.execute(f"ALTER TABLE jobs ADD COLUMN {column} TEXT")
        db.executescript(_VERSION_1)
        _index_files(db)
        db.execute(f"PRAGMA user_version={VERSION}")
    if db.execute("PRAGMA auto_vacuum").fetchone()[0] != 2:  # a file from before: VACUUM once to switch modes
        log.info("converting the job store to incremental auto-vacuum (once)")
        db.execute("PRAGMA auto_vacuum=INCREMENTAL")
        db.execute("VACUUM")


def _index_files(db: sqlite3.Connection) -> None:
    """Fill `job_files` from the bodies of jobs stored before it existed (once; a body that is not JSON is skipped)."""
    references = []
    for job_id, body in db.execute("SELECT id, body FROM jobs WHERE body LIKE '%\"name\"%'"):
        try:
            images = json.loads(body).get("images") or []
            references += [(image["name"], job_id) for image in images if image.get("name")]
        except (ValueError, AttributeError, TypeError, KeyError):
            continue  # read as corrupt_record when asked for
    db.execute("BEGIN")
    db.executemany("INSERT OR IGNORE INTO job_files (name, job_id) VALUES (?, ?)", references)
    db.execute("COMMIT")
    if references:
        log.info("indexed the files of stored jobs", extra={"references": len(references)})
