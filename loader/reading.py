"""Streaming reader of till exports: pyarrow's CSV reader, one block at a time.

Memory stays flat whatever the file size: `pyarrow.csv.open_csv` parses the file in blocks
of `BLOCK_BYTES` and yields one record batch per block; every column is read as a string
and quoted values may hold commas, doubled quotes and line breaks.

Decisions, made once per file by `inspect_file` (one sequential pass that also computes the
sha256 checksum the ledger needs before anything is loaded):

* Encoding: UTF-8, with or without a byte-order mark. A file that is not valid UTF-8 is
  read as Windows-1252 — what a till running Windows writes, and a superset of Latin-1's
  printable characters, so names like `Zoë` survive. A file that is neither (bytes that
  cp1252 leaves undefined) is refused whole, with status `refused` and a reason: it is
  not text, and guessing further would load garbage.
* Header: present when the first line is the known header (any case, spaces or quotes
  around names); otherwise the first line is data.
* Line numbers are physical: the header is line 1, and a quoted value spanning two lines
  makes the next row start two lines later. pyarrow numbers rows, not lines, so each row's
  embedded line breaks (CRLF, LF or a lone CR, as pyarrow splits them) are added up.
* Blank lines are not rows: they are skipped, but still counted for line numbers.
* A line with the wrong number of fields comes back as a `MalformedLine` (pyarrow's
  `invalid_row_handler` hands over its text and row number), not an exception.
* A line longer than `BLOCK_BYTES`, or any other parse error pyarrow raises, refuses the
  file with `UnreadableFile`.
"""

from __future__ import annotations

import codecs
import hashlib
import io
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Final

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from loader.errors import CafeError
from loader.validation import COLUMNS, sanitise_text

# 1 MiB blocks keep peak memory flat with file size (larger blocks let the allocator's
# footprint creep up with every block) while amortising per-block work over ~6k rows.
BLOCK_BYTES: Final = 1 << 20
UTF8_BOM: Final = codecs.BOM_UTF8
_CHUNK_BYTES: Final = 1 << 20
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_BREAK_PATTERN: Final = r"\r\n|\r|\n"


class UnreadableFile(CafeError):
    """The whole file is refused: it is not text, or the CSV cannot be split into rows."""


@dataclass(frozen=True, slots=True)
class FileFacts:
    checksum: str
    size_bytes: int
    encoding: str | None
    has_header: bool
    refusal: str | None = None


@dataclass(frozen=True, slots=True)
class MalformedLine:
    line_number: int
    text: str
    field_count: int


@dataclass(frozen=True, slots=True)
class Block:
    """One parsed block: its well-formed, non-blank rows and its malformed lines.

    `rows` has the seven export columns as strings plus `line_number` (int64).
    """

    rows: pa.Table
    malformed: list[MalformedLine]


def is_header(first_line: bytes) -> bool:
    """Whether `first_line` (without its line break) is the known export header."""
    text = first_line.removeprefix(UTF8_BOM).decode("utf-8", errors="replace")
    names = tuple(name.strip().strip('"').strip().lower() for name in text.split(","))
    return names == COLUMNS


