"""multipart/form-data, read part by part: files spooled to disk, text fields capped, errors naming the part.

werkzeug's own form parser answers every limit it hits (a text field over 500 KB, more than 1,000 parts)
with the same bare 413, which the API could only word as "body over MAX_UPLOAD_MB". Reading the parts here,
with werkzeug's incremental decoder, says which limit and which field; and a file part the task cannot take
(an unknown name, a second `image`) is refused when its headers arrive, before its bytes are read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from tempfile import SpooledTemporaryFile
from typing import IO

from werkzeug.sansio.multipart import Data, Epilogue, Field, File, MultipartDecoder, NeedData

from inference_server.errors import ApiError

MAX_FIELD_BYTES = 500_000  # a text part; images go in file parts
MAX_PARTS = 1000
SPOOL_BYTES = 512 * 1024  # a file part larger than this waits on disk, not in memory, until it is decoded
CHUNK_BYTES = 64 * 1024


@dataclass
class Form:
    fields: list[tuple[str, str]] = field(default_factory=list)
    files: list[tuple[str, SpooledTemporaryFile]] = field(default_factory=list)

    def file_contents(self) -> list[tuple[str, bytes]]:
        """Each file's bytes, read from its spool once the whole body has arrived; the spools are closed."""
        try:
            return [(name, _read(spool)) for name, spool in self.files]
        finally:
            self.close()

    def close(self) -> None:
        for _, spool in self.files:
            spool.close()


def _read(spool: SpooledTemporaryFile) -> bytes:
    spool.seek(0)
    return spool.read()


def read_multipart(stream: IO[bytes], boundary: str, takes: dict[str, int]) -> Form:
    """Text fields and spooled files, in order; `takes` is {file part name: how many files it may hold}."""
    if not boundary:
        raise ApiError(400, "invalid_multipart", "multipart/form-data needs a boundary in its Content-Type")
    decoder = MultipartDecoder(boundary.encode("latin-1", "replace"))
    form = Form()
    parts = 0
    current: Field | File | None = None
    text: list[bytes] = []
    size = 0
    spool: SpooledTemporaryFile | None = None
    try:
        while True:
            chunk = stream.read(CHUNK_BYTES)
            decoder.receive_data(chunk or None)
            event = decoder.next_event()
            while not isinstance(event, (NeedData, Epilogue)):
                if isinstance(event, (Field, File)):
                    parts += 1
                    if parts > MAX_PARTS:
                        raise ApiError(413, "too_many_parts", f"the form has more than {MAX_PARTS} parts")
                    current, text, size = event, [], 0
                    if isinstance(event, File):
                        _check_file_part(event.name, form, takes)
                        spool = SpooledTemporaryFile(max_size=SPOOL_BYTES)
                elif isinstance(event, Data):
                    size += len(event.data)
                    if isinstance(current, Field):
                        if size > MAX_FIELD_BYTES:
                            raise ApiError(413, "field_too_large",
                                           f"{current.name}: a text field over {MAX_FIELD_BYTES // 1000} KB; "
                                           "send images as file parts", current.name)
                        text.append(event.data)
                    else:
                        spool.write(event.data)
                    if not event.more_data:
                        if isinstance(current, Field):
                            form.fields.append((current.name, b"".join(text).decode("utf-8", "replace")))
                        else:
                            form.files.append((current.name, spool))
                            spool = None
                event = decoder.next_event()
            if isinstance(event, Epilogue) or not chunk:
                break
    except ValueError as exc:  # the decoder's word for a malformed body
        form.close()
        raise ApiError(400, "invalid_multipart", f"the multipart body is malformed: {exc}") from None
    except BaseException:
        form.close()
        raise
    finally:
        if spool is not None:
            spool.close()
    return form


def _check_file_part(name: str, form: Form, takes: dict[str, int]) -> None:
    if name not in takes:
        raise ApiError(422, "unknown_field", f"{name}: this task takes no file {name}", name)
    already = sum(1 for sent, _ in form.files if sent == name)
    if already >= takes[name]:
        raise ApiError(422, "invalid_image", f"{name}: at most {takes[name]} file(s); this is file {already + 1}",
                       name)

