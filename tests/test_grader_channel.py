"""The checker's own defences, without a child process: what it reads from a child (channel),
how it words text a submission controls (clean, the gradebook's cells), how it parses its
flags. A hostile child can send anything; each malformed kind must be refused, not loaded."""
import io
import json

import numpy as np
import pytest

from tinyadv.grader import channel, judge, report
from tinyadv.grader.cli import parse_memory


def frame(record_bytes, blobs=()):
    body = len(record_bytes).to_bytes(4, "big") + record_bytes
    for blob in blobs:
        body += len(blob).to_bytes(8, "big") + blob
    return len(body).to_bytes(8, "big") + body


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=False)
    return buffer.getvalue()


def test_frames_round_trip():
    arrays = [np.arange(6.0).reshape(2, 3), np.array(1.5), np.array([1, 2], dtype=np.int64)]
    data = channel.encode({"kind": "x", "n": 3}, arrays) + channel.encode({"kind": "done"})
    messages, problem = channel.decode_all(data)
    assert problem is None and [m[0]["kind"] for m in messages] == ["x", "done"]
    for sent, got in zip(arrays, messages[0][1]):
        assert got.dtype == sent.dtype and np.array_equal(got, sent)


def object_npy():
    """An .npy blob of dtype object: its data would be a pickle, which must never be loaded."""
    buffer = io.BytesIO()
    header = np.lib.format.header_data_from_array_1_0(np.array([None], dtype=object))
    np.lib.format.write_array_header_1_0(buffer, header)
    return buffer.getvalue() + b"\x80\x04N."  # pickle of None


def _header_with_shape(blob, shape):
    """An .npy blob whose header claims another shape (padding kept, so it stays parseable)."""
    start = blob.index(b"{")
    end = blob.index(b"}") + 1
    header = blob[start:end].decode().replace(str((3,)), str(shape))
    return blob[:start] + header.encode().ljust(end - start) + blob[end:]


@pytest.mark.parametrize("why, data, words", [
    ("object array (a pickle)", frame(json.dumps({"arrays": 1}).encode(), [object_npy()]),
     "only plain numbers"),
    ("huge shape, tiny data", frame(json.dumps({"arrays": 1}).encode(),
                                    [_header_with_shape(npy(np.zeros(3)), (10**9,))]),
     "more than"),
    ("data shorter than its header says", frame(json.dumps({"arrays": 1}).encode(),
                                                [npy(np.zeros(3))[:-8]]), "bytes of data"),
    ("not an .npy", frame(json.dumps({"arrays": 1}).encode(), [b"\x80\x04pickle"]),
     "unreadable .npy header"),
    ("record not JSON", frame(b"\xff{not json"), "not valid JSON"),
    ("record not an object", frame(b"[1, 2]"), "not an object"),
    ("too many arrays claimed", frame(json.dumps({"arrays": 2}).encode(), [npy(np.zeros(3))]),
     "ends inside"),
    ("a frame of 2**62 bytes", (2**62).to_bytes(8, "big") + b"x", "a frame of"),
    ("cut off", channel.encode({"kind": "done"})[:-3], "ends inside a frame"),
])
def test_malformed_frames_are_refused(why, data, words):
    messages, problem = channel.decode_all(channel.encode({"kind": "first"}) + data)
    assert [m[0]["kind"] for m in messages] == ["first"]  # what came before still counts
    assert problem and words in problem, (why, problem)


def test_clean_keeps_no_control_character_and_cuts():
    text = "ok\x1b[31m red\nnext\tline\x00" + "x" * 1000
    cleaned = judge.clean(text, 40)
    assert "\x1b" not in cleaned and "\n" not in cleaned and "\x00" not in cleaned
    assert cleaned.startswith("ok?[31m red next line?") and cleaned.endswith("...")
    assert len(cleaned) == 43
    assert judge.clean(12345) == ""  # not text: nothing


def test_gradebook_cells_cannot_run_as_spreadsheet_formulas():
    result = judge.FileResult("=HYPERLINK(1).py", functions=[
        judge.FunctionResult("relu_backward", "fail", 0.5, "-1+1 is what you returned")],
        isolation="landlock-7")
    text = report.gradebook_text([result])
    assert text.splitlines()[1] == ("'=HYPERLINK(1).py,relu_backward,fail,5.000e-01,'-1+1 is what "
                                    "you returned,landlock-7")


@pytest.mark.parametrize("text, size", [("2G", 2 * 2**30), ("512M", 512 * 2**20), ("1.5g", 3 * 2**29),
                                        ("300000000", 300000000), ("2GiB", 2 * 2**30), ("64kb", 65536)])
def test_memory_sizes(text, size):
    assert parse_memory(text) == size


@pytest.mark.parametrize("text", ["", "lots", "-1G", "2X", "G"])
def test_bad_memory_sizes(text):
    with pytest.raises(ValueError):
        parse_memory(text)
