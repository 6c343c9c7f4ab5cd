"""Streaming reader of till exports: pyarrow's CSV reader, one block at a time.

Memory stays flat whatever the file size: `pyarrow.csv.open_csv` parses the file in blocks
of `BLOCK_BYTES` and yields one record batch per block; every column is read as a string
and quoted values may hold commas, doubled quotes and line breaks.

Decisions, made once per file by `inspect_file` (one sequential pass that also computes the
sha256 checksum the ledger needs before anything is loaded):

* Encoding. A byte-order mark decides first: UTF-8, UTF-16 (LE/BE) or UTF-32 (LE/BE);
  UTF-16/32 are transcoded to UTF-8 for pyarrow while streaming (pyarrow's transcoding
  input stream, chunk by chunk). Without a mark: UTF-8 if the bytes are valid UTF-8, else
  Windows-1252 (what a till running Windows writes; names like `Zoë` survive). A file that
  is none of these is refused whole: guessing further would load garbage.
* NUL bytes never become text. A file with a NUL byte that is not UTF-16/32 with a mark is
  refused whole: a NUL is never part of a till's text, and such a file is binary or a
  UTF-16/32 export without its byte-order mark, whose every character read as Windows-1252
  would carry a NUL (and hide card digits between them). Guessing a mark-less UTF-16 file's
  byte order from NUL positions would be right most of the time; refusing is right every
  time, and the reason says how to re-export. A UTF-16/32 file whose text holds a NUL
  character is refused too.
* Columns (`loader.columns`): a header is mapped by name in any order, with synonyms;
  unknown columns are recorded as drift and never read into the rows; a header that lacks a
  required column, a card number in the header, or a header-less file whose first lines do
  not look like the export refuses the file whole, with a reason (`FileFacts.refusal`).
* Line numbers are physical, in every encoding: the header is line 1, and a quoted value
  spanning two lines makes the next row start two lines later. pyarrow numbers rows, not
  lines, so each row's embedded line breaks (CRLF, LF or a lone CR, as pyarrow splits
  them), in every column of the file, are added up.
* Blank lines are not rows: they are skipped, but still counted for line numbers.
* A line with the wrong number of fields comes back as a `MalformedLine` (pyarrow's
  `invalid_row_handler` hands over its text and row number), not an exception.
* A line longer than `BLOCK_BYTES`, or any other parse error pyarrow raises, refuses the
  file with `UnreadableFile`.

`read_blocks` yields the seven export columns whatever the file's order and extra columns:
an optional column the file lacks comes as empty strings, and the block's schema metadata
names it (`loader.validation.ABSENT_COLUMNS_KEY`) so that validation can tell an absent
card column from an empty card number.
"""

from __future__ import annotations

import codecs
import csv
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

from loader.columns import POSITIONAL, SNIFFED_LINES, ColumnLayout, ForeignFile, layout_of
from loader.contract import COLUMNS
from loader.errors import CafeError
from loader.validation import ABSENT_COLUMNS_KEY, sanitise_text

# 1 MiB blocks (~6k rows) keep peak memory low and flat with file size: the streaming
# reader's peak grows with its block size (reading a 1M-row export alone: ~140 MiB RSS at
# 1 MiB, ~290 MiB at 4 MiB), and larger blocks load no faster end to end (measured at 2 MiB:
# the server's COPY, not the parsing, sets the pace).
BLOCK_BYTES: Final = 1 << 20
UTF8_BOM: Final = codecs.BOM_UTF8
_CHUNK_BYTES: Final = 1 << 20
_HEAD_BYTES: Final = 1 << 16
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
_LINE_BREAK_PATTERN: Final = r"\r\n|\r|\n"
# Longest marks first: the UTF-32-LE mark starts with the UTF-16-LE one.
BYTE_ORDER_MARKS: Final = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
NOT_TEXT: Final = "the file is neither UTF-8 nor Windows-1252 text"
HAS_NUL_BYTES: Final = (
    "the file holds NUL bytes, so it is not UTF-8 or Windows-1252 text (a UTF-16 or UTF-32"
    " export needs its byte-order mark: re-export it as UTF-8 or as Unicode with a mark)"
)


