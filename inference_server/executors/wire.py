"""Length-prefixed pickles over a pipe: the child's commands in, its events out.

Only our own processes are at either end, and only plans, events and file names cross.
"""

from __future__ import annotations

import pickle
import struct
from typing import BinaryIO

_HEADER = struct.Struct(">I")


def write_message(stream: BinaryIO, message) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_message(stream: BinaryIO):
    """The next message, or None when the other end has closed the pipe."""
    header = _read_exactly(stream, _HEADER.size)
    if header is None:
        return None
    data = _read_exactly(stream, _HEADER.unpack(header)[0])
    return None if data is None else pickle.loads(data)


def _read_exactly(stream: BinaryIO, size: int) -> bytes | None:
    chunks, needed = [], size
    while needed:
        chunk = stream.read(needed)
        if not chunk:
            return None
        chunks.append(chunk)
        needed -= len(chunk)
    return b"".join(chunks)
