"""The label-flipping generator: the fast neighbour search (tinyadv/fast/nearest.py) exact
against the readable float64 one (tinyadv/invariance.py), the eps-step, no self-neighbours,
determinism, and the cache (tinyadv/lab/invariance_cache.py: key, corruption, atomicity)."""
import os

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyadv import invariance as inv
from tinyadv.fast import nearest as fast
from tinyadv.lab import invariance_cache

ROUNDING = 1e-6  # float32: x + clip(n - x, -eps, eps) - x may miss eps by about one ulp


@pytest.fixture(scope="module")
def small(mnist_train, mnist_test):
    """300 training images (the reference set) and 120 test images, drawn with a fixed seed."""
    (X, y), (Xt, yt) = mnist_train, mnist_test
    rng = np.random.default_rng(0)
    a = np.sort(rng.choice(len(X), 300, replace=False))
    b = np.sort(rng.choice(len(Xt), 120, replace=False))
    return X[a], y[a], Xt[b], yt[b]


def assert_exact_neighbours(nb, x, y, ref_x, ref_y, shifts=0, exclude_self=False):
    """The fast search against the readable float64 one (invariance.nearest_by_class)."""
    ref = inv.nearest_by_class(x, y, ref_x, ref_y, shifts, exclude_self)
    found = np.isfinite(ref.dist2)
    np.testing.assert_array_equal(np.isfinite(nb.dist2), found)
    np.testing.assert_array_equal(nb.index[~found], -1)
    rows, cls = np.nonzero(found)
    # The distance it reports is the true minimum (up to float32 GEMM rounding) ...
    np.testing.assert_allclose(nb.dist2[rows, cls], ref.dist2[rows, cls], rtol=1e-5, atol=1e-3)
    # ... and the image it names really is at that minimum, and of the right class.
    chosen = np.empty((len(rows), x.shape[1]))
    for s, (dy, dx) in enumerate(inv.shift_grid(shifts)):
        sel = nb.shift[rows, cls] == s
        chosen[sel] = inv.shift_images(ref_x[nb.index[rows[sel], cls[sel]]], int(dy), int(dx))
    distance = ((x[rows].astype(np.float64) - chosen) ** 2).sum(axis=1)
    np.testing.assert_allclose(distance, ref.dist2[rows, cls], rtol=1e-5, atol=1e-3)
    np.testing.assert_array_equal(ref_y[nb.index[rows, cls]], cls)


def test_the_readable_search_is_a_per_pair_minimum():
    """The readable search against the definition, one (query, reference, shift) at a time."""
    rng = np.random.default_rng(4)
    x = rng.random((5, 784)) * (rng.random((5, 784)) < 0.2)
    y = np.array([0, 1, 2, 0, 1])
    ref_x = np.concatenate([x, rng.random((7, 784))])
    ref_y = np.array([0, 1, 2, 0, 1, 2, 2, 0, 1, 0, 2, 1])
    nb = inv.nearest_by_class(x, y, ref_x, ref_y, shifts=1, num_classes=3)
    grid = inv.shift_grid(1)
    for i in range(len(x)):
        for k in range(3):
            if k == y[i]:
                assert nb.index[i, k] == -1 and nb.dist2[i, k] == np.inf
                continue
            best = min(np.sum((x[i] - inv.shift_images(ref_x[j:j + 1], *map(int, shift))[0]) ** 2)
                       for shift in grid for j in np.flatnonzero(ref_y == k))
            assert nb.dist2[i, k] == pytest.approx(best, rel=1e-12, abs=1e-9)
            d = np.sum((x[i] - inv.shift_images(ref_x[nb.index[i, k]:nb.index[i, k] + 1],
                                                *map(int, grid[nb.shift[i, k]]))[0]) ** 2)
            assert d == pytest.approx(best, rel=1e-12, abs=1e-9)


def test_training_set_against_itself_is_exact(small):
    X, y, _, _ = small
    nb = fast.nearest_by_class(X, y, X, y, exclude_self=True, chunk_size=64)  # symmetric path
    assert_exact_neighbours(nb, X, y, X, y, exclude_self=True)
    assert not np.any(nb.index == np.arange(len(X))[:, None])  # never its own neighbour


def test_test_set_against_training_set_is_exact(small):
    X, y, Xt, yt = small
    assert_exact_neighbours(fast.nearest_by_class(Xt, yt, X, y, chunk_size=50), Xt, yt, X, y)


