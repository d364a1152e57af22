"""How records and arrays travel between the checker and a child process: framed messages.

One message (a *frame*) is

    8 bytes   big-endian length of the rest of the frame
    4 bytes   big-endian length of the record, then the record: a JSON object, UTF-8
    for each array the record carries ("arrays": count):
        8 bytes  length, then one .npy file's bytes (np.save, allow_pickle=False)

The checker sends the child one frame on its stdin (the plan and the inputs); the child sends
its frames back on a pipe of its own, never on its stdout or stderr, which the submission may
write to. A child runs a student's code, so what comes back is treated as hostile: every .npy
header is checked *before* ``np.load(..., allow_pickle=False)`` reads the data -- plain numbers
only, at most MAX_ELEMENTS entries, exactly as many bytes as the header says -- so a frame can
neither run code in the checker nor make it allocate much. Anything malformed raises
ChannelError, and the judge turns it into the status ``error``.
"""
import io
import json

import numpy as np

__all__ = ["encode", "decode_all", "decode_one", "ChannelError", "EXIT_PIPE_LOST", "MAX_ELEMENTS"]

MAX_FRAME_BYTES = 8 * 2**20
MAX_RECORD_BYTES = 2**20
MAX_ELEMENTS = 2**20
PLAIN_NUMBER_KINDS = "biuf"  # bool, signed and unsigned integers, floats
EXIT_PIPE_LOST = 70  # a child's exit status when its answer pipe was closed or replaced


class ChannelError(ValueError):
    """A frame that does not follow the format above."""


def encode(record, arrays=()):
    """One frame holding the JSON-able dict ``record`` and the arrays, in order."""
    arrays = list(arrays)
    text = json.dumps(dict(record, arrays=len(arrays))).encode("utf-8")
    parts = [len(text).to_bytes(4, "big"), text]
    for array in arrays:
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(array), allow_pickle=False)
        blob = buffer.getvalue()
        parts += [len(blob).to_bytes(8, "big"), blob]
    body = b"".join(parts)
    return len(body).to_bytes(8, "big") + body


def _read_array(blob):
    """An .npy blob -> array, after checking its header (see the module docstring)."""
    stream = io.BytesIO(blob)
    try:
        version = np.lib.format.read_magic(stream)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(stream)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(stream)
        else:
            raise ChannelError(f"unknown .npy version {version}")
    except ChannelError:
        raise
    except Exception as exc:  # a malformed header: numpy raises ValueError, EOFError, ...
        raise ChannelError(f"unreadable .npy header ({type(exc).__name__})") from None
    if dtype.hasobject or dtype.fields is not None or dtype.kind not in PLAIN_NUMBER_KINDS:
        raise ChannelError(f"an array of {dtype}: only plain numbers may be sent")
    count = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    if count > MAX_ELEMENTS or count < 0:
        raise ChannelError(f"an array of shape {shape}: more than {MAX_ELEMENTS} entries")
    if len(blob) - stream.tell() != count * dtype.itemsize:
        raise ChannelError(f"an array of shape {shape} and dtype {dtype} with "
                           f"{len(blob) - stream.tell()} bytes of data")
    stream.seek(0)
    try:
        array = np.load(stream, allow_pickle=False)
    except Exception as exc:
        raise ChannelError(f"unreadable array ({type(exc).__name__})") from None
    if array.shape != tuple(shape) or array.dtype != dtype:
        raise ChannelError("an array that does not match its own header")
    return array


def _decode_body(body):
    if len(body) < 4:
        raise ChannelError("a frame shorter than its header")
    record_size = int.from_bytes(body[:4], "big")
    if record_size > min(MAX_RECORD_BYTES, len(body) - 4):
        raise ChannelError(f"a record of {record_size} bytes in a frame of {len(body)}")
    try:
        record = json.loads(body[4:4 + record_size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ChannelError("a record that is not valid JSON") from None
    if not isinstance(record, dict) or not isinstance(record.get("arrays"), int) \
            or isinstance(record.get("arrays"), bool) or not 0 <= record["arrays"] <= 1000:
        raise ChannelError("a record that is not an object with a count of arrays")
    arrays, offset = [], 4 + record_size
    for _ in range(record["arrays"]):
        if offset + 8 > len(body):
            raise ChannelError("a frame that ends inside an array's length")
        size = int.from_bytes(body[offset:offset + 8], "big")
        if size > len(body) - offset - 8:
            raise ChannelError("a frame that ends inside an array")
        arrays.append(_read_array(body[offset + 8:offset + 8 + size]))
        offset += 8 + size
    if offset != len(body):
        raise ChannelError(f"{len(body) - offset} stray bytes at the end of a frame")
    return record, arrays


def decode_all(data):
    """Every complete frame in ``data``, in order: (messages, problem).

    messages: [(record dict, [arrays])]; problem: None, or the reason decoding stopped (a
    malformed frame, or bytes left over -- a frame cut off when the child was stopped).
    """
    messages, offset = [], 0
    while offset < len(data):
        if offset + 8 > len(data):
            return messages, "the data ends inside a frame's length"
        size = int.from_bytes(data[offset:offset + 8], "big")
        if size > MAX_FRAME_BYTES:
            return messages, f"a frame of {size} bytes (at most {MAX_FRAME_BYTES})"
        if offset + 8 + size > len(data):
            return messages, "the data ends inside a frame"
        try:
            messages.append(_decode_body(data[offset + 8:offset + 8 + size]))
        except ChannelError as exc:
            return messages, str(exc)
        offset += 8 + size
    return messages, None


def decode_one(data):
    """Exactly one frame (the child reading its plan): (record, arrays), else ChannelError."""
    messages, problem = decode_all(data)
    if problem or len(messages) != 1:
        raise ChannelError(problem or f"expected one frame, got {len(messages)}")
    return messages[0]
