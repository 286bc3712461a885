"""The one place that speaks HTTP to the inference server (the contract is docs/api.md)."""

import logging
import re
import time
from collections.abc import Generator, Mapping

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from qwen_client import results
from qwen_client.config import Settings
from qwen_client.errors import JobError, QwenImageError, ServerError

logger = logging.getLogger(__name__)

SERVICE = "qwen-image-inference-server"
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
CONNECT_TIMEOUT_S = 5
# One long-poll lasts at most this long, so a progress message can follow each one.
POLL_SLICE_S = 15
# Extra read time beyond the wait the server was asked for.
SLACK_S = 10
CANCEL_TIMEOUT_S = 5
# The server setting that enables a task served by a model of its own (docs/api.md, task_unavailable).
MODEL_SETTINGS = {"edit": "EDIT_MODEL_ID (for example Qwen/Qwen-Image-Edit-2509)"}


def _session(api_key: str | None, retry: Retry) -> requests.Session:
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    if api_key:
        session.headers["Authorization"] = f"Bearer {api_key}"
    return session


def _retry(methods: set[str], statuses: tuple[int, ...]) -> Retry:
    # Connection errors and 5xx gateways only, never 4xx. No read retries: a POST may
    # have been accepted, and a hung server must not get the budget twice. Retry-After
    # is ignored so a loading server cannot eat the budget.
    return Retry(
        total=4, connect=3, read=False, status=3, other=0,
        backoff_factor=0.5, status_forcelist=statuses, allowed_methods=frozenset(methods),
        raise_on_status=False, respect_retry_after_header=False,
    )


def _reason(exc: Exception) -> str:
    text = str(exc)
    found = re.search(r"\[Errno -?\d+\] ([^'\")]+)", text)
    if found:
        return found.group(1).strip()
    return "timed out" if isinstance(exc, requests.Timeout) else type(exc).__name__


def progress_text(job: Mapping) -> str:
    """A one-line status for the user; empty once the job has ended."""
    status = job.get("status")
    if status == "queued":
        return f"Job {job.get('id')} queued (position {job.get('position', 0)})."
    if status == "running":
        progress = job.get("progress") or {}
        if progress.get("total"):
            return f"Job {job.get('id')} running: step {progress.get('step', 0)}/{progress['total']}."
        return f"Job {job.get('id')} running."
    return ""


