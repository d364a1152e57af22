"""The MLP: initialisation, forward shapes, and backward (all params, dx and dh) against
centred differences in float64."""
import inspect

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tinyadv import mlp, network
from tinyadv.fast.mlp import stack_forwards
from tinyadv.train import TrainConfig
from tinyadv.gradcheck import numerical_gradient

from nets import float64_params, min_abs_preactivation

GRADCHECK = settings(max_examples=30, deadline=None)
seeds = st.integers(0, 2 ** 32 - 1)
KINK_GAP = 1e-3  # |pre-activation| kept above this: a step h = 1e-6 never flips a ReLU

# Small nets: input width, 1-2 hidden widths, classes (e.g. [7, 6, 5, 3]).
layer_sizes = st.tuples(st.integers(1, 7), st.lists(st.integers(1, 6), min_size=1, max_size=2),
                        st.integers(2, 4)).map(lambda t: [t[0], *t[1], t[2]])


def reference_is_accurate_enough(grads, floor=1e-3):
    """Is every gradient block either exactly zero or larger than ``floor``?

    The reference has an error of its own: the scalar L is known to ~1e-16 |L| in float64,
    so a centred difference with h = 1e-6 carries ~1e-10 |L| absolute error. For a block whose
    largest entry is below ~1e-3 that exceeds 1e-7 *relative* (test_objective saw W1 of a
    [3, 3, 3, 3] net with max |g| 5e-4 give rel_error 1.3e-7). Such a block cannot be
    certified at 1e-7 by float64 differences, so the example is skipped, as near a kink. An
    exactly zero block (behind dead ReLUs) is fine: both sides are exactly 0.
    """
    return all(np.max(np.abs(g)) == 0 or np.max(np.abs(g)) > floor for g in grads.values())


def mlp_case(seed, sizes, n, embed_dim=0):
    rng = np.random.default_rng(seed)
    params = float64_params(sizes, rng, embed_dim)
    x = rng.standard_normal((n, sizes[0]))
    dlogits = rng.standard_normal((n, sizes[-1]))
    dh = rng.standard_normal((n, embed_dim or sizes[-2]))
    return params, x, dlogits, dh


def scalar_of_outputs(params, x, dlogits, dh):
    """sum(logits * dlogits) + sum(h * dh): its gradient is what backward(dlogits, dh) returns."""
    logits, h, _ = mlp.forward(params, x)
    total = 0.0
    if dlogits is not None:
        total += np.sum(logits * dlogits)
    if dh is not None:
        total += np.sum(h * dh)
    return total


def test_init_params_shapes_dtypes_and_scale():
    params = mlp.init_params([784, 256, 128, 10], np.random.default_rng(0), init="he")
    assert sorted(params) == ["W1", "W2", "W3", "b1", "b2", "b3"]
    assert params["W1"].shape == (784, 256) and params["b1"].shape == (256,)
    assert params["W2"].shape == (256, 128) and params["W3"].shape == (128, 10)
    assert all(v.dtype == np.float32 for v in params.values())
    assert all(np.all(params[f"b{k}"] == 0) for k in (1, 2, 3))
    # He: std sqrt(2 / fan_in); 200k samples pin the std to ~0.2%.
    assert np.std(params["W1"]) == pytest.approx(np.sqrt(2 / 784), rel=0.01)
    params64 = mlp.init_params([3, 4, 2], np.random.default_rng(0), dtype=np.float64, init="he")
    assert params64["W1"].dtype == np.float64


def test_default_init_is_the_training_default():
    """init_params and TrainConfig default to the same initialisation (uniform): a lesson or
    test that builds a network by hand gets the one training uses."""
    assert inspect.signature(mlp.init_params).parameters["init"].default == TrainConfig().init
    assert np.array_equal(mlp.init_params([5, 4, 3], np.random.default_rng(3))["W1"],
                          mlp.init_params([5, 4, 3], np.random.default_rng(3), init="uniform")["W1"])


