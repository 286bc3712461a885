"""The job store on its own: indexed expiry, small cache-hit rows, unreadable rows, a file that shrinks again.

These drive `JobStore` directly, as the job service does; the HTTP behaviour is in test_jobs_hardening.py.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid

from inference_server.jobs.store import JobStore

# The tables as the version before `job_files` wrote them (auto_vacuum off, no owner, no hit_of).
OLD_SCHEMA = """
CREATE TABLE jobs (id TEXT PRIMARY KEY, task TEXT NOT NULL, status TEXT NOT NULL, created_at REAL NOT NULL,
                   finished_at REAL, body TEXT NOT NULL);
CREATE INDEX jobs_finished ON jobs(finished_at);
CREATE TABLE pending (id TEXT PRIMARY KEY, fields TEXT NOT NULL, cacheable INTEGER NOT NULL);
CREATE TABLE pending_images (id TEXT NOT NULL, name TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (id, name));
"""


def record(finished: float | None, names: list[str], status: str = "succeeded", owner: str | None = None) -> dict:
    created = (finished or time.time()) - 1
    return {"id": uuid.uuid4().hex, "task": "generate", "status": status, "position": None,
            "progress": {"step": 1, "total": 1}, "params": {"prompt": "p" * 2000, "seed": 1}, "notices": [],
            "images": [{"name": name, "url": f"/v1/files/{name}", "seed": 1, "width": 8, "height": 8,
                        "mime_type": "image/png"} for name in names],
            "error": None, "cache": "miss", "model": "tiny", "timings": {}, "created_ts": created,
            "finished_ts": finished, "owner": owner}


def name(i: int) -> str:
    return f"{i:040x}.png"


def test_expiry_keeps_files_a_live_job_lists_and_returns_the_others(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    now = time.time()
    old_only, shared, live_only = name(1), name(2), name(3)
    expired = [record(now - 100, [old_only, shared]), record(now - 100, [old_only])]
    live = record(now, [shared, live_only])
    running = record(None, [], status="running")
    for job in (*expired, live, running):
        store.save(job)
    removed, stale = store.remove_expired(now - 10)
    assert removed == {job["id"] for job in expired}
    assert stale == {old_only}  # `shared` is still listed by the live job
    assert all(store.get(job["id"]) is None for job in expired)
    assert store.get(live["id"])["images"] == live["images"] and store.get(running["id"])["status"] == "running"
    assert store.remove_expired(now - 10) == (set(), set())
    removed, stale = store.remove_expired(now + 10)
    assert removed == {live["id"]} and stale == {shared, live_only}


def test_a_cache_hit_is_a_small_row_that_keeps_its_original_until_it_expires(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    now = time.time()
    original = record(now - 100, [name(7)], owner="a")
    store.save(original)
    hit = {**original, "id": uuid.uuid4().hex, "created_ts": now, "finished_ts": now, "cache": "hit", "owner": "b"}
    store.save_hit(hit, original["id"])
    read = store.get(hit["id"])
    assert read["cache"] == "hit" and read["images"] == original["images"] and read["params"] == original["params"]
    assert read["owner"] == "b" and read["created_ts"] == now and read["status"] == "succeeded"
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        (size,) = db.execute("SELECT length(body) FROM jobs WHERE id = ?", (hit["id"],)).fetchone()
    assert size < 100 < len(json.dumps(original))  # a pointer, not a copy of a 2,000-character prompt
    assert store.file_owned_by(name(7), "b") and store.file_owned_by(name(7), "a")
    assert not store.file_owned_by(name(7), "c")
    # The original ended long ago, but the hit still shows its images: it stays, and so does its file.
    assert store.remove_expired(now - 10) == (set(), set())
    assert store.get(hit["id"])["images"] == original["images"]
    removed, stale = store.remove_expired(now + 10)
    assert removed == {original["id"], hit["id"]} and stale == {name(7)}


def test_expiry_searches_indexes_and_never_scans_the_jobs(tmp_path):
    """The old expiry ran a LIKE over every body once per file name: a full scan each, quadratic overall."""
    store = JobStore(tmp_path / "jobs.sqlite3")
    now = time.time()
    plans: dict[int, list[str]] = {}
    for expired in (5, 50):
        for i in range(expired):
            store.save(record(now - 100, [name(10_000 * expired + i)]))
        for i in range(200):
            store.save(record(now, [name(i)]))
        statements: list[str] = []
        store._db.set_trace_callback(statements.append)
        removed, stale = store.remove_expired(now - 10)
        store._db.set_trace_callback(None)
        assert len(removed) == len(stale) == expired
        plans[expired] = statements
        details = [row[3] for sql in statements if sql.lstrip().upper().startswith(("SELECT", "INSERT", "DELETE"))
                   for row in store._db.execute("EXPLAIN QUERY PLAN " + sql)]
        # Only the small lists of what expires now may be read in full.
        scans = [detail for detail in details if detail.startswith("SCAN")
                 and detail.split()[1] not in ("expiring", "expiring_files", "e")]
        assert not scans, (scans, statements)
    assert len(plans[5]) == len(plans[50])  # as many statements for 50 expired jobs as for 5


def test_rows_that_cannot_be_read_end_failed_with_corrupt_record(tmp_path):
    store = JobStore(tmp_path / "jobs.sqlite3")
    running, queued_good, queued_broken, finished = (record(None, [], "running"), record(None, [], "queued"),
                                                     record(None, [], "queued"), record(time.time(), [name(1)]))
    for job in (running, queued_good, queued_broken, finished):
        store.save(job)
    store.save_pending(queued_broken["id"], {"prompt": "x"}, {}, False)
    store.save_pending(queued_good["id"], {"prompt": "y"}, {"image": b"\x89PNG"}, True)
    with sqlite3.connect(tmp_path / "jobs.sqlite3") as db:
        db.execute("UPDATE jobs SET body = 'not json {' WHERE id IN (?, ?)", (running["id"], finished["id"]))
        db.execute("UPDATE pending SET fields = '{broken' WHERE id = ?", (queued_broken["id"],))
    store = JobStore(tmp_path / "jobs.sqlite3")  # a restart
    assert store.mark_interrupted() == 1
    (saved,) = store.pending()
    assert saved[0]["id"] == queued_good["id"] and saved[1] == {"prompt": "y"} and saved[2] == {"image": b"\x89PNG"}
    for job in (running, queued_broken, finished):
        read = store.get(job["id"])
        assert (read["status"], read["error"]["code"]) == ("failed", "corrupt_record"), read
    assert store.get(finished["id"])["finished_ts"] is not None
    assert store.pending()[0][0]["id"] == queued_good["id"]  # the broken one is not offered again


def test_the_file_shrinks_after_saved_inputs_are_dropped(tmp_path):
    """32 queued 22 MB uploads made a 704 MB file that never shrank: freed pages now go back to the disk."""
    path = tmp_path / "jobs.sqlite3"
    store = JobStore(path)
    jobs = [uuid.uuid4().hex for _ in range(4)]
    for job_id in jobs:
        store.save_pending(job_id, {"prompt": "big"}, {"image": bytes(6 * 2**20)}, False)
    peak = _size_after_checkpoint(path)
    for job_id in jobs:
        store.drop_pending(job_id)
    assert peak > 24 * 2**20
    assert _size_after_checkpoint(path) < peak / 3


def test_a_store_from_the_previous_version_is_upgraded(tmp_path):
    path = tmp_path / "jobs.sqlite3"
    old = record(time.time() - 100, [name(5)])
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
        db.execute("INSERT INTO jobs VALUES (?,?,?,?,?,?)", (old["id"], "generate", "succeeded", old["created_ts"],
                                                             old["finished_ts"], json.dumps(old)))
    db.close()
    store = JobStore(path)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental, after a one-off VACUUM
    db.close()
    assert store.get(old["id"])["images"] == old["images"]
    assert store.remove_expired(time.time() - 10) == ({old["id"]}, {name(5)})  # its file was indexed


def _size_after_checkpoint(path) -> int:
    db = sqlite3.connect(path)
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()
    db.close()
    return path.stat().st_size