class Client:
    """Submits jobs, long-polls them to completion within a deadline, fetches the images."""

    def __init__(self, settings: Settings, field_labels: Mapping[str, str] | None = None):
        self.base = settings.server_url
        self.budget_s = settings.budget_s
        self._api_key = settings.api_key
        self._labels = dict(field_labels or {})
        # A POST answered 502/504 by a proxy may still have been accepted: retry only 503.
        self._http = _session(settings.api_key, _retry({"GET", "DELETE"}, (502, 503, 504)))
        self._submit_http = _session(settings.api_key, _retry({"POST"}, (503,)))

    # --- low level -----------------------------------------------------------------
    def _request(self, session, method: str, path: str, timeout: float, **kwargs) -> requests.Response:
        url = self.base + path
        try:
            return session.request(method, url, timeout=(CONNECT_TIMEOUT_S, timeout), **kwargs)
        except requests.Timeout as exc:
            raise ServerError(
                f"The inference server at {self.base} did not answer {method} {path} "
                f"within {timeout:.0f} s ({_reason(exc)})."
            ) from exc
        except requests.ConnectionError as exc:
            raise ServerError(
                f"Cannot reach the inference server at {self.base}: {_reason(exc)}. "
                "Check the Server URL credential, that the server is running, and that "
                "Dify's plugin daemon can reach that host (inside Docker, 'localhost' is "
                "the container itself)."
            ) from exc

    def _json(self, resp: requests.Response) -> dict:
        if resp.status_code >= 400:
            raise self._error(resp)
        try:
            body = resp.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise ServerError(self._not_ours(resp), resp.status_code)
        return body

    def _not_ours(self, resp: requests.Response) -> str:
        kind = resp.headers.get("Content-Type", "no content type")
        return (
            f"{resp.url} answered HTTP {resp.status_code} ({kind}), not like the Qwen-Image "
            "inference server. Check the Server URL credential: it is the server's root, "
            "e.g. http://gpu-host:8000."
        )

    def _error(self, resp: requests.Response) -> ServerError:
        status = resp.status_code
        try:
            error = resp.json()["error"]
            code, message, field = error.get("code"), error.get("message"), error.get("field")
        except (ValueError, KeyError, TypeError, AttributeError):
            return ServerError(self._not_ours(resp), status)
        if status == 401:
            text = (
                f"The inference server at {self.base} rejected the API key (401: {message}). "
                "Check the API Key credential: it must be one of the server's API_KEYS."
            )
        elif status == 503:
            text = (
                f"The inference server at {self.base} is not ready ({message}): the model is "
                "probably still loading. Try again in a minute."
            )
        elif status == 429:
            wait = resp.headers.get("Retry-After", "a few")
            text = f"The inference server's queue is full ({message}). Try again in {wait} s."
        elif status == 413:
            text = f"The request is too large for the inference server ({message}). Use smaller input images."
        elif code in ("task_unavailable", "unknown_task"):
            task = resp.request.path_url.split("?")[0].rsplit("/", 1)[-1] if resp.request else "this"
            fix = (f"set {MODEL_SETTINGS.get(task, 'the model settings')} and restart it"
                   if code == "task_unavailable" else "update it to a version that has this task")
            text = (
                f"The inference server at {self.base} does not serve the '{task}' task ({message}). "
                f"The server's operator must {fix}; the other tools keep working."
            )
        elif field:
            text = f"The inference server rejected the parameter '{self._label(field)}': {message}"
        else:
            text = f"The inference server at {self.base} answered {status} ({code}): {message}"
        return ServerError(text, status, code)

    def _label(self, field: str) -> str:
        """What the user calls a server field: 'images[2]' is image 3 of the images parameter."""
        top = field.split(".")[0]
        indexed = re.fullmatch(r"(\w+)\[(\d+)\]", top)
        if indexed and indexed.group(1) in self._labels:
            return f"{self._labels[indexed.group(1)]}, image {int(indexed.group(2)) + 1}"
        return self._labels.get(field) or self._labels.get(top) or field

    # --- the API -------------------------------------------------------------------
    def check(self) -> dict:
        """What credential validation needs: our service, the key accepted, the model loaded."""
        resp = self._request(self._http, "GET", "/v1/info", 10)
        if resp.status_code == 404:
            raise ServerError(
                f"{self.base} has no /v1/info. Set the Server URL credential to the inference "
                "server's root, without a path, e.g. http://gpu-host:8000.", 404,
            )
        info = self._json(resp)
        if info.get("service") != SERVICE:
            raise ServerError(
                f"{self.base}/v1/info answered, but the service is {info.get('service')!r}, "
                f"not {SERVICE!r}. Check the Server URL credential."
            )
        self._json(self._request(self._http, "GET", "/readyz", 10))
        return info

    def cancel(self, job_id: str) -> str:
        """Best effort; says what happened so the error message can tell the user."""
        try:
            resp = self._request(self._http, "DELETE", f"/v1/jobs/{job_id}", CANCEL_TIMEOUT_S)
        except ServerError as exc:
            return f"it could not be cancelled ({exc})"
        if resp.status_code == 200:
            return "it was cancelled on the server"
        if resp.status_code == 409:
            return "it had already ended"
        return f"cancelling it answered HTTP {resp.status_code}"

    def run(self, task: str, body: dict, deadline: float) -> Generator[dict, None, None]:
        """Submit a job and yield its state after each long-poll; the last one succeeded.

        The job is cancelled when the deadline passes or the wait fails, so a
        given-up job does not keep the GPU busy.
        """
        wait = self._wait_slice(deadline)
        headers = {"Prefer": f"wait={wait}"} if wait >= 1 else {}
        resp = self._request(
            self._submit_http, "POST", f"/v1/{task}", self._read_timeout(wait, deadline),
            json=body, headers=headers,
        )
        job = self._json(resp)
        job_id = str(job.get("id"))
        logger.info("job %s submitted to %s (%s)", job_id, self.base, task)
        try:
            yield job
            while job.get("status") not in TERMINAL:
                wait = self._wait_slice(deadline)
                if wait < 1:
                    break
                resp = self._request(
                    self._http, "GET", f"/v1/jobs/{job_id}", self._read_timeout(wait, deadline),
                    params={"wait": wait},
                )
                job = self._json(resp)
                yield job
        except QwenImageError as exc:
            raise JobError(f"{exc} Job {job_id}: {self.cancel(job_id)}.", job_id) from exc
        except BaseException:
            self.cancel(job_id)
            raise
        self._raise_unless_succeeded(job, job_id)

    def _raise_unless_succeeded(self, job: dict, job_id: str) -> None:
        status = job.get("status")
        if status == "succeeded":
            return
        if status not in TERMINAL:
            note = self.cancel(job_id)
            raise JobError(
                f"Job {job_id} on {self.base} did not finish within the {self.budget_s:g} s "
                f"budget ({progress_text(job) or status}); {note}. Raise the Timeout "
                "credential, or use fewer steps, a smaller size or fewer images.",
                job_id,
            )
        error = job.get("error") or {}
        raise JobError(
            f"Job {job_id} on {self.base} {status}: {error.get('code', 'unknown')}: "
            f"{error.get('message', 'no details')}",
            job_id, error.get("code"),
        )

    def result_fetcher(self, deadline: float, wanted: int) -> results.ResultFetcher:
        """Downloads for this call's result images, capped and bounded by the deadline."""
        return results.ResultFetcher(self.base, self._api_key, deadline, wanted)

    @staticmethod
    def _wait_slice(deadline: float) -> int:
        # Keep two seconds back so the loop can still cancel within the budget.
        return int(min(POLL_SLICE_S, deadline - time.monotonic() - 2))

    @staticmethod
    def _read_timeout(wait: int, deadline: float) -> float:
        return max(1.0, min(max(wait, 0) + SLACK_S, deadline - time.monotonic()))