class UnreadableFile(CafeError):
    """The whole file is refused: it is not text, or the CSV cannot be split into rows."""


@dataclass(frozen=True, slots=True)
class FileFacts:
    """What `inspect_file` decided about a whole file.

    `encoding`: `utf-8`, `utf-16-le`, `utf-16-be`, `utf-32-le`, `utf-32-be`, `cp1252`, or
    None for a file that is not text. `header`: the header's names as read (masked), None
    without a header. `unknown_columns`: header names that match no export column (drift,
    not loaded). `refusal`: why the file is refused whole, None when it is read.
    """

    checksum: str
    size_bytes: int
    encoding: str | None
    header: tuple[str, ...] | None = None
    unknown_columns: tuple[str, ...] = ()
    refusal: str | None = None
    layout: ColumnLayout = POSITIONAL
    bom_bytes: int = 0

    @property
    def has_header(self) -> bool:
        return self.header is not None


@dataclass(frozen=True, slots=True)
class MalformedLine:
    line_number: int
    text: str
    field_count: int
    expected_fields: int = len(COLUMNS)


@dataclass(frozen=True, slots=True)
class Block:
    """One parsed block: its well-formed, non-blank rows and its malformed lines.

    `rows` has the seven export columns as strings plus `line_number` (int64).
    """

    rows: pa.Table
    malformed: list[MalformedLine]


def _byte_order_mark(head: bytes) -> tuple[str | None, int]:
    for mark, encoding in BYTE_ORDER_MARKS:
        if head.startswith(mark):
            return encoding, len(mark)
    return None, 0


@dataclass
class _EncodingCheck:
    """Tracks, chunk by chunk, which encodings the bytes seen so far are valid in."""

    marked: str | None
    marked_ok: bool = True
    utf8_ok: bool = True
    cp1252_ok: bool = True
    has_nul: bool = False

    def __post_init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder(self.marked or "utf-8")()

    def feed(self, chunk: bytes, *, final: bool = False) -> None:
        if self.marked is not None and self.marked != "utf-8":
            self._feed_marked(chunk, final)
            return
        self.has_nul = self.has_nul or b"\x00" in chunk
        if chunk.isascii() and not final:
            return
        if self.utf8_ok:
            try:
                self._decoder.decode(chunk, final)
            except UnicodeDecodeError:
                self.utf8_ok = False
        if self.cp1252_ok and self.marked is None:
            try:
                chunk.decode("cp1252")
            except UnicodeDecodeError:
                self.cp1252_ok = False

    def _feed_marked(self, chunk: bytes, final: bool) -> None:
        if not self.marked_ok:
            return
        try:
            text = self._decoder.decode(chunk, final)
        except UnicodeDecodeError:
            self.marked_ok = False
            return
        self.has_nul = self.has_nul or "\x00" in text

    def verdict(self) -> tuple[str | None, str | None]:
        """(encoding, refusal)."""
        if self.marked is not None and self.marked != "utf-8":
            if not self.marked_ok:
                return None, f"the file starts with a {self.marked} byte-order mark but is not"
            if self.has_nul:
                return None, "the file's text holds NUL characters"
            return self.marked, None
        if self.has_nul:
            return None, HAS_NUL_BYTES
        if self.utf8_ok:
            return "utf-8", None
        if self.cp1252_ok and self.marked is None:
            return "cp1252", None
        return None, NOT_TEXT


