"""Reading a multipart upload as it streams in, with the size limit enforced on the way.

Starlette's own form parser would accept a whole 50 MB file (spooled to disk) before the route
could refuse it. Here each file part goes to a temporary file chunk by chunk; as soon as a part
passes ``max_file_bytes`` its temporary file is deleted and the rest of its bytes are only
counted, so that the answer can say how big it was ("Cette photo est trop grande (50 Mo)"). The
rest of the request is still read (and thrown away) up to ``max_request_bytes``, so that the
browser, still sending, receives the answer instead of a reset connection; beyond that the
reading stops. Memory use is one chunk, whatever the size of the upload.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from python_multipart.multipart import MultipartParser, parse_options_header

from backend.photos.processing import PhotoRejected, too_big

log = logging.getLogger(__name__)

MAX_FIELD_BYTES = 4096  # a resident id or a caption; longer text fields are refused
NOT_A_FORM = "Nothing was received. Choose a photo and try again."
TOO_MANY_FILES = "Send at most %(n)s photos at once."


@dataclass
class FilePart:
    """One file of the upload: where its bytes are (None once refused) and how many."""

    field: str
    filename: str
    path: Path | None
    size: int = 0
    too_big: bool = False


@dataclass
class UploadForm:
    files: list[FilePart] = field(default_factory=list)
    fields: dict[str, list[str]] = field(default_factory=dict)
    received: int = 0  # bytes of the request body read
    truncated: bool = False  # reading stopped at max_request_bytes

    def discard(self) -> None:
        """Delete every temporary file still held."""
        for part in self.files:
            if part.path is not None:
                part.path.unlink(missing_ok=True)
                part.path = None


async def read_upload(
    chunks: AsyncIterator[bytes],
    content_type: str,
    *,
    new_temp_file: Callable[[], Path],
    max_file_bytes: int,
    max_files: int,
    max_request_bytes: int,
) -> UploadForm:
    """Parse a ``multipart/form-data`` body; file parts land in temporary files.

    Refuses (:class:`PhotoRejected`) a body that is not multipart or carries too many files;
    a file over the limit is marked ``too_big`` (the caller answers with its size). On any
    error no temporary file is left behind.
    """
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise PhotoRejected(NOT_A_FORM, 400)
    reader = _PartReader(new_temp_file, max_file_bytes, max_files)
    parser = MultipartParser(
        boundary,
        callbacks={
            "on_part_begin": reader.part_begin,
            "on_header_field": reader.header_field,
            "on_header_value": reader.header_value,
            "on_header_end": reader.header_end,
            "on_headers_finished": reader.headers_finished,
            "on_part_data": reader.part_data,
            "on_part_end": reader.part_end,
        },
    )
    form = reader.form
    try:
        async for chunk in chunks:
            form.received += len(chunk)
            if form.received > max_request_bytes:
                # Past what any honest upload needs: stop reading (the connection closes).
                form.truncated = True
                reader.overflow()
                break
            parser.write(chunk)
        else:
            parser.finalize()
        reader.close()
    except BaseException:
        reader.close()
        form.discard()
        raise
    return form


class _PartReader:
    """The parser's callbacks: headers, then data into a file or a small text buffer."""

    def __init__(
        self, new_temp_file: Callable[[], Path], max_file_bytes: int, max_files: int
    ) -> None:
        self.new_temp_file = new_temp_file
        self.max_file_bytes = max_file_bytes
        self.max_files = max_files
        self.form = UploadForm()
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[bytes, bytes] = {}
        self._file: FilePart | None = None
        self._out: IO[bytes] | None = None
        self._name = ""
        self._text = bytearray()

    def part_begin(self) -> None:
        self._headers = {}
        self._file = None
        self._text = bytearray()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        self._headers[bytes(self._header_field).lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def headers_finished(self) -> None:
        _, options = parse_options_header(self._headers.get(b"content-disposition", b""))
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        filename = options.get(b"filename")
        if filename is None:
            return
        if len(self.form.files) >= self.max_files:
            raise PhotoRejected(TOO_MANY_FILES, 400, {"n": self.max_files})
        path = self.new_temp_file()
        self._file = FilePart(self._name, filename.decode("utf-8", "replace")[:200], path)
        self.form.files.append(self._file)
        self._out = path.open("wb")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        part = self._file
        if part is None:
            if len(self._text) + (end - start) > MAX_FIELD_BYTES:
                raise PhotoRejected(NOT_A_FORM, 400)
            self._text += data[start:end]
            return
        part.size += end - start
        if part.too_big:
            return  # only counted, so that the answer can say how big the file was
        if part.size > self.max_file_bytes:
            self._refuse(part)
            return
        assert self._out is not None
        self._out.write(data[start:end])

    def part_end(self) -> None:
        if self._file is None:
            self.form.fields.setdefault(self._name, []).append(
                self._text.decode("utf-8", "replace")
            )
        self._close_out()
        self._file = None

    def overflow(self) -> None:
        """Reading stopped mid-part: the part being read counts as too big."""
        if self._file is not None:
            self._refuse(self._file)

    def close(self) -> None:
        self._close_out()

    def _refuse(self, part: FilePart) -> None:
        part.too_big = True
        self._close_out()
        if part.path is not None:
            part.path.unlink(missing_ok=True)
            part.path = None
        log.info(
            "upload part %r over %s bytes: dropped while streaming",
            part.filename,
            self.max_file_bytes,
        )

    def _close_out(self) -> None:
        if self._out is not None:
            self._out.close()
            self._out = None


def refusal_for(part: FilePart, max_file_bytes: int) -> PhotoRejected:
    """The sentence for a part that was too big."""
    return too_big(part.size, max_file_bytes, part.filename)
