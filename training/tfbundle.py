"""Read a TensorFlow checkpoint (tensor bundle: ``<prefix>.index`` + ``<prefix>.data-*``) without TensorFlow.

The index is a LevelDB-format sorted table whose keys are variable names and whose values are
``BundleEntryProto`` messages (dtype, shape, shard, offset, size). Only what musicnn's checkpoints use is
supported: uncompressed blocks, unsliced float32/int32/int64 tensors. TensorFlow itself never enters the
training extra: it would pull in gigabytes for the few hundred lines a one-off conversion needs.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

_MAGIC = 0xDB4775248B80FB57
_DTYPES = {1: np.float32, 3: np.int32, 9: np.int64}  # TF DataType enum -> numpy


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """A protobuf message's (field number, value) pairs: varints as int, length-delimited as bytes."""
    out, pos = [], 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos : pos + n], pos + n
        elif wire == 5:
            value, pos = struct.unpack_from("<I", buf, pos)[0], pos + 4
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", buf, pos)[0], pos + 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")
        out.append((number, value))
    return out


def _block(data: bytes, handle: tuple[int, int]) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of one table block (prefix-compressed keys, restart array at the end)."""
    offset, size = handle
    if data[offset + size] != 0:
        raise ValueError("compressed checkpoint index blocks are not supported")
    block = data[offset : offset + size]
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 * (restarts + 1)
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + length]))
        pos += length
    return entries


def _handle(buf: bytes, pos: int = 0) -> tuple[tuple[int, int], int]:
    offset, pos = _varint(buf, pos)
    size, pos = _varint(buf, pos)
    return (offset, size), pos


def read_checkpoint(prefix: str | Path) -> dict[str, np.ndarray]:
    """Every variable of the checkpoint at ``prefix`` (the path without ``.index``), by name."""
    prefix = str(prefix)
    index = Path(prefix + ".index").read_bytes()
    if struct.unpack_from("<Q", index, len(index) - 8)[0] != _MAGIC:
        raise ValueError(f"{prefix}.index is not a TensorFlow checkpoint index")
    footer = index[-48:]
    _, pos = _handle(footer)  # the metaindex block: unused (no filters)
    index_handle, _ = _handle(footer, pos)
    entries = [e for _, h in _block(index, index_handle) for e in _block(index, _handle(h)[0])]
    header = dict(_fields(entries[0][1])) if entries and entries[0][0] == b"" else {}
    shards = {}
    out = {}
    for key, value in entries:
        if key == b"":
            continue
        f = _fields(value)
        fields = dict(f)
        dtype = _DTYPES.get(fields.get(1, 0))
        if dtype is None:
            raise ValueError(f"{key.decode()}: unsupported dtype {fields.get(1)}")
        if 7 in fields:
            raise ValueError(f"{key.decode()}: sliced variables are not supported")
        shape = [dict(_fields(d)).get(1, 0) for n, d in _fields(fields.get(2, b"")) if n == 2]
        shard = fields.get(3, 0)
        if shard not in shards:
            shards[shard] = Path(f"{prefix}.data-{shard:05d}-of-{header.get(1, 1):05d}").read_bytes()
        start, size = fields.get(4, 0), fields.get(5, 0)
        raw = shards[shard][start : start + size]
        out[key.decode()] = np.frombuffer(raw, dtype).reshape(shape).copy()
    return out
