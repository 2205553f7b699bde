"""Reading a `multipart/form-data` batch upload as it arrives: the `batch` part (JSON) into memory, the
`file` part (JSONL) into a spooled temporary file (memory up to 1 MiB, then disk) with its SHA-256.

The upload is parsed from the request stream chunk by chunk, so the API never holds the file; the
items are read back line by line from the spool by the intake. (A small parser of our own: RFC 7578
needs little, and Starlette's form parser would need the python-multipart package.)
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import IO

from app.errors import BadRequest

SPEC_PART, FILE_PART = "batch", "file"
MAX_SPEC_BYTES = 1024 * 1024
MAX_HEADER_BYTES = 16 * 1024
SPOOL_MEMORY_BYTES = 1024 * 1024
_BOUNDARY = re.compile(r'boundary="?([^";]+)"?', re.IGNORECASE)
_NAME = re.compile(r';\s*name="([^"]*)"', re.IGNORECASE)


@dataclass
class UploadedBatch:
    spec: bytes
    file: IO[bytes]  # rewound; the caller closes it
    file_sha256: str


def boundary_of(content_type: str) -> bytes:
    found = _BOUNDARY.search(content_type)
    if found is None:
        raise BadRequest("multipart/form-data without a boundary", field_name="Content-Type")
    return found.group(1).encode("latin-1")


class _Part:
    """Where one part's bytes go."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == FILE_PART:
            self.sink: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES, mode="w+b")  # noqa: SIM115
            self.digest = hashlib.sha256()
        elif name == SPEC_PART:
            self.spec = bytearray()
        else:
            raise BadRequest(f"unexpected part {name!r}; send `{SPEC_PART}` (JSON) and `{FILE_PART}` (JSONL)")

    def write(self, data: bytes) -> None:
        if self.name == FILE_PART:
            self.sink.write(data)
            self.digest.update(data)
            return
        self.spec += data
        if len(self.spec) > MAX_SPEC_BYTES:
            raise BadRequest(f"must be at most {MAX_SPEC_BYTES} bytes", field_name=SPEC_PART)


class MultipartReader:
    """A push parser: `feed` chunks in any sizes, then `finish`."""

    def __init__(self, boundary: bytes) -> None:
        self.delimiter = b"--" + boundary
        self.buffer = bytearray()
        self.state = "preamble"
        self.part: _Part | None = None
        self.parts: dict[str, _Part] = {}

    def feed(self, chunk: bytes) -> None:
        self.buffer += chunk
        while self._step():
            pass

    def _step(self) -> bool:
        """Advance while the buffer allows; False when more bytes are needed."""
        buffer, delimiter = self.buffer, self.delimiter
        if self.state == "preamble":
            found = buffer.find(delimiter)
            if found < 0:
                del buffer[: max(0, len(buffer) - len(delimiter))]
                return False
            del buffer[: found + len(delimiter)]
            self.state = "after-delimiter"
            return True
        if self.state == "after-delimiter":
            if len(buffer) < 2:
                return False
            if buffer[:2] == b"--":
                self.state = "done"
                buffer.clear()
                return False
            if buffer[:2] != b"\r\n":
                raise BadRequest("malformed multipart body: a boundary line is followed by junk")
            del buffer[:2]
            self.state = "headers"
            return True
        if self.state == "headers":
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > MAX_HEADER_BYTES:
                    raise BadRequest("malformed multipart body: part headers too long")
                return False
            self._begin(bytes(buffer[:end]).decode("latin-1"))
            del buffer[: end + 4]
            self.state = "body"
            return True
        if self.state == "body":
            end = buffer.find(b"\r\n" + delimiter)
            if end < 0:
                keep = len(delimiter) + 1  # a delimiter may be split across chunks
                if len(buffer) > keep:
                    self.part.write(bytes(buffer[: len(buffer) - keep]))
                    del buffer[: len(buffer) - keep]
                return False
            self.part.write(bytes(buffer[:end]))
            del buffer[: end + 2 + len(delimiter)]
            self.state = "after-delimiter"
            return True
        buffer.clear()  # after the closing delimiter: the epilogue is ignored
        return False

    def _begin(self, headers: str) -> None:
        disposition = next(
            (line for line in headers.split("\r\n") if line.lower().startswith("content-disposition:")), ""
        )
        found = _NAME.search(disposition)
        if found is None:
            raise BadRequest("malformed multipart body: a part has no Content-Disposition name")
        name = found.group(1)
        if name in self.parts:
            raise BadRequest(f"the part {name!r} appears twice")
        self.part = self.parts[name] = _Part(name)

    def finish(self) -> UploadedBatch:
        if self.state != "done":
            raise BadRequest("malformed multipart body: it ends before its closing boundary")
        spec, file = self.parts.get(SPEC_PART), self.parts.get(FILE_PART)
        if spec is None:
            raise BadRequest("is missing: send the batch (without items) as JSON in this part", field_name=SPEC_PART)
        if file is None:
            raise BadRequest("is missing: send the items as JSONL in this part", field_name=FILE_PART)
        file.sink.seek(0)
        return UploadedBatch(bytes(spec.spec), file.sink, file.digest.hexdigest())

    def close(self) -> None:
        for part in self.parts.values():
            if part.name == FILE_PART:
                part.sink.close()


async def read_upload(chunks: AsyncIterator[bytes], content_type: str) -> UploadedBatch:
    """The parts of a batch upload, read from the request stream."""
    reader = MultipartReader(boundary_of(content_type))
    try:
        async for chunk in chunks:
            reader.feed(chunk)
        return reader.finish()
    except BaseException:
        reader.close()
        raise