def test_uniform_init_is_pytorch_linear_default():
    """W and b ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)): bounded, centred, variance bound^2 / 3."""
    params = mlp.init_params([784, 256, 128, 10], np.random.default_rng(0), init="uniform")
    for k, fan_in in ((1, 784), (2, 256), (3, 128)):
        bound = 1 / np.sqrt(fan_in)
        for name in (f"W{k}", f"b{k}"):
            assert np.max(np.abs(params[name])) <= bound
            assert np.max(np.abs(params[name])) > 0.9 * bound  # fills the interval
        assert np.std(params[f"W{k}"]) == pytest.approx(bound / np.sqrt(3), rel=0.02)
    assert np.std(params["b1"]) > 0  # biases are drawn too, not zero


def test_embedding_layer_shapes_and_init():
    for init in mlp.INITS:
        params = mlp.init_params([784, 256, 128, 10], np.random.default_rng(0), init=init,
                                 embed_dim=4)
        assert list(params) == ["W1", "b1", "W2", "b2", "W_emb", "b_emb", "W3", "b3"]
        assert params["W_emb"].shape == (128, 4) and params["b_emb"].shape == (4,)
        assert params["W3"].shape == (4, 10)  # the head reads the embedding
        assert mlp.num_layers(params) == 3 and mlp.has_embedding_layer(params)
        assert mlp.embedding_width(params) == 4 and mlp.num_classes(params) == 10
    plain = mlp.init_params([784, 256, 128, 10], np.random.default_rng(0))
    assert not mlp.has_embedding_layer(plain) and mlp.embedding_width(plain) == 128


def test_he_init_without_embedding_is_unchanged_by_the_new_options():
    """He draws are the same as before ``init``/``embed_dim`` existed: old seeds hold."""
    a = mlp.init_params([5, 4, 3], np.random.default_rng(7), init="he")
    rng = np.random.default_rng(7)
    assert np.array_equal(a["W1"], (rng.standard_normal((5, 4)) * np.sqrt(2 / 5)).astype(np.float32))
    assert np.array_equal(a["W2"], (rng.standard_normal((4, 3)) * np.sqrt(2 / 4)).astype(np.float32))


@pytest.mark.parametrize("init", mlp.INITS)
@pytest.mark.parametrize("embed_dim", [0, 2])
def test_init_params_is_deterministic_for_a_seed(init, embed_dim):
    a = mlp.init_params([5, 4, 3], np.random.default_rng(7), init=init, embed_dim=embed_dim)
    b = mlp.init_params([5, 4, 3], np.random.default_rng(7), init=init, embed_dim=embed_dim)
    assert all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("kwargs, name", [(dict(init="xavier"), "init"),
                                          (dict(embed_dim=-1), "embed_dim"),
                                          (dict(embed_dim=1.5), "embed_dim"),
                                          (dict(embed_dim=True), "embed_dim")])
def test_init_params_rejects_bad_options(kwargs, name):
    with pytest.raises(ValueError, match=name):
        mlp.init_params([5, 4, 3], np.random.default_rng(0), **kwargs)


@pytest.mark.parametrize("sizes", [[784, 10], [5, 0, 3], [5, 2.5, 3], []])
def test_init_params_rejects_bad_sizes(sizes):
    with pytest.raises(ValueError, match="sizes"):
        mlp.init_params(sizes, np.random.default_rng(0))


def test_init_params_rejects_a_missing_generator():
    with pytest.raises(TypeError, match="rng"):
        mlp.init_params([5, 4, 3], 0)


def test_forward_shapes_and_embedding():
    rng = np.random.default_rng(0)
    params = float64_params([7, 6, 5, 3], rng)
    x = rng.standard_normal((4, 7))
    logits, h, _ = mlp.forward(params, x)
    assert logits.shape == (4, 3) and h.shape == (4, 5)
    assert np.all(h >= 0)  # h is the last ReLU output
    np.testing.assert_allclose(logits, h @ params["W3"] + params["b3"], rtol=1e-14)
    np.testing.assert_array_equal(mlp.predict(params, x, batch_size=3), logits.argmax(axis=1))
    np.testing.assert_allclose(mlp.embed(params, x, batch_size=3), h, rtol=1e-14)


