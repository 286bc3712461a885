"""Result files in an S3-compatible bucket: the same names and interface as the disk store, for several hosts.

Replicas on other machines write here directly, and clients fetch images through presigned URLs,
so image bytes never have to pass through the front door.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from inference_server.storage.naming import MIME_TYPES, content_name, is_content_name

# DeleteObjects takes at most this many keys a call.
_DELETE_BATCH = 1000


class StorageError(RuntimeError):
    """The bucket could not be used; the message says what to fix."""


@dataclass(frozen=True)
class S3Settings:
    """S3_* variables; credentials come from the standard AWS variables (or boto3's usual chain)."""

    bucket: str
    prefix: str = ""
    endpoint_url: str | None = None  # empty: AWS itself
    region: str = "us-east-1"
    public_endpoint_url: str | None = None  # the host clients reach, when it differs from the server's
    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "S3Settings":
        env = dict(os.environ if env is None else env)
        bucket = env.get("S3_BUCKET", "").strip()
        if not bucket:
            raise StorageError("STORAGE=s3 needs S3_BUCKET (and S3_ENDPOINT_URL unless the bucket is on AWS)")
        return cls(
            bucket=bucket,
            prefix=env.get("S3_PREFIX", ""),
            endpoint_url=env.get("S3_ENDPOINT_URL") or None,
            region=env.get("S3_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            public_endpoint_url=env.get("S3_PUBLIC_ENDPOINT_URL") or None,
            access_key_id=env.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=env.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=env.get("AWS_SESSION_TOKEN") or None,
        )


class S3FileStore:
    """save/exists/remove like the disk FileStore, plus read, presigned_url and a start-up check."""

    def __init__(self, settings: S3Settings):
        self.settings = settings
        self.bucket = settings.bucket
        prefix = settings.prefix.strip("/")
        self.prefix = f"{prefix}/" if prefix else ""
        session = boto3.session.Session(
            aws_access_key_id=settings.access_key_id, aws_secret_access_key=settings.secret_access_key,
            aws_session_token=settings.session_token, region_name=settings.region,
        )
        config = Config(
            signature_version="s3v4",
            # Path-style works on every S3-compatible server; virtual hosts need DNS per bucket.
            s3={"addressing_style": "path"},
            connect_timeout=5, read_timeout=30, retries={"max_attempts": 3, "mode": "standard"},
            # boto3's default CRC checksums are refused by several S3-compatible servers.
            request_checksum_calculation="when_required", response_checksum_validation="when_required",
        )
        # Clients are thread-safe; sessions are not, so both are made once here.
        self._client = session.client("s3", endpoint_url=settings.endpoint_url, config=config)
        self._signer = (session.client("s3", endpoint_url=settings.public_endpoint_url, config=config)
                        if settings.public_endpoint_url else self._client)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> "S3FileStore":
        return cls(S3Settings.from_env(env))

    def _key(self, name: str) -> str:
        return self.prefix + name

    def _where(self) -> str:
        return f"bucket {self.bucket!r} at {self.settings.endpoint_url or 'AWS S3'} ({self.settings.region})"

    def check(self) -> None:
        """Raise StorageError naming the bucket and the likely fix when it cannot be used."""
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as error:
            status = _status(error)
            code = error.response.get("Error", {}).get("Code")
            if status == 404 or code in ("404", "NoSuchBucket"):
                raise StorageError(f"S3 {self._where()} does not exist: create it, or fix S3_BUCKET") from None
            if status == 403 or code in ("403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                raise StorageError(f"S3 {self._where()} refused access: check AWS_ACCESS_KEY_ID and "
                                   "AWS_SECRET_ACCESS_KEY, and the key's rights on the bucket") from None
            raise StorageError(f"S3 {self._where()} answered {status} {code}") from None
        except BotoCoreError as error:
            raise StorageError(f"S3 {self._where()} is unreachable: {error}; check S3_ENDPOINT_URL") from None

    def save(self, data: bytes, extension: str) -> str:
        """Write the object under its content name; writing the same bytes again is harmless."""
        name = content_name(data, extension)
        try:
            self._client.put_object(Bucket=self.bucket, Key=self._key(name), Body=data,
                                    ContentType=MIME_TYPES.get(extension, "application/octet-stream"))
        except (BotoCoreError, ClientError) as error:
            raise StorageError(f"could not write {name} to S3 {self._where()}: {error}") from error
        return name

    def _object(self, method: str, name: str, doing: str):
        """A per-object call (head_object, get_object): its response, or None when there is no such object."""
        try:
            return getattr(self._client, method)(Bucket=self.bucket, Key=self._key(name))
        except ClientError as error:
            if _status(error) == 404:
                return None
            raise StorageError(f"could not {doing} {name} in S3 {self._where()}: {error}") from error
        except BotoCoreError as error:
            raise StorageError(f"could not {doing} {name} in S3 {self._where()}: {error}") from error

    def exists(self, name: str) -> bool:
        return is_content_name(name) and self._object("head_object", name, "look up") is not None

    def read(self, name: str) -> bytes | None:
        """The object's bytes, or None when there is no such object (or the name is not one of ours)."""
        response = self._object("get_object", name, "read") if is_content_name(name) else None
        if response is None:
            return None
        try:
            return response["Body"].read()
        except BotoCoreError as error:
            raise StorageError(f"could not read {name} in S3 {self._where()}: {error}") from error

    def remove(self, names: set[str], untouched_since: float | None = None) -> None:
        """Delete these objects; with `untouched_since`, spare one written again since (a new job's result)."""
        if untouched_since is not None:
            names = {name for name in names if is_content_name(name) and not self._written_since(name, untouched_since)}
        keys = [{"Key": self._key(name)} for name in sorted(names) if is_content_name(name)]
        for start in range(0, len(keys), _DELETE_BATCH):
            try:
                self._client.delete_objects(Bucket=self.bucket,
                                            Delete={"Objects": keys[start:start + _DELETE_BATCH], "Quiet": True})
            except (BotoCoreError, ClientError) as error:
                raise StorageError(f"could not remove objects from S3 {self._where()}: {error}") from error

    @property
    def link_origin(self) -> str:
        """scheme://host of the presigned links (on AWS, the regional endpoint boto3 chose)."""
        from urllib.parse import urlsplit

        parts = urlsplit(self._signer.meta.endpoint_url)
        return f"{parts.scheme}://{parts.netloc}"

    def probe(self) -> None:
        """Write and remove a small object; raises StorageError where a result could not be stored."""
        name = content_name(b"probe", "png")
        self.save(b"probe", "png")
        self.remove({name})

    def _written_since(self, name: str, since: float) -> bool:
        head = self._object("head_object", name, "look up")
        return head is not None and head["LastModified"].timestamp() >= since

    def presigned_url(self, name: str, expires_s: int) -> str:
        """A GET URL anyone can use until it expires; signed locally, so it costs no request."""
        if not is_content_name(name):
            raise ValueError(f"not a result file name: {name!r}")
        return self._signer.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._key(name)}, ExpiresIn=int(expires_s),
        )


def _status(error: ClientError) -> int | None:
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
