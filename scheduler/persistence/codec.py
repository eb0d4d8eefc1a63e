"""Byte formats of the journal and the snapshot body: framed, checksummed, versioned records.

A frame is ``u32 length | u32 crc32 | payload`` (little-endian). The checksum covers the length
bytes and the payload, so a flipped bit in either is caught. A journal record's payload is the
msgpack array ``[version, seq, change]``; the version is read before the change is decoded, so a
record written by a newer scheduler is reported as such instead of as garbage.

Torn-tail policy (the only damage ever repaired): a write interrupted by a crash or power loss
can leave the LAST record of the LAST segment incomplete: fewer than 8 header bytes, a length
that runs past the end of the file, or (a file system that extended the file before the data
reached the disk) nothing but zero bytes from the record's start to the end. Such a tail was
never acknowledged, because acknowledgement waits for the fsync of the whole record. Anything
else - a checksum failure on a complete record, a length that runs past the end while a valid
record follows it, an undecodable payload - is corruption: the caller stops and names the file
and byte offset, because silently dropping acknowledged records is worse than not starting.
"""

from __future__ import annotations

import mmap
import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import msgspec

from scheduler.errors import CorruptState
from scheduler.model import Change

RECORD_VERSION = 1
FRAME_HEADER = struct.Struct("<II")
MAX_RECORD = 64 * 1024 * 1024  # far above any accepted request body; larger means garbage
MAX_FRAME = 0xFFFFFFFF


class Envelope(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """One journal record: format version, sequence number, change."""

    v: int
    seq: int
    change: Change


class _Head(msgspec.Struct, array_like=True, frozen=True, gc=False):
    v: int
    seq: int
    change: msgspec.Raw  # decoded only once the version is known to be ours


class Frame(NamedTuple):
    offset: int
    payload: memoryview


class Scan(NamedTuple):
    """The complete frames of a file, and where a torn tail starts (None when there is none)."""

    frames: list[Frame]
    torn_at: int | None


class RecordCodec:
    """Encodes and decodes journal records. One instance per thread (encoders keep a buffer)."""

    def __init__(self) -> None:
        self._encoder = msgspec.msgpack.Encoder()
        self._head = msgspec.msgpack.Decoder(_Head)
        self._change: msgspec.msgpack.Decoder[Change] = msgspec.msgpack.Decoder(Change)

    def encode(self, seq: int, change: Change) -> bytes:
        return frame(self._encoder.encode(Envelope(RECORD_VERSION, seq, change)))

    def decode(self, payload: memoryview, path: Path, offset: int) -> tuple[int, Change]:
        """``(seq, change)`` of one record whose checksum has been verified."""
        try:
            head = self._head.decode(payload)
        except msgspec.DecodeError as exc:
            raise CorruptState(f"{path}: byte {offset}: record does not decode: {exc}") from exc
        check_version(head.v, RECORD_VERSION, path, offset, "journal record")
        try:
            return head.seq, self._change.decode(head.change)
        except msgspec.DecodeError as exc:
            raise CorruptState(f"{path}: byte {offset}: record does not decode: {exc}") from exc


def check_version(version: int, current: int, path: Path, offset: int, what: str) -> None:
    if version > current:
        raise CorruptState(
            f"{path}: byte {offset}: {what} format version {version} is newer than this "
            f"scheduler reads ({current}); run the newer scheduler or restore older state"
        )
    if version < 1:
        raise CorruptState(f"{path}: byte {offset}: {what} has invalid format version {version}")


def frame(payload: bytes) -> bytes:
    return frame_header(payload) + payload


def frame_header(payload: bytes) -> bytes:
    """The 8 bytes before ``payload``; write both with ``os.writev`` to skip copying a big one."""
    length = len(payload)
    if length > MAX_FRAME:
        raise ValueError(f"frame of {length} bytes exceeds the format's 4 GiB limit")
    length_bytes = length.to_bytes(4, "little")
    crc = zlib.crc32(payload, zlib.crc32(length_bytes))
    return length_bytes + crc.to_bytes(4, "little")


def scan_frames(
    data: bytes | mmap.mmap,
    path: Path,
    *,
    start: int = 0,
    max_length: int = MAX_RECORD,
    tolerate_torn_tail: bool,
) -> Scan:
    """Split ``data[start:]`` into verified frames; raise CorruptState on damage (module policy).

    Offsets, in frames and in error messages, are positions in the whole file.
    """
    view = memoryview(data)
    size = len(data)
    frames: list[Frame] = []
    offset = start
    while offset < size:
        problem = _frame_problem(view, offset, max_length)
        if problem is None:
            length = FRAME_HEADER.unpack_from(view, offset)[0]
            start = offset + FRAME_HEADER.size
            frames.append(Frame(offset, view[start : start + length]))
            offset = start + length
            continue
        if tolerate_torn_tail and _is_torn_tail(view, offset, problem, max_length):
            return Scan(frames, offset)
        raise CorruptState(f"{path}: byte {offset}: {problem}")
    return Scan(frames, None)


_SHORT_HEADER = "incomplete record header"
_PAST_END = "record runs past the end of the file"
_BAD_CRC = "checksum mismatch"


def _frame_problem(view: memoryview, offset: int, max_length: int) -> str | None:
    size = len(view)
    if size - offset < FRAME_HEADER.size:
        return _SHORT_HEADER
    length, crc = FRAME_HEADER.unpack_from(view, offset)
    if length > max_length:
        return f"record length {length} is larger than any valid record"
    end = offset + FRAME_HEADER.size + length
    if end > size:
        return _PAST_END
    payload = view[offset + FRAME_HEADER.size : end]
    actual = zlib.crc32(payload, zlib.crc32(view[offset : offset + 4]))
    return None if actual == crc else _BAD_CRC


def _is_torn_tail(view: memoryview, offset: int, problem: str, max_length: int) -> bool:
    if not any(view[offset:]):
        return True  # zero-filled: the file grew but the data never reached the disk
    if problem == _SHORT_HEADER:
        return True
    if problem == _PAST_END:
        # A flipped length bit in an older record also "runs past the end"; a complete valid
        # record further on proves that this is not an interrupted final write.
        return not _has_valid_frame_after(view, offset + 1, max_length)
    return False


def _has_valid_frame_after(view: memoryview, start: int, max_length: int) -> bool:
    size = len(view)
    for offset in range(start, size - FRAME_HEADER.size + 1):
        length = FRAME_HEADER.unpack_from(view, offset)[0]
        fits = length <= max_length and offset + FRAME_HEADER.size + length <= size
        if fits and _frame_problem(view, offset, max_length) is None:
            return True
    return False