def test_forward_with_a_linear_embedding_layer_is_signed():
    rng = np.random.default_rng(0)
    params = float64_params([7, 6, 5, 3], rng, embed_dim=4)
    x = rng.standard_normal((50, 7))
    logits, h, _ = mlp.forward(params, x)
    last_hidden = np.maximum(np.maximum(x @ params["W1"] + params["b1"], 0) @ params["W2"]
                             + params["b2"], 0)  # (50, 5), by hand
    np.testing.assert_allclose(h, last_hidden @ params["W_emb"] + params["b_emb"], rtol=1e-13)
    np.testing.assert_allclose(logits, h @ params["W3"] + params["b3"], rtol=1e-13)
    assert h.shape == (50, 4) and np.any(h < 0)  # no ReLU on the embedding
    assert mlp.embed(params, x[:0]).shape == (0, 4)


@GRADCHECK
@given(seed=seeds, sizes=layer_sizes, n=st.integers(1, 4),
       upstream=st.sampled_from(["dlogits and dh", "dlogits only", "dh only"]),
       embed_dim=st.sampled_from([0, 1, 3]))
def test_backward_matches_numerical(seed, sizes, n, upstream, embed_dim, assert_grad_ok):
    params, x, dlogits, dh = mlp_case(seed, sizes, n, embed_dim)
    assume(min_abs_preactivation(params, x) > KINK_GAP)
    if upstream == "dlogits only":
        dh = None
    elif upstream == "dh only":
        dlogits = None
    grads, dx = mlp.backward(dlogits, dh, mlp.forward(params, x)[2])
    assume(reference_is_accurate_enough({**grads, "x": dx}))
    assert sorted(grads) == sorted(params)
    f = lambda: scalar_of_outputs(params, x, dlogits, dh)  # noqa: E731
    for key in params:
        assert_grad_ok(f"mlp {key} ({upstream})", grads[key], numerical_gradient(f, params[key]))
    assert_grad_ok(f"mlp dx ({upstream})", dx, numerical_gradient(f, x))


@pytest.mark.parametrize("embed_dim", [0, 4])
def test_backward_wrong_gradients_fail(embed_dim, assert_wrong_grads_fail):
    params, x, dlogits, dh = mlp_case(0, [7, 6, 5, 3], 4, embed_dim)
    assert min_abs_preactivation(params, x) > KINK_GAP
    grads, dx = mlp.backward(dlogits, dh, mlp.forward(params, x)[2])
    f = lambda: scalar_of_outputs(params, x, dlogits, dh)  # noqa: E731
    for key in params:
        assert_wrong_grads_fail(f"mlp {key}", grads[key], numerical_gradient(f, params[key]))
    assert_wrong_grads_fail("mlp dx", dx, numerical_gradient(f, x))


def test_backward_without_dx_or_without_param_grads():
    params, x, dlogits, dh = mlp_case(1, [7, 6, 5, 3], 4)
    cache = mlp.forward(params, x)[2]
    grads, dx = mlp.backward(dlogits, dh, cache)
    grads_no_dx, no_dx = mlp.backward(dlogits, dh, cache, need_dx=False)
    assert no_dx is None
    assert all(np.array_equal(grads_no_dx[k], grads[k]) for k in params)
    no_grads, dx_only = mlp.backward(dlogits, dh, cache, need_param_grads=False)
    assert no_grads == {}
    np.testing.assert_array_equal(dx_only, dx)


def test_backward_with_only_dh_gives_the_head_zero_gradient():
    params, x, _, dh = mlp_case(2, [7, 6, 5, 3], 3)
    grads, _ = mlp.backward(None, dh, mlp.forward(params, x)[2])
    assert np.all(grads["W3"] == 0) and np.all(grads["b3"] == 0)
    assert grads["W3"].shape == params["W3"].shape and grads["b3"].shape == params["b3"].shape


def test_backward_needs_some_upstream_gradient():
    params, x, _, _ = mlp_case(3, [7, 6, 5, 3], 2)
    with pytest.raises(ValueError, match="dlogits, dh"):
        mlp.backward(None, None, mlp.forward(params, x)[2])


@pytest.mark.parametrize("embed_dim", [0, 2])
def test_float32_stays_float32(embed_dim):
    rng = np.random.default_rng(4)
    params = mlp.init_params([7, 6, 5, 3], rng, init="uniform", embed_dim=embed_dim)
    x = rng.random((4, 7), dtype=np.float32)
    logits, h, cache = mlp.forward(params, x)
    grads, dx = mlp.backward(np.ones_like(logits), np.ones_like(h), cache)
    assert logits.dtype == h.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values())


