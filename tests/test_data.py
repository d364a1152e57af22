"""MNIST and the Tramer et al. 2020 sets against the facts in data/README.md; what a damaged or
missing file gets; batching; and the input checks of tinyadv/validate.py."""
import gzip
import os
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyadv import data, validate

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


# ---- MNIST -----------------------------------------------------------------------------

def test_train_split_facts(mnist_train):
    X, y = mnist_train
    assert X.shape == (60000, 784) and X.dtype == np.float32
    assert y.shape == (60000,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.bincount(y, minlength=10).tolist() == TRAIN_COUNTS
    assert y[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    # README: 33.318 of 255, given to three decimals -> tolerance half a unit of the last one.
    assert 255 * X.mean(dtype=np.float64) == pytest.approx(33.318, abs=5e-4)


def test_test_split_facts(mnist_test):
    X, y = mnist_test
    assert X.shape == (10000, 784) and X.dtype == np.float32
    assert y.shape == (10000,) and y.dtype == np.int64
    assert X.min() == 0.0 and X.max() == 1.0
    assert np.bincount(y, minlength=10).tolist() == TEST_COUNTS
    assert y[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]


def test_pixels_are_bytes_over_255(mnist_test):
    X, _ = mnist_test
    scaled = X[:500].astype(np.float64) * 255
    np.testing.assert_allclose(scaled, np.round(scaled), atol=1e-4)


def test_bad_split_is_rejected():
    with pytest.raises(ValueError, match="split.*'validation'"):
        data.load_mnist("validation")


def copy_test_split(folder):
    for name in data.MNIST_FILES["test"]:
        shutil.copy(os.path.join(data.DATA_DIR, "mnist", name), folder / name)
    return folder


def test_root_points_at_another_folder(tmp_path, mnist_test):
    X, y = data.load_mnist("test", root=str(copy_test_split(tmp_path)))
    assert np.array_equal(X, mnist_test[0]) and np.array_equal(y, mnist_test[1])


def flip_byte(raw, position):
    damaged = bytearray(raw)
    damaged[position] ^= 0xFF
    return bytes(damaged)


# Each damage reaches a different layer: the gzip magic, the deflate stream (zlib), the
# CRC-32 trailer, the length trailer, a truncated stream.
DAMAGES = {
    "gzip magic": lambda raw: flip_byte(raw, 0),
    "deflate stream": lambda raw: flip_byte(raw, 100),
    "middle": lambda raw: flip_byte(raw, len(raw) // 2),
    "crc trailer": lambda raw: flip_byte(raw, len(raw) - 6),
    "length trailer": lambda raw: flip_byte(raw, len(raw) - 2),
    "truncated": lambda raw: raw[:len(raw) // 2],
    "empty": lambda raw: b"",
}


@pytest.mark.parametrize("damage", list(DAMAGES))
@pytest.mark.parametrize("which", [0, 1], ids=["images", "labels"])
def test_damaged_file_is_named_with_a_fix(tmp_path, damage, which):
    copy_test_split(tmp_path)
    path = tmp_path / data.MNIST_FILES["test"][which]
    path.write_bytes(DAMAGES[damage](path.read_bytes()))
    with pytest.raises(OSError) as info:
        data.load_mnist("test", root=str(tmp_path))
    assert isinstance(info.value, data.DataFileError)
    message = str(info.value)
    assert str(path) in message
    assert "restore" in message.lower()


def test_valid_gzip_of_altered_content_fails_the_checksum(tmp_path):
    copy_test_split(tmp_path)
    path = tmp_path / data.MNIST_FILES["test"][1]
    payload = bytearray(gzip.decompress(path.read_bytes()))
    payload[8] = (payload[8] + 1) % 10  # relabel the first image: a well-formed, wrong file
    path.write_bytes(gzip.compress(bytes(payload)))
    with pytest.raises(data.DataFileError, match="checksum mismatch") as info:
        data.load_mnist("test", root=str(tmp_path))
    assert str(path) in str(info.value) and "restore" in str(info.value).lower()


def test_missing_file_is_named(tmp_path):
    with pytest.raises(OSError) as info:
        data.load_mnist("test", root=str(tmp_path))
    message = str(info.value)
    assert "not found" in message and data.MNIST_FILES["test"][0] in message
    assert "restore" in message.lower()


# ---- Tramer et al. 2020 ----------------------------------------------------------------

# name -> (number of images, how many human labels differ from the source label (README %))
TRAMER_FACTS = {
    "linf_eps03": (100, 21),
    "linf_eps04": (100, 37),
    "linf_manual_eps04": (50, 44),  # 88% of 50
    "l0": (100, 55),
}


@pytest.mark.parametrize("name", list(TRAMER_FACTS))
def test_tramer_sets(name):
    X, y_human, y_source = data.load_tramer(name)
    size, differing = TRAMER_FACTS[name]
    assert X.shape == (size, 784) and X.dtype == np.float32
    assert X.min() >= 0.0 and X.max() <= 1.0
    assert y_human.shape == y_source.shape == (size,)
    assert y_human.dtype == y_source.dtype == np.int64
    assert y_human.min() >= 0 and y_human.max() <= 9
    assert np.count_nonzero(y_human != y_source) == differing


@pytest.mark.parametrize("name, eps", [("linf_eps03", 0.3), ("linf_eps04", 103 / 255)])
def test_tramer_images_lie_within_eps_of_their_sources(name, eps, mnist_test):
    """The source indices line up: each perturbed image is within eps (l-inf) of its source.
    (eps 0.4 is 103/255 after the authors' rounding to bytes, data/README.md.)"""
    X, _, y_source = data.load_tramer(name)
    index = np.load(os.path.join(data.TRAMER_DIR, "indexs.npy"), allow_pickle=False)
    X_test, y_test = mnist_test
    assert np.array_equal(y_source, y_test[index])
    assert np.max(np.abs(X - X_test[index])) <= eps + 1e-6


def test_bad_tramer_name_is_rejected():
    with pytest.raises(ValueError, match="name.*'linf'"):
        data.load_tramer("linf")


# ---- batching --------------------------------------------------------------------------

@settings(max_examples=50, deadline=None)
@given(n=st.integers(0, 60), batch_size=st.integers(1, 25), seed=st.integers(0, 2 ** 32 - 1))
def test_minibatches_cover_each_index_once(n, batch_size, seed):
    batches = list(data.iterate_minibatches(n, batch_size, np.random.default_rng(seed)))
    joined = np.concatenate(batches) if batches else np.zeros(0, dtype=int)
    assert sorted(joined.tolist()) == list(range(n))
    assert all(len(b) == batch_size for b in batches[:-1])
    again = list(data.iterate_minibatches(n, batch_size, np.random.default_rng(seed)))
    assert len(again) == len(batches) and all(np.array_equal(a, b) for a, b in zip(again, batches))
    kept = list(data.iterate_minibatches(n, batch_size, np.random.default_rng(seed),
                                         drop_last=True))
    assert len(kept) == n // batch_size and all(len(b) == batch_size for b in kept)


def test_minibatches_shuffle_and_change_between_epochs():
    rng = np.random.default_rng(0)
    first = np.concatenate(list(data.iterate_minibatches(100, 10, rng)))
    second = np.concatenate(list(data.iterate_minibatches(100, 10, rng)))
    assert not np.array_equal(first, np.arange(100)) and not np.array_equal(first, second)


def test_minibatches_reject_bad_arguments():
    with pytest.raises(TypeError, match="rng"):
        next(data.iterate_minibatches(10, 2, 0))
    for bad in (0, -1, 2.5):
        with pytest.raises(ValueError, match="batch_size"):
            next(data.iterate_minibatches(10, bad, np.random.default_rng(0)))


# ---- input checks (tinyadv/validate.py) --------------------------------------------------

def test_check_images_accepts_good_images():
    x = np.random.default_rng(0).random((3, 784), dtype=np.float32)
    assert validate.check_images(x) is x
    assert validate.check_images(np.zeros((0, 784), np.float32)).shape == (0, 784)


@pytest.mark.parametrize("bad, error, words", [
    ([[0.5] * 784], TypeError, "numpy array"),
    (np.zeros((2, 784), dtype=np.uint8), TypeError, "floating"),
    (np.zeros(784), ValueError, "2-d"),
    (np.zeros((2, 783)), ValueError, r"\(N, 784\)"),
    (np.full((2, 784), np.nan), ValueError, "NaN"),
    (np.full((2, 784), np.inf), ValueError, "NaN or inf"),
    (np.full((2, 784), 1.5), ValueError, r"\[0, 1\]"),
    (np.full((2, 784), -0.1), ValueError, r"\[0, 1\]"),
])
def test_check_images_rejects(bad, error, words):
    with pytest.raises(error, match=f"x_adv.*{words}"):
        validate.check_images(bad, "x_adv")


def test_check_labels_accepts_good_labels():
    y = np.array([0, 9, 3])
    assert validate.check_labels(y, "y", n=3) is y
    assert validate.check_labels(np.array([0, 1], dtype=np.uint8)).dtype == np.uint8


@pytest.mark.parametrize("bad, kwargs, error, words", [
    (np.array([0.0, 1.0]), {}, TypeError, "integer"),
    (np.array([[0, 1]]), {}, ValueError, "1-d"),
    (np.array([0, 10]), {}, ValueError, r"0\.\.9"),
    (np.array([-1, 3]), {}, ValueError, r"0\.\.9"),
    (np.array([0, 3]), {"num_classes": 3}, ValueError, r"0\.\.2"),
    (np.array([0, 1, 2]), {"n": 4}, ValueError, "4 labels"),
])
def test_check_labels_rejects(bad, kwargs, error, words):
    with pytest.raises(error, match=f"y_flip.*{words}"):
        validate.check_labels(bad, "y_flip", **kwargs)


@pytest.mark.parametrize("eps", [0, 0.3, np.float32(0.1), np.int64(1)])
def test_check_eps_accepts_numbers(eps):
    assert validate.check_eps(eps) == float(eps)
    assert isinstance(validate.check_eps(eps), float)


@pytest.mark.parametrize("bad, error", [(-0.1, ValueError), (float("nan"), ValueError),
                                        (float("inf"), ValueError), ("0.3", TypeError),
                                        (True, TypeError), (None, TypeError),
                                        (np.array([0.3]), TypeError)])
def test_check_eps_rejects(bad, error):
    with pytest.raises(error, match="step"):
        validate.check_eps(bad, "step")