def inspect_file(stream: IO[bytes]) -> FileFacts:
    """Checksum, size, encoding and columns of a seekable binary stream, rewound afterwards."""
    stream.seek(0)
    digest = hashlib.sha256()
    size = 0
    head = b""
    check: _EncodingCheck | None = None
    while chunk := stream.read(_CHUNK_BYTES):
        digest.update(chunk)
        size += len(chunk)
        if len(head) < _HEAD_BYTES:
            head += chunk[: _HEAD_BYTES - len(head)]
        if check is None:
            check = _EncodingCheck(_byte_order_mark(chunk)[0])
        check.feed(chunk)
    stream.seek(0)
    check = check or _EncodingCheck(None)
    check.feed(b"", final=True)
    encoding, refusal = check.verdict()
    checksum = digest.hexdigest()
    if encoding is None:
        return FileFacts(checksum, size, None, refusal=refusal)
    bom_bytes = _byte_order_mark(head)[1]
    try:
        layout = layout_of(_first_lines(head[bom_bytes:], encoding, truncated=size > len(head)))
    except ForeignFile as foreign:
        header = _header_as_read(head[bom_bytes:], encoding)
        return FileFacts(checksum, size, encoding, header, (), str(foreign), bom_bytes=bom_bytes)
    return FileFacts(
        checksum,
        size,
        encoding,
        layout.header,
        layout.unknown_columns,
        None,
        layout,
        bom_bytes,
    )


def _decoded_head(head: bytes, encoding: str) -> str:
    decoder = codecs.getincrementaldecoder(encoding)(errors="replace")
    return decoder.decode(head, final=False)


def _first_lines(head: bytes, encoding: str, *, truncated: bool) -> list[list[str]]:
    """The first records of the file (a blank line as `[]`), as Python's csv module reads them."""
    text = _decoded_head(head, encoding)
    reader = csv.reader(io.StringIO(text, newline=""))
    records: list[list[str]] = []
    try:
        for record in reader:
            records.append(record)
            if len(records) > SNIFFED_LINES:
                break
    except csv.Error:
        pass  # a quote that never closes within the head: judge on what came before
    if truncated and len(records) <= SNIFFED_LINES and records:
        records.pop()  # the head may have cut the last record short
    return records


def _header_as_read(head: bytes, encoding: str) -> tuple[str, ...] | None:
    """The first line's names, masked, for a refused file's ledger row."""
    lines = _first_lines(head, encoding, truncated=False)
    if not lines or not lines[0]:
        return None
    return tuple(sanitise_text(name.strip())[:256] for name in lines[0])


