"""Tramer et al.'s automated l-inf attack and the authors' variant (tinyadv/lab/tramer.py):
published examples reproduced pixel for pixel, the fast search equal to the brute-force
reference (ties included), the transforms bit-exact against scipy.ndimage, the target rules,
bad input, the committed search table, and an interrupted generation."""
import hashlib
import os

import numpy as np
import pytest
from scipy import ndimage

from tinyadv import data
from tinyadv.lab import tramer


@pytest.fixture(scope="module")
def test_set():
    return tramer.mnist_uint8("test")


@pytest.fixture(scope="module")
def train_set():
    return tramer.mnist_uint8("train")


# ---- the published examples ------------------------------------------------------------

def test_published_examples_reproduced_pixel_for_pixel(test_set, train_set):
    """Source classes with a single allowed target (2, 3 -> 8; 6 -> 0; 8 -> 3) need only
    that class's training images as the pool, which keeps this fast; the full 100 are
    checked by `python -m tinyadv.invariance --verify-tramer`."""
    (x, y), (tx, ty) = test_set, train_set
    published = np.load(os.path.join(data.TRAMER_DIR, "linf/automated_eps03.npy"))
    indices = np.load(os.path.join(data.TRAMER_DIR, "indexs.npy"))
    picked = [p for p, i in enumerate(indices) if len(tramer.TRAMER_TARGETS[y[i]]) == 1][:3]
    assert len(picked) == 3
    for p in picked:
        i = indices[p]
        (target,) = tramer.TRAMER_TARGETS[y[i]]
        pool = ty == target
        x_adv, got = tramer.tramer_attack(x[i:i + 1].reshape(1, 28, 28), y[i:i + 1], tx[pool],
                                          ty[pool], eps=0.3, variant="tramer")
        assert x_adv.shape == (1, 28, 28) and x_adv.dtype == np.float32
        assert got.tolist() == [target]
        np.testing.assert_array_equal(x_adv[0], published[p])


# ---- the transforms ----------------------------------------------------------------------

def test_copies_are_bit_exact_against_scipy(test_set):
    x, _ = test_set
    fast = tramer.transform_copies(x[[0, 7, 1234]])
    for row, i in enumerate([0, 7, 1234]):
        np.testing.assert_array_equal(fast[row], tramer.transform_copies_reference(x[i]))
    tx, ty, r = tramer.GRID[123]  # the grid order: itertools.product(tx, ty, r)
    expected = ndimage.shift(ndimage.rotate(x[7].reshape(28, 28), r, reshape=False), (tx, ty))
    np.testing.assert_array_equal(fast[1, 123], expected.reshape(784))


def test_scipy_fallback_gives_the_same_copies(test_set, monkeypatch):
    """With the guard widened to nearly everything, most rotations and shifts go through
    the scipy fallback: the copies must not change."""
    x, _ = test_set
    before = tramer.transform_copies(x[3:4])
    monkeypatch.setattr(tramer, "ROUNDING_GUARD", 0.45)
    np.testing.assert_array_equal(tramer.transform_copies(x[3:4]), before)


def test_rounding_flags_values_near_a_half():
    values = np.array([0.2, 0.4999999, 0.5000001, 254.6, 255.7, -0.4, 3.5])
    rounded, unsure = tramer._round_like_scipy(values.copy())
    assert rounded.tolist() == [0, 0, 1, 255, 255, 0, 4]
    assert unsure.tolist() == [False, True, True, False, False, False, True]


# ---- the search: fast == brute force, ties included ---------------------------------------

def assert_same_search(x, y, ref_x, ref_y, classes=None):
    fast = tramer.nearest_transformed(x, y, ref_x, ref_y, classes=classes)
    slow = tramer.nearest_transformed_reference(x, y, ref_x, ref_y, classes=classes)
    for name, a, b in zip(("index", "copy", "dist2"), fast, slow):
        np.testing.assert_array_equal(a, b, err_msg=name)
    return fast


def test_fast_search_equals_brute_force(test_set):
    x, y = test_set
    rng = np.random.default_rng(0)
    pool = np.sort(rng.choice(np.arange(100, 10000), 400, replace=False))
    queries = rng.choice(100, 3, replace=False)
    assert_same_search(x[queries], y[queries], x[pool], y[pool])


