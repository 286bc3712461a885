"""Load a second pipeline that reuses the identical components of one already in memory.

Qwen-Image and Qwen-Image-Edit ship the same Qwen2.5-VL text encoder (15.5 GiB in bf16), VAE and tokenizer.
Loading the edit model on its own would hold them twice; `load_sharing` passes the loaded objects to
`from_pretrained` instead, so memory holds one copy and the edit model adds only its transformer.

Components are matched by a fingerprint of their folder, never by name or model id: a fine-tuned text encoder
under the same folder name must not be taken for the base one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from pathlib import Path

import torch
from diffusers import DiffusionPipeline

log = logging.getLogger(__name__)
# Never the transformer (that is what differs) nor the scheduler (it carries per-call state: a shared one breaks
# concurrent calls). The processor is rebuilt around the shared tokenizer instead (`_share_processor_tokenizer`).
SHAREABLE = ("text_encoder", "vae", "tokenizer")
MIB = 2**20
WHOLE_FILE_LIMIT = 8 * MIB  # smaller files are hashed whole
SAMPLES = 8  # besides the first and last MiB, this many MiB spread evenly through a large file
_BLOB_NAME = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")


def _file_digest(path: Path) -> str:
    """A Hugging Face cache blob's own name (its sha256, or git sha1 for small files); else a sampled hash."""
    if path.is_symlink():
        target = path.resolve()
        if target.parent.name == "blobs" and _BLOB_NAME.match(target.name):
            return "blob:" + target.name
    size = path.stat().st_size
    digest = hashlib.sha256(str(size).encode())
    with path.open("rb") as handle:
        if size <= WHOLE_FILE_LIMIT:
            digest.update(handle.read())
        else:
            last = size - MIB
            for offset in [0, *(last * k // (SAMPLES + 1) for k in range(1, SAMPLES + 1)), last]:
                handle.seek(offset)
                digest.update(handle.read(MIB))
    return "sampled:" + digest.hexdigest()


def fingerprint(folder: str | Path) -> str:
    """One hash over every file of a component folder: relative name, and content digest (configs whole).

    For a local folder, weight files over 8 MiB are sampled (size, first and last MiB, 8 MiB in between), so
    reading a 40 GB model costs about 10 MiB a file. Two weight files equal there but different elsewhere would
    be taken for the same; real checkpoints differ in every sample.
    """
    folder = Path(folder)
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(f"{path.relative_to(folder).as_posix()}\0{_file_digest(path)}\n".encode())
    return digest.hexdigest()


def local_folder(path: str) -> Path:
    """A local pipeline folder as is; a hub id resolved to its cache snapshot (downloaded if it must be)."""
    if os.path.isdir(path):
        return Path(path)
    return Path(DiffusionPipeline.download(path))


def component_fingerprints(path: str | Path) -> dict[str, str]:
    """Fingerprints of the shareable components a pipeline folder lists in its model_index.json."""
    folder = local_folder(str(path))
    index = json.loads((folder / "model_index.json").read_text())
    return {name: fingerprint(folder / name) for name in SHAREABLE
            if isinstance(index.get(name), list) and index[name][0] is not None and (folder / name).is_dir()}


def loaded_components(pipe: DiffusionPipeline, path: str | Path) -> dict[str, tuple[str, object]]:
    """What `load_sharing` takes: {name: (fingerprint, the loaded object)} of a pipeline loaded from `path`."""
    return {name: (fp, getattr(pipe, name)) for name, fp in component_fingerprints(path).items()}


@dataclasses.dataclass
class SharedLoad:
    pipeline: DiffusionPipeline
    shared: list[str]  # component names taken from the loaded pipeline
    fingerprints: dict[str, str]  # of the new pipeline's shareable components


def _dtype_matches(module, dtype: torch.dtype | None) -> bool:
    return dtype is None or not isinstance(module, torch.nn.Module) or module.dtype == dtype


def load_sharing(path: str, loaded: dict[str, tuple[str, object]], dtype: torch.dtype | None = None,
                 **kwargs) -> SharedLoad:
    """`DiffusionPipeline.from_pretrained(path)`, passing in every already-loaded component that is identical.

    A loaded module of another dtype is not shared (it would change the other pipeline's precision).
    """
    folder = local_folder(path)
    fingerprints = component_fingerprints(folder)
    by_fingerprint = {fp: obj for fp, obj in loaded.values()}
    passed = {name: by_fingerprint[fp] for name, fp in fingerprints.items()
              if fp in by_fingerprint and _dtype_matches(by_fingerprint[fp], dtype)}
    log.info("loading %s sharing %s", path, ", ".join(sorted(passed)) or "nothing")
    pipe = DiffusionPipeline.from_pretrained(str(folder), dtype=dtype, **passed, **kwargs)
    shared = sorted(passed)
    if "tokenizer" in passed and _share_processor_tokenizer(pipe):
        shared.append("processor.tokenizer")
    return SharedLoad(pipe, shared, fingerprints)


def _share_processor_tokenizer(pipe: DiffusionPipeline) -> bool:
    """The edit pipelines' Qwen2-VL processor loads its own tokenizer: swap in the shared one when it is the
    same tokenizer (same vocabulary, merges, special tokens and padding), compared by content."""
    processor = getattr(pipe, "processor", None)
    own, shared = getattr(processor, "tokenizer", None), pipe.tokenizer
    if own is None or own is shared or not hasattr(own, "backend_tokenizer"):
        return False
    same = (own.backend_tokenizer.to_str() == shared.backend_tokenizer.to_str()
            and own.special_tokens_map == shared.special_tokens_map and own.padding_side == shared.padding_side)
    if same:
        processor.tokenizer = shared
    return same
