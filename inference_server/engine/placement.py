"""EDIT_PLACEMENT: where the base and the edit transformer live when both models are served.

Two 20 B transformers in bf16 (2 x 38 GiB) and the shared text encoder do not fit an 80 GB card together:
  gpu   both stay resident on the device (an H200, or EDIT_DEVICE on a second card)
  swap  one is resident; the other is parked, and `activate` moves it in when a job needs it
  auto  gpu when the device's free memory holds the transformers not yet on it plus working room, else swap

Parking keeps a host copy of every weight (page-locked on CUDA, so the copy in runs at full PCIe speed) and
points the module at `meta` tensors, which frees its device memory. The weights never change while serving,
so parking the outgoing transformer copies nothing: a swap is one host-to-device copy of the incoming one.
The cost is host memory: every managed transformer's weights, pinned, for as long as the server runs.
On a CPU-only machine the host copy is the module's own tensors: parking moves the module to `meta` and
activating assigns them back, no copy made.
"""

from __future__ import annotations

import logging
import threading
import time

import torch

log = logging.getLogger(__name__)
ALIGN = 256  # byte alignment of each tensor in the host buffer
MODES = ("gpu", "swap", "auto")
AUTO_HEADROOM = 8 * 2**30  # activations of a 1 MP edit with three reference images, and the allocator's slack


def parameter_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in _tensors(module).values())


def choose_mode(setting: str, device: str, incoming_bytes: int, headroom: int = AUTO_HEADROOM) -> str:
    """Resolve `auto`: swap only on a CUDA device whose free memory cannot take `incoming_bytes` more."""
    setting = (setting or "auto").strip().lower()
    if setting not in MODES:
        raise ValueError(f"EDIT_PLACEMENT must be gpu, swap or auto, not {setting!r}")
    if setting != "auto":
        return setting
    if not device.startswith("cuda"):
        return "gpu"  # everything is in host memory already: nothing to gain by parking
    free, _total = torch.cuda.mem_get_info(torch.device(device))
    return "gpu" if incoming_bytes + headroom <= free else "swap"


def _tensors(module: torch.nn.Module) -> dict[tuple[str, str], torch.Tensor]:
    """Every parameter and buffer, non-persistent ones too (state_dict would miss those), by (module, name)."""
    found = {}
    for prefix, sub in module.named_modules(remove_duplicate=False):
        for kind in ("_parameters", "_buffers"):
            for name, tensor in getattr(sub, kind).items():
                if tensor is not None:
                    found[(prefix, name)] = tensor
    return found


def _set(module: torch.nn.Module, key: tuple[str, str], tensor: torch.Tensor) -> None:
    sub = module.get_submodule(key[0])
    if key[1] in sub._parameters:
        sub._parameters[key[1]] = torch.nn.Parameter(tensor, requires_grad=False)
    else:
        sub._buffers[key[1]] = tensor


class Placement:
    """Keeps named modules (the transformers) resident or swapped; `activate` before every call."""

    def __init__(self, mode: str, device: str, modules: dict[str, torch.nn.Module], active: str | None = None,
                 copy_to_host: bool | None = None):
        """`copy_to_host`: keep the host copy in a buffer of its own (default: on a CUDA device; a test sets it
        on the CPU to run that path)."""
        if mode not in ("gpu", "swap"):
            raise ValueError(f"resolve the placement mode first (choose_mode), not {mode!r}")
        self.mode, self.device, self.modules = mode, torch.device(device), modules
        self.copy_to_host = self.device.type != "cpu" if copy_to_host is None else copy_to_host
        self._flat: list[torch.Tensor] = []  # the host buffers, kept alive (and registered) for the server's life
        self.active = active or next(iter(modules))
        self._homes: dict[str, dict[tuple[str, str], torch.Tensor]] = {}
        self._lock = threading.Lock()
        for name, module in modules.items():
            if any(t.is_meta for t in _tensors(module).values()):
                raise ValueError(f"{name} has no weights (meta tensors): parked by another Placement?")
            if mode == "gpu":
                module.to(self.device)
                continue
            self._homes[name] = self._make_home(module)
            if name != self.active:
                self._park(name)
        if mode == "swap":
            self._bring_in(self.active)

    def _make_home(self, module: torch.nn.Module) -> dict[tuple[str, str], torch.Tensor]:
        """The host copy. On the CPU: the module's own tensors. For a device: one flat host buffer holding
        every tensor, then page-locked with cudaHostRegister (the pinned allocator would round each tensor up
        to a power of two, up to twice the memory). Filled a tensor at a time: memory never holds two copies."""
        tensors = _tensors(module)
        if not self.copy_to_host:
            return dict(tensors)
        unique = list({id(t): t for t in tensors.values()}.values())  # tied weights stay tied
        offsets, total = {}, 0
        for tensor in unique:
            offsets[id(tensor)] = total
            total += -(-tensor.numel() * tensor.element_size() // ALIGN) * ALIGN
        flat = torch.empty(total, dtype=torch.uint8)
        views = {}
        for tensor in unique:
            start = offsets[id(tensor)]
            view = flat[start:start + tensor.numel() * tensor.element_size()].view(tensor.dtype).view(tensor.shape)
            views[id(tensor)] = view.copy_(tensor.detach())
        home = {key: views[id(tensor)] for key, tensor in tensors.items()}
        for key, view in home.items():
            _set(module, key, view)
        if self.device.type == "cuda":
            self._pin(flat)
        self._flat.append(flat)
        return home

    @staticmethod
    def _pin(flat: torch.Tensor) -> None:
        status = torch.cuda.cudart().cudaHostRegister(flat.data_ptr(), flat.numel(), 0)
        if int(status) != 0:
            log.warning("cudaHostRegister of %.1f GiB failed (%s): swaps will copy from pageable memory, slower",
                        flat.numel() / 2**30, status)

    def _park(self, name: str) -> None:
        module = self.modules[name]
        for key, tensor in self._homes[name].items():
            _set(module, key, torch.empty_like(tensor, device="meta"))

    def _bring_in(self, name: str) -> None:
        module, moved = self.modules[name], {}
        for key, tensor in self._homes[name].items():
            if id(tensor) not in moved:
                moved[id(tensor)] = tensor.to(self.device, non_blocking=True)  # the same tensor on the CPU
            _set(module, key, moved[id(tensor)])
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def is_parked(self, name: str) -> bool:
        return any(t.is_meta for t in _tensors(self.modules[name]).values())

    def activate(self, name: str) -> float:
        """Make `name`'s module resident, parking the one that was; returns the seconds spent (0 if none)."""
        if name not in self.modules:
            raise KeyError(f"no module {name!r} under placement: {', '.join(self.modules)}")
        with self._lock:
            if self.mode == "gpu" or name == self.active:
                return 0.0
            started = time.perf_counter()
            self._park(self.active)
            self._bring_in(name)
            self.active = name
            return time.perf_counter() - started