@pytest.mark.parametrize("embed_dim", [0, 3])
@settings(max_examples=20, deadline=None)
@given(seed=seeds, sizes=layer_sizes, n_a=st.integers(1, 5), n_b=st.integers(1, 5))
def test_stacked_forwards_are_the_forward_of_the_stacked_batch(seed, sizes, n_a, n_b, embed_dim):
    rng = np.random.default_rng(seed)
    params = float64_params(sizes, rng, embed_dim)
    x_a, x_b = rng.standard_normal((n_a, sizes[0])), rng.standard_normal((n_b, sizes[0]))
    x = np.concatenate([x_a, x_b])
    logits, h, cache = mlp.forward(params, x)
    for inputs in (None, x):
        s_logits, s_h, s_cache = stack_forwards(mlp.forward(params, x_a),
                                                mlp.forward(params, x_b), inputs=inputs)
        np.testing.assert_allclose(s_logits, logits, rtol=1e-12, atol=1e-14)
        np.testing.assert_allclose(s_h, h, rtol=1e-12, atol=1e-14)
        # The backward through the stacked cache is the backward of the stacked batch.
        dlogits, dh = rng.standard_normal(logits.shape), rng.standard_normal(h.shape)
        grads, dx = mlp.backward(dlogits, dh, cache)
        s_grads, s_dx = mlp.backward(dlogits, dh, s_cache)
        np.testing.assert_allclose(s_dx, dx, rtol=1e-12, atol=1e-14)
        for key in params:
            np.testing.assert_allclose(s_grads[key], grads[key], rtol=1e-12, atol=1e-14)


# ---- the optional input normalisation (network.py): z = (x - mean) / std first ----------

def normed_case(seed, sizes, n, embed_dim=0):
    """A float64 net that normalises its inputs (a random mean and std) and pixel-like x."""
    rng = np.random.default_rng(seed)
    mean, std = float(rng.uniform(-0.5, 0.5)), float(rng.uniform(0.2, 3.0))
    params = network.with_input_norm(float64_params(sizes, rng, embed_dim), mean, std)
    x = rng.random((n, sizes[0]))
    dlogits = rng.standard_normal((n, sizes[-1]))
    dh = rng.standard_normal((n, embed_dim or sizes[-2]))
    return params, x, dlogits, dh


def normed_scalar(params, x, dlogits, dh):
    """scalar_of_outputs through network.forward, which normalises first."""
    logits, h, _ = network.forward(params, x)
    return sum(np.sum(out * d) for out, d in ((logits, dlogits), (h, dh)) if d is not None)


@GRADCHECK
@given(seed=seeds, sizes=layer_sizes, n=st.integers(1, 4),
       upstream=st.sampled_from(["dlogits and dh", "dlogits only", "dh only"]),
       embed_dim=st.sampled_from([0, 2]))
def test_backward_with_input_norm_matches_numerical(seed, sizes, n, upstream, embed_dim,
                                                    assert_grad_ok):
    params, x, dlogits, dh = normed_case(seed, sizes, n, embed_dim)
    z = (x - params["input_mean"]) / params["input_std"]
    np.testing.assert_allclose(network.forward(params, x)[0], mlp.forward(params, z)[0],
                               rtol=1e-13)  # the normalisation, then the MLP
    assume(min_abs_preactivation(params, z) > KINK_GAP)
    if upstream == "dlogits only":
        dh = None
    elif upstream == "dh only":
        dlogits = None
    grads, dx = network.backward(dlogits, dh, network.forward(params, x)[2])
    assume(reference_is_accurate_enough({**grads, "x": dx}))
    assert sorted(grads) == sorted(network.trainable_keys(params))  # constants: not trained
    f = lambda: normed_scalar(params, x, dlogits, dh)  # noqa: E731
    for key in grads:
        assert_grad_ok(f"mlp+norm {key} ({upstream})", grads[key],
                       numerical_gradient(f, params[key]))
    assert_grad_ok(f"mlp+norm dx ({upstream})", dx, numerical_gradient(f, x))