class _SourceReader(io.RawIOBase):
    """Reads the stream from `start` (past a byte-order mark), reporting bytes read so far."""

    def __init__(
        self, stream: IO[bytes], start: int, on_read: Callable[[int], None] | None
    ) -> None:
        self._stream = stream
        self._on_read = on_read
        self._done = start
        stream.seek(start)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        self._done += len(data)
        if self._on_read is not None:
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
    if facts.encoding is None or facts.refusal is not None:
        raise UnreadableFile(facts.refusal or "the file is not text")
    if facts.size_bytes <= facts.bom_bytes:
        return  # empty, or nothing but a byte-order mark
    layout = facts.layout
    malformed: dict[int, tuple[str, int]] = {}

    def keep_malformed(row: pacsv.InvalidRow) -> str:
        if row.number is None:  # pyarrow numbers rows when it reads serially, as here
            raise UnreadableFile("the CSV reader could not number a malformed line")
        malformed[row.number] = (row.text, row.actual_columns)
        return "skip"

    source = io.BufferedReader(
        _SourceReader(stream, facts.bom_bytes, on_progress), buffer_size=1 << 16
    )
    first_row = 2 if facts.has_header else 1
    names = [f"column_{index}" for index in range(layout.field_count)]
    try:
        reader = pacsv.open_csv(
            source,
            read_options=pacsv.ReadOptions(
                column_names=names,
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
                column_types={name: pa.string() for name in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        numbering = _Numbering(row=first_row, line=first_row, layout=layout)
        for batch in reader:
            yield numbering.block_of(batch, malformed)
        if malformed:  # rows pyarrow numbered past the last block: keep them, in order
            yield Block(_export_columns(_empty_rows(names), layout), numbering.leftovers(malformed))
    except pa.ArrowInvalid as error:
        if facts.has_header and str(error).startswith("Could not skip initial"):
            return  # the header is the whole file: it has no line break to skip past
        raise UnreadableFile(_parse_error_reason(error, block_bytes)) from None


def _empty_rows(names: list[str]) -> pa.Table:
    return pa.table(
        {
            **{name: pa.array([], pa.string()) for name in names},
            "line_number": pa.array([], pa.int64()),
        }
    )


def _export_columns(table: pa.Table, layout: ColumnLayout) -> pa.Table:
    """The seven export columns (absent optional ones as empty strings) and `line_number`."""
    count = table.num_rows
    columns: dict[str, pa.Array | pa.ChunkedArray] = {}
    for name, position in zip(COLUMNS, layout.positions, strict=True):
        if position is None:
            columns[name] = pa.array([""] * count, pa.string())
        else:
            columns[name] = table.column(position)
    columns["line_number"] = table.column("line_number")
    rows = pa.table(columns)
    if layout.absent:
        rows = rows.replace_schema_metadata({ABSENT_COLUMNS_KEY: ",".join(layout.absent)})
    return rows


def _parse_error_reason(error: pa.ArrowInvalid, block_bytes: int) -> str:
    message = str(error)
    if "straddling" in message or "block" in message:
        return f"a line is longer than {block_bytes >> 20} MiB"
    if message.startswith("Empty CSV file"):
        return "the file is empty"
    return "the CSV cannot be read: " + sanitise_text(message)[:300]


@dataclass(slots=True)
class _Numbering:
    """Maps pyarrow's row numbers (malformed rows included) to physical line numbers."""

    row: int
    line: int
    layout: ColumnLayout

    def block_of(self, batch: pa.RecordBatch, malformed: dict[int, tuple[str, int]]) -> Block:
        spans = _embedded_line_breaks(batch) + 1
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
        blank = _blank(batch)
        if blank is not None:
            table = table.filter(pc.invert(blank))
        return Block(_export_columns(table, self.layout), out)

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
                out.append(MalformedLine(self.line, text, field_count, self.layout.field_count))
            self.row += 1
            self.line += 1 + len(_LINE_BREAK.findall(text))


def _blank(batch: pa.RecordBatch) -> pa.Array | None:
    """Which rows are blank lines (pyarrow reads one as all-empty fields); None when none is,
    as the first column tells in one pass in nearly every block."""
    if batch.num_columns == 0 or not pc.any(pc.equal(pc.binary_length(batch.column(0)), 0)).as_py():
        return None
    filled = [pc.greater(pc.binary_length(column), 0) for column in batch.columns]
    mask = filled[0]
    for column_filled in filled[1:]:
        mask = pc.or_(mask, column_filled)
    return pc.invert(mask)


def _embedded_line_breaks(batch: pa.RecordBatch) -> np.ndarray[tuple[int], np.dtype[np.int64]]:
    """How many line breaks each row's values hold (CRLF, LF or a lone CR, as pyarrow splits
    lines). Only the columns whose bytes hold a CR or LF at all are counted row by row."""
    total = np.zeros(batch.num_rows, dtype=np.int64)
    for column in batch.columns:
        if _holds_line_break_bytes(column):
            counts = pc.count_substring_regex(column, _LINE_BREAK_PATTERN)
            total += counts.to_numpy(zero_copy_only=False)
    return total


def _holds_line_break_bytes(column: pa.Array) -> bool:
    """Whether a string column's character data holds a CR or LF byte (UTF-8 and the
    encodings pyarrow transcodes to it never use those bytes inside another character)."""
    data = column.buffers()[2]
    if data is None or data.size == 0:
        return False
    view = np.frombuffer(data, dtype=np.uint8)
    return bool(np.any(view == 0x0A) or np.any(view == 0x0D))
