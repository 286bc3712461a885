"""Server settings, read from the environment (tests pass overrides)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, fields
from pathlib import Path


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Every knob of the server; the README lists each with its default."""

    model_id: str = ""  # empty: Qwen/Qwen-Image on CUDA, the tiny offline model on a CPU-only machine
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = Path("data")
    api_keys: tuple[str, ...] = ()
    device: str = "auto"
    edit_model_id: str = ""  # empty: Qwen/Qwen-Image-Edit-2509 on CUDA, none on a CPU-only machine; tiny; none
    edit_placement: str = "auto"  # gpu | swap | auto: both transformers resident, or the idle one parked on the host
    edit_device: str = ""  # empty: DEVICE; cuda:1 puts the edit model on a second GPU
    edit_input_area: int = 0  # pixels Edit Plus VAE-encodes each input image at; 0: the pipeline's own (~1 MP)
    torch_dtype: str = "auto"
    enable_cpu_offload: str = "auto"  # auto: only when the weights do not fit the GPU
    vae_tiling: bool = False
    attention_backend: str = ""
    compile_transformer: bool = False
    overlap_finishing: str = "auto"  # encode a job's images while the device runs the next; auto: on a GPU
    lightning_lora: str = ""  # local path of the Qwen-Image-Lightning LoRA: fast mode
    storage: str = "disk"  # disk | s3: where result images go
    s3_endpoint_url: str = ""  # empty: AWS itself
    s3_bucket: str = ""
    s3_prefix: str = ""
    s3_region: str = "us-east-1"
    s3_public_endpoint_url: str = ""  # the host clients reach for presigned links, when not S3_ENDPOINT_URL
    s3_presign: bool = True  # /v1/files/{name} redirects to a presigned URL; off: the server streams the object
    max_queue: int = 32
    job_timeout_s: float = 600.0
    worker_stall_s: float = 300.0
    result_ttl_s: float = 7 * 24 * 3600.0
    cache_size: int = 256
    max_upload_mb: float = 32.0
    upload_budget_mb: float = 0.0  # request bodies read and decoded at once; 0: 4 x MAX_UPLOAD_MB; then 503
    max_pixels: int = 2048 * 2048
    masked_min_size: int = 512
    png_metadata: bool = True
    log_prompts: bool = False
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()  # Host values served; empty: any with keys, else the bound address + localhost
    max_connections: int = 4000  # open connections the front door holds at once (each a greenlet)
    header_timeout_s: int = 15  # a request's line and headers must arrive within this, and idle keep-alives end
    body_timeout_s: float = 60.0  # a request's whole body must arrive within this, or 408
    max_waits_per_key: int = 64  # concurrent long-polls and event streams per API key (or client address)
    safety_checker: str = "none"  # none | nudenet | classifier:<hub id or folder> (docs/safety.md)
    safety_labels: tuple[str, ...] = ()  # the labels that count as unsafe; empty: the checker's own
    safety_threshold: float = 0.5
    safety_policy: str = "block"  # flag | blur | block, for an image the checker finds unsafe
    prompt_blocklist: str = ""  # a file of words and patterns refused in prompts
    public_base_url: str = ""  # how clients reach the server (https://host[:port]): absolute links and schemas
    file_url_secret: str = ""  # signs /v1/files links; empty: generated once into DATA_DIR/file_url_secret
    file_url_ttl_s: float = 86400.0  # how long a signed file link opens without the key
    openai_wait_s: float = 300.0  # how long the OpenAI Images endpoints wait for a job before answering
    rate_limit: str = "600/60"  # submits per key (or address): N/S, N requests per S seconds; "0" turns it off
    admin_keys: tuple[str, ...] = ()  # keys that see every key's jobs and files (they are valid keys too)
    shared_cache: bool = False  # one result cache for all keys (else a hit never crosses keys)
    storage_failures_unready: int = 3  # this many jobs failing to store in a row make /readyz 503; 0: never
    inject_faults: bool = False  # test hook: honour the X-Inject-Fault header
    executor: str = "local"  # local: the engine in a child process; ray: jobs on Ray Serve replicas
    ray_address: str = ""  # EXECUTOR=ray: a running cluster (host:port); empty starts a local one
    ray_replicas: str = "auto"  # EXECUTOR=ray: replicas, one job each at a time; auto: one per GPU (1 without)

    def __post_init__(self) -> None:
        """An admin key is a key: it passes the key check wherever API_KEYS would."""
        if self.admin_keys:
            object.__setattr__(self, "api_keys", tuple(dict.fromkeys((*self.api_keys, *self.admin_keys))))

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None, **overrides) -> "Settings":
        env = dict(os.environ if env is None else env)
        values: dict = {}
        for f in fields(cls):
            raw = env.get(_env_name(f.name))
            if raw is None or raw == "":
                continue
            values[f.name] = _parse(f.type, raw)
        values.update(overrides)
        return cls(**values)

    def overlaps_finishing(self, device: str) -> bool:
        """`auto`: only where the device is not the CPU, whose cores the encoder would take from the model."""
        value = self.overlap_finishing.strip().lower()
        return not device.startswith("cpu") if value == "auto" else _flag(value)

    @property
    def is_loopback(self) -> bool:
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return self.host == "localhost"

    def check_bind_safety(self) -> None:
        """An open port with no key is how image servers get hijacked: refuse it."""
        if not self.is_loopback and not self.api_keys:
            raise SystemExit(
                f"refusing to listen on {self.host} without API_KEYS: set API_KEYS=<secret> "
                "or bind HOST=127.0.0.1"
            )


_ENV_NAMES = {"compile_transformer": "COMPILE", "lightning_lora": "LIGHTNING_LORA_PATH"}


def _env_name(name: str) -> str:
    return _ENV_NAMES.get(name, name.upper())


def _parse(kind: str, raw: str):
    if kind == "bool":
        return _flag(raw)
    if kind == "int":
        return int(raw)
    if kind == "float":
        return float(raw)
    if kind == "Path":
        return Path(raw)
    if kind.startswith("tuple"):
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


ENV_DEFAULTS = {_env_name(f.name): f.default for f in fields(Settings)}
