"""GET /v1/jobs: recent jobs from the job store, newest first, a page at a time (the playground's gallery)."""

from __future__ import annotations

import math
import re

from flask import Blueprint, current_app, jsonify, request

from inference_server.api.identity import viewer
from inference_server.errors import ApiError
from inference_server.jobs.status import ENDED

bp = Blueprint("job_list", __name__)
DEFAULT_LIMIT, MAX_LIMIT = 20, 100
_CURSOR = re.compile(r"^(?P<ts>[0-9.e+-]{1,32})_(?P<id>[0-9a-f]{1,64})$")


def cursor_of(record: dict) -> str:
    """Exact (repr) creation time and id: a stable position even while new jobs arrive."""
    return f"{record['created_ts']!r}_{record['id']}"


def _limit(raw: str | None) -> int:
    if raw is None or raw == "":
        return DEFAULT_LIMIT
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIMIT:
        raise ApiError(422, "invalid_value", f"limit: must be a whole number from 1 to {MAX_LIMIT}", "limit")
    return int(raw)


def _before(raw: str | None) -> tuple[float, str] | None:
    if raw is None or raw == "":
        return None
    match = _CURSOR.match(raw)
    try:
        created = float(match["ts"]) if match else math.nan
    except ValueError:
        created = math.nan
    if not math.isfinite(created):
        raise ApiError(422, "invalid_value", "before: use the next_before value of the previous page", "before")
    return created, match["id"]


@bp.get("/v1/jobs")
def list_jobs():
    """Newest first by creation time; `next_before` is the cursor for the next page, null on the last one."""
    limit = _limit(request.args.get("limit"))
    before = _before(request.args.get("before"))
    jobs = current_app.config["JOBS"]
    records = jobs.store.list_recent(limit + 1, before, viewer(request, current_app.config["SETTINGS"]))
    page = records[:limit]
    out = []
    for record in page:
        if record["status"] in ENDED:
            out.append(jobs.board.public(record))
        else:  # the live view: queue position and progress
            try:
                out.append(jobs.get(record["id"]))
            except ApiError:
                out.append(jobs.board.public(record))
    next_before = cursor_of(page[-1]) if len(records) > limit else None
    links = current_app.config["FILE_LINKS"]  # signed image links (api/file_links.py)
    return jsonify({"jobs": [links.render(job) for job in out], "next_before": next_before})
