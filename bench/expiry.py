"""Expiry at scale: how long `JobStore.remove_expired` takes with many stored jobs and a few expired.

The old expiry ran one `LIKE` scan of every body per expired file name: 100k rows with 1,000 expired took
77 s, holding the store's lock. Target: under 1 s. `python -m bench.expiry [--rows N --expired M]` prints it.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

from inference_server.jobs.store import JobStore

TARGET_S = 1.0


def _job(job_id: str, finished: float, names: list[str]) -> dict:
    return {"id": job_id, "task": "generate", "status": "succeeded", "position": None,
            "progress": {"step": 50, "total": 50}, "params": {"prompt": "a garden " * 100, "seed": 1},
            "notices": [], "error": None, "cache": "miss", "model": "Qwen/Qwen-Image", "timings": {},
            "images": [{"name": name, "url": f"/v1/files/{name}", "seed": 1, "width": 1328, "height": 1328,
                        "mime_type": "image/png"} for name in names],
            "created_ts": finished - 30, "finished_ts": finished, "owner": "f" * 32}


def measure(rows: int, expired: int) -> tuple[float, int, int]:
    """(seconds, jobs removed, files freed) for a store of `rows` jobs of which `expired` ended long ago.

    Every other expired job shares its file with a live one (an identical result made again), which must stay.
    """
    now = time.time()
    with tempfile.TemporaryDirectory(prefix="expiry-") as tmp:
        store = JobStore(Path(tmp) / "jobs.sqlite3")
        jobs, references = [], []
        for i in range(rows):
            old = i < expired
            names = [f"{rows + i:040x}.png"] if old and i % 2 else [f"{i:040x}.png"]
            job = _job(uuid.uuid4().hex, now - 10 * 86400 if old else now - i % 86400, names)
            jobs.append((job["id"], job["task"], job["status"], job["created_ts"], job["finished_ts"],
                         json.dumps(job), job["owner"]))
            references += [(name, job["id"]) for name in names]
        for i in range(1, expired, 2):  # a live job with the same file as an expired one
            name = f"{rows + i:040x}.png"
            job = _job(uuid.uuid4().hex, now, [name])
            jobs.append((job["id"], "generate", "succeeded", job["created_ts"], now, json.dumps(job), job["owner"]))
            references.append((name, job["id"]))
        with store._transaction():  # the rows `save` writes, in one transaction so the set-up stays quick
            store._db.executemany("INSERT INTO jobs (id, task, status, created_at, finished_at, body, owner) "
                                  "VALUES (?,?,?,?,?,?,?)", jobs)
            store._db.executemany("INSERT INTO job_files (name, job_id) VALUES (?,?)", references)
        started = time.perf_counter()
        removed, stale = store.remove_expired(now - 7 * 86400)
        return time.perf_counter() - started, len(removed), len(stale)


def row(rows: int, expired: int, judged: bool = True) -> tuple:
    """A (figure, value, target, ok) row; `judged=False` checks only what was removed, not how fast."""
    seconds, removed, freed = measure(rows, expired)
    correct = removed == expired and freed == expired // 2
    return (f"expiry: {rows:,} jobs stored, {expired:,} expired (half share a file with a live job)",
            f"{seconds * 1000:.0f} ms ({removed} removed, {freed} files freed)", f"< {TARGET_S:.0f} s, "
            f"{expired // 2} files freed", correct and (seconds < TARGET_S or not judged))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--expired", type=int, default=1_000)
    args = parser.parse_args()
    figure, value, target, ok = row(args.rows, args.expired)
    print(f"{figure}: {value} (target {target}): {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
