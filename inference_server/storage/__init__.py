"""Result files by content hash: written by the engine's process, served and expired by the HTTP one."""

from __future__ import annotations


def open_store(settings):
    """The result store STORAGE names: files under DATA_DIR, or objects in an S3-compatible bucket."""
    if settings.storage == "s3":
        import os

        from inference_server.storage.s3 import S3FileStore, S3Settings, StorageError

        if not settings.s3_bucket:
            raise StorageError("STORAGE=s3 needs S3_BUCKET (and S3_ENDPOINT_URL unless the bucket is on AWS)")
        return S3FileStore(S3Settings(
            bucket=settings.s3_bucket, prefix=settings.s3_prefix, endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region, public_endpoint_url=settings.s3_public_endpoint_url or None,
            access_key_id=os.environ.get("AWS_ACCESS_KEY_ID") or None,
            secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY") or None,
            session_token=os.environ.get("AWS_SESSION_TOKEN") or None))
    if settings.storage != "disk":
        raise ValueError(f"STORAGE must be disk or s3, not {settings.storage!r}")
    from inference_server.storage.files import FileStore

    return FileStore(settings.data_dir / "files")