def test_shifted_search_is_exact(small):
    X, y, Xt, yt = small
    Xt, yt = Xt[:40], yt[:40]
    nb = fast.nearest_by_class(Xt, yt, X, y, shifts=1, chunk_size=16)
    assert_exact_neighbours(nb, Xt, yt, X, y, shifts=1)
    assert np.any(nb.shift > 0)  # some digit really is closer to a shifted neighbour
    unshifted = fast.nearest_by_class(Xt, yt, X, y)
    assert np.all(nb.dist2 <= unshifted.dist2 + 1e-3)  # more candidates never hurt


def test_symmetric_and_general_search_agree(small):
    """The training-set shortcut (one product for both directions) against the plain loop."""
    X, y, _, _ = small
    sym = fast.nearest_by_class(X, y, X, y, exclude_self=True)
    plain = fast._search(X, y, X, y, 0, True, 10, 64)
    np.testing.assert_allclose(sym.dist2, plain.dist2, rtol=1e-5, atol=1e-3)


def test_exclude_self_masks_the_own_index(small):
    """Give the queries other labels than the references, so each image's own copy sits in
    a class that is searched: only exclude_self keeps it from being its own neighbour."""
    X, ref_y, _, _ = small
    X, ref_y = X[:100], ref_y[:100]
    y = (ref_y + 1) % 10
    rows = np.arange(len(X))
    with_self = fast.nearest_by_class(X, y, X, ref_y)
    np.testing.assert_array_equal(with_self.index[rows, ref_y], rows)  # distance 0: itself
    without = fast.nearest_by_class(X, y, X, ref_y, exclude_self=True)
    assert not np.any(without.index == rows[:, None])
    assert_exact_neighbours(without, X, y, X, ref_y, exclude_self=True)
    with_shifts = fast.nearest_by_class(X[:40], y[:40], X[:40], ref_y[:40], shifts=1,
                                        exclude_self=True)
    assert not np.any(with_shifts.index == np.arange(40)[:, None])


@settings(max_examples=8, deadline=None)
@given(eps=st.floats(0.0, 1.0), shifts=st.integers(0, 1))
def test_label_flip_bound_range_and_flip(small, eps, shifts):
    X, y, Xt, yt = small
    x_inv, y_flip = inv.label_flip(Xt[:40], yt[:40], X, y, eps, shifts=shifts)
    assert x_inv.dtype == np.float32 and x_inv.shape == (40, 784)
    assert y_flip.dtype == np.int64
    assert np.all(y_flip != yt[:40])
    assert np.max(np.abs(x_inv - Xt[:40])) <= eps + ROUNDING
    assert x_inv.min() >= 0.0 and x_inv.max() <= 1.0


def test_moves_towards_the_chosen_neighbour(small):
    X, y, Xt, yt = small
    Xt, yt = Xt[:60], yt[:60]
    eps = 0.25
    nb = inv.nearest_by_class(Xt, yt, X, y, shifts=1)
    x_inv, y_flip = inv.label_flip(Xt, yt, X, y, eps, shifts=1)
    # the target rule: the other class with the nearest neighbour
    np.testing.assert_array_equal(y_flip, nb.dist2.argmin(axis=1))
    rows = np.arange(len(Xt))
    neighbour = np.stack([inv.shift_images(X[i][None], *map(int, inv.shift_grid(1)[s]))[0]
                          for i, s in zip(nb.index[rows, y_flip], nb.shift[rows, y_flip])])
    assert np.all(y[nb.index[rows, y_flip]] == y_flip)
    step = x_inv - Xt
    # every pixel moves exactly min(eps, distance) in the neighbour's direction
    np.testing.assert_allclose(step, np.clip(neighbour - Xt, -eps, eps), atol=ROUNDING)
    assert np.all(np.minimum(Xt, neighbour) - ROUNDING <= x_inv)
    assert np.all(x_inv <= np.maximum(Xt, neighbour) + ROUNDING)
    # a big enough budget reaches the neighbour itself
    reached = inv.flip_from_neighbours(Xt, yt, X, nb, 1.0, shifts=1)[0]
    np.testing.assert_allclose(reached, neighbour, atol=ROUNDING)
    # and the image really got closer to it
    assert np.all(((x_inv - neighbour) ** 2).sum(1) < ((Xt - neighbour) ** 2).sum(1))