def test_backward_with_input_norm_wrong_dx_fails(assert_wrong_grads_fail, assert_grad_ok):
    """The input gradient in pixel units is dz / std: the one of the first layer's input
    (the normalised image) is wrong by the factor std and must fail, and so is dz * std."""
    params, x, dlogits, dh = normed_case(0, [7, 6, 5, 3], 4)
    assert min_abs_preactivation(params, (x - params["input_mean"]) / params["input_std"]) > KINK_GAP
    cache = network.forward(params, x)[2]
    _, dx = network.backward(dlogits, dh, cache)
    numeric = numerical_gradient(lambda: normed_scalar(params, x, dlogits, dh), x)
    assert_wrong_grads_fail("mlp+norm dx", dx, numeric)
    _, dz = mlp.backward(dlogits, dh, cache)  # the normalisation's step skipped
    for wrong in (dz, dz * params["input_std"]):
        with pytest.raises(AssertionError):
            assert_grad_ok("mlp+norm dx without the 1/std", wrong, numeric)


def test_input_norm_is_the_first_operation_and_draws_nothing():
    config = TrainConfig(sizes=(784, 16, 10))
    plain = network.init_params(config, np.random.default_rng(5))
    normed = network.init_params(config.replace(input_norm="authors"), np.random.default_rng(5))
    assert list(normed) == list(plain) + ["input_mean", "input_std"]
    assert all(np.array_equal(plain[k], normed[k]) for k in plain)  # the same weights
    assert normed["input_mean"].dtype == normed["input_std"].dtype == np.float32
    assert not network.has_input_norm(plain) and network.has_input_norm(normed)
    assert sorted(network.without_input_norm(normed)) == sorted(plain)
    x = np.random.default_rng(6).random((20, 784), dtype=np.float32)
    logits, h, _ = network.forward(normed, x)
    z = (x - np.float32(0.1307)) / np.float32(0.3081)
    ref_logits, ref_h, _ = mlp.forward(plain, z)
    np.testing.assert_array_equal(logits, ref_logits)
    np.testing.assert_array_equal(h, ref_h)
    assert logits.dtype == np.float32
    _, dx = network.backward(np.ones_like(logits), None, network.forward(normed, x)[2])
    assert dx.dtype == np.float32
    np.testing.assert_array_equal(network.predict(normed, x), logits.argmax(axis=1))


@pytest.mark.parametrize("mean, std", [(0.5, 0.0), (0.1, -1.0), (np.nan, 1.0), (0.1, np.inf)])
def test_a_bad_input_norm_is_rejected(mean, std):
    params = mlp.init_params([3, 2, 2], np.random.default_rng(0))
    with pytest.raises(ValueError, match="std"):
        network.with_input_norm(params, mean, std)


@settings(max_examples=15, deadline=None)
@given(seed=seeds, sizes=layer_sizes, n_a=st.integers(1, 4), n_b=st.integers(1, 4))
def test_stacked_forwards_with_input_norm(seed, sizes, n_a, n_b):
    params, _, _, _ = normed_case(seed, sizes, 1)
    rng = np.random.default_rng(seed + 1)
    x_a, x_b = rng.random((n_a, sizes[0])), rng.random((n_b, sizes[0]))
    x = np.concatenate([x_a, x_b])
    logits, h, cache = network.forward(params, x)
    dlogits, dh = rng.standard_normal(logits.shape), rng.standard_normal(h.shape)
    grads, dx = network.backward(dlogits, dh, cache)
    for inputs in (None, x):  # the stacked raw inputs must not stand in for layer 1's input
        s_logits, s_h, s_cache = stack_forwards(network.forward(params, x_a),
                                                network.forward(params, x_b), inputs=inputs)
        np.testing.assert_allclose(s_logits, logits, rtol=1e-12, atol=1e-14)
        s_grads, s_dx = network.backward(dlogits, dh, s_cache)
        np.testing.assert_allclose(s_dx, dx, rtol=1e-12, atol=1e-14)
        for key in grads:
            np.testing.assert_allclose(s_grads[key], grads[key], rtol=1e-12, atol=1e-14)
