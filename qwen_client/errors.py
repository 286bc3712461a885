"""Errors whose message is shown to the Dify user as-is, so each says what to fix."""


class QwenImageError(Exception):
    """Base class: the message is the whole story for the user."""


class ServerError(QwenImageError):
    """The inference server refused a request or could not be reached."""

    def __init__(self, message: str, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class JobError(QwenImageError):
    """A submitted job failed, was cancelled, or outlived the call's budget."""

    def __init__(self, message: str, job_id: str, code: str | None = None):
        super().__init__(message)
        self.job_id = job_id
        self.code = code  # the job's error code (oom, timeout, unsafe_content...) when it ended


class InputFileError(QwenImageError):
    """An input image (a Dify file or an image URL) could not be downloaded."""