def test_fast_search_breaks_ties_like_brute_force(test_set):
    """Constructed ties: the same image twice in the pool (the first row wins); two pool
    images each equal to a copy of the query (the earlier copy wins, whatever the rows); a
    blank query whose 775 copies are all equal (copy 0 wins)."""
    x, y = test_set
    query, label = x[0], y[0]  # a 7
    copies = tramer.transform_copies_reference(query)
    rng = np.random.default_rng(1)
    rows = rng.choice(np.arange(100, 10000), 150, replace=False)
    pool, pool_y = x[rows].copy(), y[rows].copy()
    pool[10], pool_y[10] = copies[600], 3  # distance 0 at copy 600, row 10
    pool[40], pool_y[40] = copies[200], 3  # distance 0 at copy 200, row 40: wins
    pool[20], pool_y[20] = pool[30], pool_y[30] = x[5], 5  # duplicates: row 20 must win
    blank = np.zeros((1, 784), dtype=np.uint8)
    xs = np.vstack([query[None], x[5][None] // 2 * 2, blank])
    ys = np.array([label, 4, 2])
    index, copy, dist2 = assert_same_search(xs, ys, pool, pool_y)
    assert (index[0, 3], copy[0, 3], dist2[0, 3]) == (40, 200, 0)
    assert copy[2].max() == 0  # all copies of a blank image tie: the first copy


def test_fast_search_with_restricted_classes(test_set):
    x, y = test_set
    pool = np.arange(200, 700)
    queries = np.array([1, 2, 3])
    classes = tramer.searched_classes(y[queries], "tramer")
    index, _, _ = assert_same_search(x[queries], y[queries], x[pool], y[pool], classes=classes)
    assert np.all((index >= 0) == classes)


# ---- the l-inf step and the two target rules ----------------------------------------------

def test_linf_step_by_hand():
    x = np.array([[0, 100, 100, 200, 10, 250]], dtype=np.uint8)
    n = np.array([[50, 150, 0, 200, 255, 100]], dtype=np.uint8)
    # eps 0.3: E = 76.5. 0 stays 0 (x = 0, |n - x| <= E); 100 -> 150 (within E); 100 -> 23.5
    # (E towards 0); 200 stays; 10 -> 86.5 (E towards 255); 250 -> 173.5.
    out = tramer.linf_step(x, n, 0.3)
    assert out.dtype == np.float32
    assert out.tolist() == [[0.0, 150.0, 23.5, 200.0, 86.5, 173.5]]


def test_authors_rank_is_the_column_maximum_as_written():
    """One removed pixel; the second example also adds ink everywhere else. The elementwise
    rule (Tramer's) sees one removed pixel in both; the authors' column maximum sees the
    added ink in the 27 columns without a removal and ranks the second worse (1 vs 28)."""
    x = np.zeros((1, 784), dtype=np.uint8)
    x[0, 0] = 255
    removes = np.zeros((1, 784), dtype=np.float32)
    adds = np.full((1, 784), 255, dtype=np.float32)
    adds[0, 0] = 0
    assert tramer.tramer_removed_ink(x, removes)[0] == tramer.tramer_removed_ink(x, adds)[0] == 1.0
    assert tramer.authors_rank(x, removes)[0] == 1.0
    assert tramer.authors_rank(x, adds)[0] == 28.0
    literal = [np.sum(np.abs(np.max(x.reshape(28, 28) / 255. - a.reshape(28, 28) / 255., 0)))
               for a in (removes, adds)]
    assert literal == [1.0, 28.0]


def test_targets_follow_each_rule(test_set):
    """examples_from_neighbours picks the least rank (Tramer: among the hand-picked classes)."""
    x, y = test_set
    q = np.arange(6)
    pool = np.arange(1000, 1400)
    index, copy, _ = tramer.nearest_transformed(x[q], y[q], x[pool], y[pool])
    for variant, rank in (("authors", tramer.authors_rank), ("tramer", tramer.tramer_removed_ink)):
        x_adv, target = tramer.examples_from_neighbours(x[q], y[q], x[pool], index, copy, 0.3, variant)
        for i in q:
            allowed = [k for k in range(10) if k != y[i]
                       and (variant == "authors" or k in tramer.TRAMER_TARGETS[y[i]])]
            ranks = []
            for k in allowed:
                nb = x[pool][index[i, k]][None]
                if variant == "tramer":
                    nb = tramer.inverse_transform(nb, copy[i, k:k + 1])
                ranks.append(rank(x[i:i + 1], tramer.linf_step(x[i:i + 1], nb, 0.3))[0])
            assert target[i] == allowed[int(np.argmin(ranks))]
            assert np.abs(x_adv[i] - x[i].astype(np.float32)).max() <= 76.5


# ---- bad input ----------------------------------------------------------------------------

@pytest.mark.parametrize("change, error, words", [
    (lambda a: dict(a, x=a["x"].astype(np.float32) / 255), ValueError, "x: .*0..255 scale"),
    (lambda a: dict(a, x=a["x"].astype(np.float32) + 0.5), ValueError, "x: .*whole numbers"),
    (lambda a: dict(a, x=a["x"].astype(np.int16) + 300), ValueError, "x: .*0..255"),
    (lambda a: dict(a, x=a["x"][:, :700]), ValueError, r"x: expected shape \(N, 28, 28\)"),
    (lambda a: dict(a, x=a["x"].astype(bool)), TypeError, "x: expected uint8"),
    (lambda a: dict(a, x=a["x"].tolist()), TypeError, "x: expected a numpy array"),
    (lambda a: dict(a, y=a["y"] + 10), ValueError, "y: expected labels in 0..9"),
    (lambda a: dict(a, y=a["y"][:1]), ValueError, r"y: expected shape \(2,\)"),
    (lambda a: dict(a, y=a["y"].astype(float)), TypeError, "y: expected an integer"),
    (lambda a: dict(a, eps=0.0), ValueError, r"eps: expected a number in \(0, 1\]"),
    (lambda a: dict(a, eps=1.5), ValueError, r"eps: expected a number in \(0, 1\]"),
    (lambda a: dict(a, eps="0.3"), TypeError, "eps"),
    (lambda a: dict(a, variant="tramer2020"), ValueError, "variant: expected one of"),
    (lambda a: dict(a, ref_y=np.where(a["ref_y"] == 8, 1, a["ref_y"])), ValueError,
     r"ref_y: the reference pool has no image of class\(es\) \[8\]"),
])
def test_bad_input_is_rejected(test_set, change, error, words):
    x, y = test_set
    args = dict(x=x[[1, 3]], y=y[[1, 3]], ref_x=x[100:300], ref_y=y[100:300], eps=0.3,
                variant="authors")  # a 2 and a 1
    with pytest.raises(error, match=words):
        tramer.tramer_attack(**change(args))


def test_load_attack_set_rejects_bad_arguments():
    with pytest.raises(ValueError, match="variant"):
        tramer.load_attack_set("nearest", "test")
    with pytest.raises(ValueError, match="split"):
        tramer.load_attack_set("authors", "validation")
    with pytest.raises(ValueError, match="limit"):
        tramer.load_attack_set("authors", "test", limit=0)


# ---- whole splits: resumable, never half-written --------------------------------------------

def test_interrupted_generation_resumes_and_leaves_no_partial_file(tmp_path, monkeypatch):
    """Chunks of 2 images of a 300-image stand-in for the test split (the pool too)."""
    small = tuple(a[:300] for a in tramer.mnist_uint8("test"))
    monkeypatch.setattr(tramer, "mnist_uint8", lambda split: small)
    monkeypatch.setattr(tramer, "CHUNK_IMAGES", 2)
    real = tramer.nearest_transformed
    calls = []

    def interrupted_on_the_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(tramer, "nearest_transformed", interrupted_on_the_second_chunk)
    with pytest.raises(KeyboardInterrupt):
        tramer.generate_search_table("authors", "test", limit=5, cache_dir=str(tmp_path), log=lambda s: None)
    (folder,) = tmp_path.iterdir()
    assert sorted(os.listdir(folder)) == ["chunk_00000_00002.npz"]

    # a Ctrl-C while a chunk is being written: no file, no temporary left behind
    real_savez = np.savez

    def interrupted_write(f, **arrays):
        real_savez(f, **arrays)
        raise KeyboardInterrupt

    monkeypatch.setattr(tramer, "nearest_transformed", real)
    monkeypatch.setattr(np, "savez", interrupted_write)
    with pytest.raises(KeyboardInterrupt):
        tramer.generate_search_table("authors", "test", limit=5, cache_dir=str(tmp_path), log=lambda s: None)
    assert sorted(os.listdir(folder)) == ["chunk_00000_00002.npz"]
    monkeypatch.setattr(np, "savez", real_savez)

    calls.clear()
    monkeypatch.setattr(tramer, "nearest_transformed", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    index, copy, dist2 = tramer.generate_search_table("authors", "test", limit=5,
                                                      cache_dir=str(tmp_path), log=lambda s: None)
    assert len(calls) == 2  # chunks 2-3 and 4 only: chunk 0-1 was reused
    assert index.shape == (5, 10)
    x, y = small
    again = real(x[:2], y[:2], x, y)  # the reused chunk holds the right answer
    np.testing.assert_array_equal(again[0], index[:2])
    np.testing.assert_array_equal(again[1], copy[:2])


def test_a_second_run_from_the_end_shares_the_work(tmp_path, monkeypatch):
    """Two runs, one from each end: each skips what the other wrote, and the time left counts
    the chunks both wrote (a run alone would think it had all the work ahead)."""
    small = tuple(a[:300] for a in tramer.mnist_uint8("test"))
    monkeypatch.setattr(tramer, "mnist_uint8", lambda split: small)
    monkeypatch.setattr(tramer, "CHUNK_IMAGES", 2)
    x, y = small
    real = tramer.nearest_transformed
    key = tramer.search_key("authors", "test")
    first_run_chunk = os.path.join(tmp_path, f"tramer_authors_test_{key[:16]}", "chunk_00000_00002.npz")
    calls, lines = [], []

    def meanwhile_the_first_run_writes_chunk_0(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            table = real(x[:2], y[:2], x, y)
            tramer.save_npz_atomic(first_run_chunk, tramer._table_arrays(table, key))
        return real(*args, **kwargs)

    monkeypatch.setattr(tramer, "nearest_transformed", meanwhile_the_first_run_writes_chunk_0)
    index, copy, dist2 = tramer.generate_search_table("authors", "test", limit=6, cache_dir=str(tmp_path),
                                                      log=lines.append, from_end=True)
    assert len(calls) == 2  # chunks 4-5 and 2-3; 0-1 came from the other run
    assert "4 of 6 written" in lines[1] and "6 of 6 written" in lines[2], lines
    again = real(x[:6], y[:6], x, y)
    for name, a, b in zip(("index", "copy", "dist2"), again, (index, copy, dist2)):
        np.testing.assert_array_equal(a, b, err_msg=name)


# ---- the committed search tables of the authors' variant (both splits) -------------------------

@pytest.mark.parametrize("split, rows", [("test", [0, 4321, 9999]), ("train", [0, 31415, 59999])])
def test_committed_table_checksum_and_a_sample_regenerates(split, rows, test_set, train_set):
    """data/ holds tinyadv's own search result for the authors' variant on each split: it
    must match its checksum, and rows searched again now must come out identical."""
    path = tramer.committed_table_path("authors", split)
    with open(path, "rb") as f:
        assert hashlib.sha256(f.read()).hexdigest() == tramer.COMMITTED[("authors", split)][1]
    index, copy, dist2 = tramer.load_search_table("authors", split, log=lambda line: None)
    x, y = test_set if split == "test" else train_set
    assert index.shape == copy.shape == dist2.shape == (len(x), 10)
    rows = np.array(rows)
    again = tramer.nearest_transformed(x[rows], y[rows], x, y)
    for name, a, b in zip(("index", "copy", "dist2"), again, (index, copy, dist2)):
        np.testing.assert_array_equal(a, b[rows], err_msg=name)


def test_load_attack_set_rebuilds_the_examples(test_set):
    x, y = test_set
    x_inv, y_target, y_source = tramer.load_attack_set("authors", "test", limit=50, log=lambda line: None)
    assert x_inv.shape == (50, 784) and x_inv.dtype == np.float32
    assert np.array_equal(y_source, y[:50]) and np.all(y_target != y_source)
    assert x_inv.min() >= 0 and x_inv.max() <= 255
    assert np.abs(x_inv - x[:50]).max() <= 76.5


def test_a_damaged_committed_table_is_refused(tmp_path, monkeypatch):
    damaged = tmp_path / "table.npz"
    with open(tramer.committed_table_path("authors", "test"), "rb") as f:
        payload = bytearray(f.read())
    payload[len(payload) // 2] ^= 0xFF
    damaged.write_bytes(bytes(payload))
    expected = tramer.COMMITTED[("authors", "test")][1]
    monkeypatch.setitem(tramer.COMMITTED, ("authors", "test"), (str(damaged), expected))
    with pytest.raises(data.DataFileError, match="checksum mismatch"):
        tramer.load_search_table("authors", "test", log=lambda line: None)