def inspect_file(stream: IO[bytes]) -> FileFacts:
    """Checksum, size, encoding and header of a seekable binary stream, rewound afterwards."""
    stream.seek(0)
    digest = hashlib.sha256()
    utf8 = codecs.getincrementaldecoder("utf-8")()
    is_utf8 = is_cp1252 = True
    size = 0
    head = b""
    while chunk := stream.read(_CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
        if len(head) < 65536:
            head += chunk[:65536]
        if chunk.isascii():
            continue
        if is_utf8:
            try:
                utf8.decode(chunk)
            except UnicodeDecodeError:
                is_utf8 = False
        if is_cp1252:
            try:
                chunk.decode("cp1252")
            except UnicodeDecodeError:
                is_cp1252 = False
    if is_utf8:
        try:
            utf8.decode(b"", final=True)
        except UnicodeDecodeError:
            is_utf8 = False
    stream.seek(0)
    first_line = _LINE_BREAK.split(head.decode("latin-1"), maxsplit=1)[0].encode("latin-1")
    encoding = "utf-8" if is_utf8 else "cp1252" if is_cp1252 else None
    refusal = None if encoding else "the file is neither UTF-8 nor Windows-1252 text"
    return FileFacts(digest.hexdigest(), size, encoding, is_header(first_line), refusal)


class _CountingReader(io.RawIOBase):
    """Passes reads through, reporting the bytes read so far (for progress bars)."""

    def __init__(self, stream: IO[bytes], on_read: Callable[[int], None]) -> None:
        self._stream = stream
        self._on_read = on_read
        self._done = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        self._done += len(data)
        self._on_read(self._done)
        return len(data)


def read_blocks(
    stream: IO[bytes],
    facts: FileFacts,
    *,
    on_progress: Callable[[int], None] | None = None,
    block_bytes: int = BLOCK_BYTES,
) -> Iterator[Block]:
    """The file's non-blank lines, numbered, one `Block` per parsed block of the file."""
    if facts.encoding is None:
        raise UnreadableFile(facts.refusal or "the file is not text")
    stream.seek(0)
    if facts.size_bytes == 0 or stream.read(len(UTF8_BOM) + 1) == UTF8_BOM:
        return  # empty, or nothing but a byte-order mark
    stream.seek(0)

    malformed: dict[int, tuple[str, int]] = {}

    def keep_malformed(row: pacsv.InvalidRow) -> str:
        if row.number is None:  # pyarrow numbers rows when it reads serially, as here
            raise UnreadableFile("the CSV reader could not number a malformed line")
        malformed[row.number] = (row.text, row.actual_columns)
        return "skip"

    source: IO[bytes] = stream
    if on_progress is not None:
        source = io.BufferedReader(_CountingReader(stream, on_progress), buffer_size=1 << 16)
    first_row = 2 if facts.has_header else 1
    try:
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(
                column_names=list(COLUMNS),
                skip_rows=1 if facts.has_header else 0,
                block_size=block_bytes,
                use_threads=False,
                encoding="utf8" if facts.encoding == "utf-8" else facts.encoding,
            ),
            parse_options=pacsv.ParseOptions(
                newlines_in_values=True,
                ignore_empty_lines=False,
                invalid_row_handler=keep_malformed,
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={name: pa.string() for name in COLUMNS},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        numbering = _Numbering(row=first_row, line=first_row)
        for batch in reader:
            yield numbering.block_of(batch, malformed)
        if malformed:  # rows pyarrow numbered past the last block: keep them, in order
            yield Block(_EMPTY_ROWS, numbering.leftovers(malformed))
    except pa.ArrowInvalid as error:
        if facts.has_header and str(error).startswith("Could not skip initial"):
            return  # the header is the whole file: it has no line break to skip past
        raise UnreadableFile(_parse_error_reason(error, block_bytes)) from None


def _parse_error_reason(error: pa.ArrowInvalid, block_bytes: int) -> str:
    message = str(error)
    if "straddling" in message or "block" in message:
        return f"a line is longer than {block_bytes >> 20} MiB"
    if message.startswith("Empty CSV file"):
        return "the file is empty"
    return "the CSV cannot be read: " + sanitise_text(message)[:300]


_EMPTY_ROWS: Final = pa.table(
    {
        **{name: pa.array([], pa.string()) for name in COLUMNS},
        "line_number": pa.array([], pa.int64()),
    }
)


@dataclass(slots=True)
class _Numbering:
    """Maps pyarrow's row numbers (malformed rows included) to physical line numbers."""

    row: int
    line: int

    def block_of(self, batch: pa.RecordBatch, malformed: dict[int, tuple[str, int]]) -> Block:
        spans = np.asarray(_embedded_line_breaks(batch), dtype=np.int64) + 1
        out: list[MalformedLine] = []
        if not malformed:  # the usual case: rows follow each other, no malformed line between
            starts = self.line + np.cumsum(spans) - spans
            self.row += batch.num_rows
            self.line += int(spans.sum())
        else:
            starts = np.empty(batch.num_rows, dtype=np.int64)
            for index, span in enumerate(spans.tolist()):
                self._take_malformed(malformed, out)
                starts[index] = self.line
                self.row += 1
                self.line += span
            self._take_malformed(malformed, out)
        table = pa.Table.from_batches([batch]).append_column("line_number", pa.array(starts))
        return Block(table.filter(_not_blank(batch)), out)

    def leftovers(self, malformed: dict[int, tuple[str, int]]) -> list[MalformedLine]:
        out: list[MalformedLine] = []
        for row in sorted(malformed):
            self.row = row
            self._take_malformed(malformed, out)
        return out

    def _take_malformed(
        self, malformed: dict[int, tuple[str, int]], out: list[MalformedLine]
    ) -> None:
        while self.row in malformed:
            text, field_count = malformed.pop(self.row)
            if text.strip():
                out.append(MalformedLine(self.line, text, field_count))
            self.row += 1
            self.line += 1 + len(_LINE_BREAK.findall(text))


def _not_blank(batch: pa.RecordBatch) -> pa.Array:
    """Rows with at least one non-empty field (pyarrow reads a blank line as all-empty)."""
    filled = [pc.greater(pc.binary_length(column), 0) for column in batch.columns]
    mask = filled[0]
    for column_filled in filled[1:]:
        mask = pc.or_(mask, column_filled)
    return mask


def _embedded_line_breaks(batch: pa.RecordBatch) -> pa.Array:
    counts = [pc.count_substring_regex(column, _LINE_BREAK_PATTERN) for column in batch.columns]
    total = counts[0]
    for count in counts[1:]:
        total = pc.add(total, count)
    return total