@pytest.mark.parametrize("shifts", [0, 1])
def test_fast_label_flip_gives_the_readable_ones_examples(small, shifts):
    """Training's label_flip (fast search) and the readable one make the same images."""
    X, y, Xt, yt = small
    readable = inv.label_flip(Xt[:50], yt[:50], X, y, 0.3, shifts=shifts)
    quick = fast.label_flip(Xt[:50], yt[:50], X, y, 0.3, shifts=shifts)
    np.testing.assert_array_equal(quick[1], readable[1])
    np.testing.assert_array_equal(quick[0], readable[0])


def test_deterministic_and_inputs_untouched(small):
    X, y, Xt, yt = small
    copies = [a.copy() for a in small]
    a = inv.label_flip(Xt, yt, X, y, 0.3)
    b = inv.label_flip(Xt, yt, X, y, 0.3)
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    for before, after in zip(copies, small):
        np.testing.assert_array_equal(before, after)


def test_eps_zero_changes_no_pixel(small):
    X, y, Xt, yt = small
    x_inv, y_flip = inv.label_flip(Xt, yt, X, y, 0.0)
    np.testing.assert_array_equal(x_inv, Xt)
    assert np.all(y_flip != yt)


def test_shift_images_and_grid():
    img = np.zeros((1, 784), dtype=np.float32)
    img[0, 5 * 28 + 7] = 1.0  # row 5, column 7
    moved = inv.shift_images(img, 2, -3).reshape(28, 28)
    assert moved[7, 4] == 1.0 and moved.sum() == 1.0
    edge = np.zeros((1, 784), dtype=np.float32)
    edge[0, 27] = 1.0  # top-right corner falls off when shifted right
    assert inv.shift_images(edge, 0, 1).sum() == 0.0
    grid = inv.shift_grid(2)
    assert grid.shape == (25, 2) and tuple(grid[0]) == (0, 0)
    assert len({tuple(g) for g in grid}) == 25 and np.abs(grid).max() == 2


@settings(max_examples=30, deadline=None)
@given(rows=st.integers(1, 70), cols=st.integers(1, 9), group=st.integers(1, 20),
       seed=st.integers(0, 10 ** 6))
def test_column_argmax_equals_numpy(rows, cols, group, seed):
    # few distinct values: many ties, where "first occurrence wins" must still hold
    scores = np.random.default_rng(seed).integers(0, 4, size=(rows, cols)).astype(np.float32)
    np.testing.assert_array_equal(fast.column_argmax(scores, group), scores.argmax(axis=0))


def _bad_calls(X, y, Xt, yt):
    y_one_class = np.zeros_like(y)  # no other class to flip to
    nan_x = Xt.copy()
    nan_x[0, 0] = np.nan
    return [
        ("eps", dict(x=Xt, y=yt, ref_x=X, ref_y=y, eps=-0.1)),
        ("eps", dict(x=Xt, y=yt, ref_x=X, ref_y=y, eps=float("nan"))),
        ("x", dict(x=nan_x, y=yt, ref_x=X, ref_y=y, eps=0.1)),
        ("x", dict(x=Xt * 2, y=yt, ref_x=X, ref_y=y, eps=0.1)),
        ("y", dict(x=Xt, y=yt[:-1], ref_x=X, ref_y=y, eps=0.1)),
        ("ref_y", dict(x=Xt, y=yt, ref_x=X, ref_y=y[:-1], eps=0.1)),
        ("y", dict(x=Xt, y=yt + 10, ref_x=X, ref_y=y, eps=0.1)),
        ("shifts", dict(x=Xt, y=yt, ref_x=X, ref_y=y, eps=0.1, shifts=-1)),
        ("shifts", dict(x=Xt, y=yt, ref_x=X, ref_y=y, eps=0.1, shifts=9)),
        ("exclude_self", dict(x=Xt, y=yt, ref_x=X, ref_y=y, eps=0.1, exclude_self=True)),
        ("chunk_size", dict(x=Xt, y=yt, ref_x=X, ref_y=y, eps=0.1, chunk_size=0)),
        ("ref_y", dict(x=Xt, y=np.zeros_like(yt), ref_x=X, ref_y=y_one_class, eps=0.1)),
    ]


def test_bad_input_raises_a_clear_error(small):
    X, y, Xt, yt = small
    for name, kwargs in _bad_calls(X, y, Xt[:20], yt[:20]):
        with pytest.raises(ValueError, match=rf"^{name}:"):
            fast.label_flip(**kwargs)
        if name != "chunk_size":  # the readable search has no chunks
            with pytest.raises(ValueError, match=rf"^{name}:"):
                inv.label_flip(**kwargs)


# The cache, on small stand-in data (the real one runs the same code on all of MNIST).

@pytest.fixture
def counting(monkeypatch):
    """Counts how often the (expensive) search runs."""
    calls = []
    real = invariance_cache.nearest_by_class

    def counted(*args, **kwargs):
        calls.append(kwargs.get("shifts"))
        return real(*args, **kwargs)
    monkeypatch.setattr(invariance_cache, "nearest_by_class", counted)
    return calls


def neighbours(small, tmp_path, shifts=0, log=None):
    X, y, Xt, yt = small
    messages = []
    nb = invariance_cache._cached_neighbours(X, y, Xt, yt, shifts, str(tmp_path),
                                             log=messages.append if log is None else log)
    return nb, messages


def test_cache_is_reused_and_matches(small, tmp_path, counting):
    first, _ = neighbours(small, tmp_path)
    assert len(counting) == 2  # train and test searched
    second, messages = neighbours(small, tmp_path)
    assert len(counting) == 2 and "loaded" in messages[-1]
    for split in ("train", "test"):
        for a, b in zip(first[split], second[split]):
            np.testing.assert_array_equal(a, b)
    assert [f for f in os.listdir(tmp_path) if f.endswith(".tmp")] == []  # nothing half-written


def test_cache_key_depends_on_every_parameter_and_the_data(small):
    X, y, Xt, yt = small
    fp = invariance_cache._fingerprint(X, y, Xt, yt)
    assert invariance_cache.cache_key(0, fp) != invariance_cache.cache_key(1, fp)
    y2 = y.copy()
    y2[0] = (y2[0] + 1) % 10
    X2 = X.copy()
    X2[0, 400] = 0.5 if X2[0, 400] != 0.5 else 0.25
    assert fp != invariance_cache._fingerprint(X, y2, Xt, yt)
    assert fp != invariance_cache._fingerprint(X2, y, Xt, yt)
    assert fp != invariance_cache._fingerprint(X, y, Xt[:-1], yt[:-1])
    again = invariance_cache._fingerprint(X.copy(), y, Xt, yt)
    assert invariance_cache.cache_key(0, fp) == invariance_cache.cache_key(0, again)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "stale key", "bad index",
                                    "pickled"])
def test_damaged_cache_is_rebuilt(small, tmp_path, counting, damage):
    good, _ = neighbours(small, tmp_path)
    (path,) = [os.path.join(tmp_path, f) for f in os.listdir(tmp_path)]
    raw = open(path, "rb").read()
    if damage == "garbage":
        open(path, "wb").write(b"not a zip file at all" * 10)
    elif damage == "truncated":
        open(path, "wb").write(raw[:len(raw) // 2])
    elif damage == "empty":
        open(path, "wb").write(b"")
    else:
        with np.load(path) as f:
            arrays = {k: f[k] for k in f.files}
        if damage == "stale key":
            arrays["key"] = np.array("0" * 64)
        elif damage == "bad index":
            arrays["test_index"][0, :] = 10 ** 6
        else:
            arrays["train_dist2"] = np.array([object()], dtype=object)
        with open(path, "wb") as f:
            np.savez(f, **arrays)
    calls_before = len(counting)
    rebuilt, messages = neighbours(small, tmp_path)
    assert len(counting) == calls_before + 2, messages
    assert "searching" in messages[0]
    for split in ("train", "test"):
        for a, b in zip(good[split], rebuilt[split]):
            np.testing.assert_array_equal(a, b)
    again, messages = neighbours(small, tmp_path)  # and the rebuilt file is good
    assert len(counting) == calls_before + 2 and "loaded" in messages[-1]


def test_different_shifts_get_different_cache_files(small, tmp_path):
    fewer = tuple(a[:80] for a in small)
    neighbours(fewer, tmp_path, shifts=0)
    neighbours(fewer, tmp_path, shifts=1)
    assert len([f for f in os.listdir(tmp_path) if f.endswith(".npz")]) == 2
