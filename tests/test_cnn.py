"""The authors' CNN (cnn.py, and fast/cnn.py that the lab runs): initialisation, the forward
against the same network written out with the readable layers, the backward -- every
parameter and the input gradient FGSM needs -- against centred differences in float64, and
the fast network equal to the readable one."""
import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from tinyadv import cnn, layers, network
from tinyadv.fast import cnn as fast_cnn
from tinyadv.fast.network import FAST
from tinyadv.gradcheck import compare

from conftest import wrong_versions

seeds = st.integers(0, 2 ** 32 - 1)
# Every entry of the network's output is piecewise linear in any one weight or pixel, so a
# centred difference is exact between kinks. A step of H = 1e-6 moves each unit by H times
# its derivative w.r.t. the entry stepped -- below 2 for every unit and entry of these
# networks -- so it cannot cross a kink farther than KINK_GAP. One image per check: the
# ~6,000 kinks of a second image would halve the share of seeds that keep that distance.
H = 1e-6
KINK_GAP = 5e-6
ENTRIES = 6  # entries of each parameter differenced (plus its last one); slopes: all


def reference_forward(params, x):
    """The network written with layers.py's readable pieces, in PyTorch's (N, C, H, W).

    Returns logits, h and the distances to the nearest kinks: the smallest |pre-activation|
    of a PReLU whose output is used (the pooling windows' winners, the dense units) and the
    smallest gap between the two largest entries of a pooling window."""
    n = x.shape[0]
    if network.has_input_norm(params):
        x = (x - params["input_mean"]) / params["input_std"]
    out, gaps = x.reshape(n, 1, 28, 28), []
    for name in ("conv1", "conv2"):
        z, _ = layers.conv2d_forward(out, params[f"W_{name}"], params[f"b_{name}"])
        act, _ = layers.prelu_forward(z, params[f"a_{name}"])
        out, (winner, _) = layers.maxpool2d_forward(act)
        h2, w2 = out.shape[2:]
        windows = (act[:, :, :2 * h2, :2 * w2].reshape(n, -1, h2, 2, w2, 2)
                   .transpose(0, 1, 2, 4, 3, 5).reshape(*out.shape, 4))
        z_windows = (z[:, :, :2 * h2, :2 * w2].reshape(n, -1, h2, 2, w2, 2)
                     .transpose(0, 1, 2, 4, 3, 5).reshape(*out.shape, 4))
        top = np.sort(windows, axis=-1)
        gaps += [np.min(top[..., 3] - top[..., 2]),
                 np.min(np.abs(np.take_along_axis(z_windows, winner[..., None], axis=-1)))]
    out = out.reshape(n, -1)
    for name in ("fc1", "fc2"):
        z, _ = layers.linear_forward(out, params[f"W_{name}"], params[f"b_{name}"])
        gaps.append(np.min(np.abs(z)))
        out, _ = layers.prelu_forward(z, params[f"a_{name}"])
    h, _ = layers.linear_forward(out, params["W_emb"], params["b_emb"])
    logits, _ = layers.linear_forward(h, params["W_head"], params["b_head"])
    return logits, h, float(min(gaps))


def float64_case(seed, n=1, input_norm=False, slopes="random"):
    """PyTorch's initialisation in float64, with random biases and (by default) random
    PReLU slopes, some negative (the fast blocks' other path); images with no blank pixel
    (a blank patch would make exact ties, kinks, in the pooling)."""
    rng = np.random.default_rng(seed)
    params = cnn.init_params(rng, dtype=np.float64)
    for key in params:
        if key.startswith("b_"):
            params[key] = rng.normal(0.0, 0.3, size=params[key].shape)
        elif key.startswith("a_") and slopes == "random":
            params[key] = rng.uniform(-0.5, 1.5, size=1)
    if input_norm:
        params = network.with_input_norm(params, 0.1307, 0.3081)
    x = rng.uniform(0.01, 1.0, size=(n, 784))
    return params, x, rng.standard_normal((n, 10)), rng.standard_normal((n, 4)), rng


def scalar_of_outputs(params, x, dlogits, dh):
    """sum(logits * dlogits) + sum(h * dh): its gradient is what backward(dlogits, dh) returns.
    Differenced with the fast network's forward (equal to the readable one, tested below),
    which makes the many forwards of a centred difference cheaper."""
    logits, h, _ = FAST.forward(params, x)
    return ((np.sum(logits * dlogits) if dlogits is not None else 0.0)
            + (np.sum(h * dh) if dh is not None else 0.0))


def sampled_entries(array, rng):
    """Flat indices to difference: all of a small array; of a convolution's kernel (F, C, k, k)
    one random (filter, channel) at every offset (u, v), since a wrong gradient is often wrong
    at some offsets only (a kernel not flipped); else ENTRIES random ones; and always the last
    entry (the one ``wrong_versions`` changes)."""
    if array.size <= ENTRIES + 1:
        return np.arange(array.size)
    if array.ndim == 4:
        f_count, c_count, k, _ = array.shape
        offsets = np.arange(k * k)
        picked = (rng.integers(f_count, size=k * k) * c_count
                  + rng.integers(c_count, size=k * k)) * k * k + offsets
    else:
        picked = rng.choice(array.size, ENTRIES, replace=False)
    return np.unique(np.append(picked, array.size - 1))


def numerical_entries(f, array, index):
    """Centred differences of the scalar f() w.r.t. the entries ``index`` of ``array``."""
    flat, grads = array.reshape(-1), []
    assert np.shares_memory(flat, array)
    for i in index:
        original = flat[i]
        try:
            flat[i] = original + H
            plus = f()
            flat[i] = original - H
            minus = f()
        finally:
            flat[i] = original
        grads.append((plus - minus) / (2 * H))
    return np.array(grads)


def checked_gradients(params, x, dlogits, dh, rng):
    """{name: (analytic entries, numerical entries)} for every parameter and x: the readable
    backward (network.py, cnn.py) against centred differences."""
    grads, dx = network.backward(dlogits, dh, network.forward(params, x)[2])
    assert sorted(grads) == sorted(network.trainable_keys(params))
    f = lambda: scalar_of_outputs(params, x, dlogits, dh)  # noqa: E731
    checked = {}
    for key, array in [*((k, params[k]) for k in grads), ("x", x)]:
        analytic = grads[key] if key != "x" else dx
        assert analytic.shape == array.shape, key
        index = sampled_entries(array, rng)
        checked[key] = (analytic.reshape(-1)[index], numerical_entries(f, array, index))
    return checked


@settings(max_examples=3, deadline=None)
@given(seed=seeds, upstream=st.sampled_from(["dlogits and dh", "dlogits only", "dh only"]),
       input_norm=st.booleans())
@example(seed=11, upstream="dlogits and dh", input_norm=True)
def test_backward_matches_numerical(seed, upstream, input_norm, assert_grad_ok):
    params, x, dlogits, dh, rng = float64_case(seed, input_norm=input_norm)
    assume(reference_forward(params, x)[2] > KINK_GAP)
    if upstream == "dlogits only":
        dh = None
    elif upstream == "dh only":
        dlogits = None
    checked = checked_gradients(params, x, dlogits, dh, rng)
    # A block whose sampled entries are all below 1e-3 cannot be certified at 1e-7 by float64
    # differences (test_mlp.reference_is_accurate_enough says why): such an example is
    # skipped, as one near a kink. Exact zeros (the head without dlogits) are certified.
    assume(all(np.max(np.abs(numeric)) > 1e-3 or np.all(numeric == 0)
               for _, numeric in checked.values()))
    for key, (analytic, numeric) in checked.items():
        if key in ("W_head", "b_head") and dlogits is None:
            assert np.all(analytic == 0) and np.all(numeric == 0)
            continue
        assert_grad_ok(f"cnn {key} ({upstream})", analytic, numeric)


def test_wrong_gradients_fail(assert_wrong_grads_fail):
    params, x, dlogits, dh, rng = float64_case(2)
    assert reference_forward(params, x)[2] > KINK_GAP
    for key, (analytic, numeric) in checked_gradients(params, x, dlogits, dh, rng).items():
        assert_wrong_grads_fail(f"cnn {key}", analytic, numeric)
        assert len(wrong_versions(analytic)) == 3


def test_input_gradient_ignoring_the_normalisation_fails(assert_grad_ok):
    """dx is in pixel units: the gradient w.r.t. the normalised image is off by 1 / std."""
    params, x, dlogits, dh, rng = float64_case(3, input_norm=True)
    assert reference_forward(params, x)[2] > KINK_GAP
    cache = network.forward(params, x)[2]
    _, dx = network.backward(dlogits, dh, cache)
    _, dz = cnn.backward(dlogits, dh, cache)  # the CNN's own: no normalisation to undo
    index = sampled_entries(x, rng)
    numeric = numerical_entries(lambda: scalar_of_outputs(params, x, dlogits, dh), x, index)
    assert_grad_ok("cnn dx", dx.reshape(-1)[index], numeric)
    assert not compare("cnn dx without 1/std", dz.reshape(-1)[index], numeric).passed


@pytest.mark.parametrize("input_norm", [False, True])
@pytest.mark.parametrize("net", [network, FAST], ids=["readable", "fast"])
def test_forward_equals_the_network_of_readable_layers(input_norm, net):
    params, x, _, _, _ = float64_case(4, n=5, input_norm=input_norm)
    logits, h, _ = net.forward(params, x)
    ref_logits, ref_h, _ = reference_forward(params, x)
    assert logits.shape == (5, 10) and h.shape == (5, 4) and np.any(h < 0)  # signed embedding
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(h, ref_h, rtol=1e-12, atol=1e-13)
    np.testing.assert_array_equal(net.predict(params, x), logits.argmax(axis=1))
    np.testing.assert_allclose(net.embed(params, x), h, rtol=1e-13, atol=1e-14)
    assert net.embed(params, x[:0]).shape == (0, 4) and net.predict(params, x[:0]).shape == (0,)
    if not input_norm:
        np.testing.assert_array_equal(cnn.predict(params, x, batch_size=2), logits.argmax(axis=1))


@pytest.mark.parametrize("input_norm", [False, True])
def test_the_fast_backward_is_the_readable_one(input_norm):
    """fast/cnn.py (im2col, Fourier transforms, pooling before the PReLU, (H, W, N, C)) against
    cnn.py (cnn_layers.py's loops) in float64: every gradient, with and without dx."""
    params, x, dlogits, dh, _ = float64_case(12, n=3, input_norm=input_norm)
    for upstream in ((dlogits, dh), (dlogits, None), (None, dh)):
        for need_dx in (True, False):
            readable = network.backward(*upstream, network.forward(params, x)[2], need_dx=need_dx)
            fast = FAST.backward(*upstream, FAST.forward(params, x)[2], need_dx=need_dx)
            assert sorted(fast[0]) == sorted(readable[0])
            for key in readable[0]:
                np.testing.assert_allclose(fast[0][key], readable[0][key], rtol=1e-10,
                                           atol=1e-12, err_msg=key)
            if need_dx:
                np.testing.assert_allclose(fast[1], readable[1], rtol=1e-10, atol=1e-12)
            else:
                assert fast[1] is None and readable[1] is None


def test_init_params_is_pytorchs_default():
    params = cnn.init_params(np.random.default_rng(0))
    assert list(params) == ["W_conv1", "b_conv1", "a_conv1", "W_conv2", "b_conv2", "a_conv2",
                            "W_fc1", "b_fc1", "a_fc1", "W_fc2", "b_fc2", "a_fc2", "W_emb",
                            "b_emb", "W_head", "b_head"]
    shapes = {"W_conv1": (32, 1, 5, 5), "W_conv2": (64, 32, 5, 5), "W_fc1": (1024, 256),
              "W_fc2": (256, 256), "W_emb": (256, 4), "W_head": (4, 10)}
    fan_ins = {"conv1": 25, "conv2": 800, "fc1": 1024, "fc2": 256, "emb": 256, "head": 4}
    for name, fan_in in fan_ins.items():
        weights, bias = params[f"W_{name}"], params[f"b_{name}"]
        assert weights.shape == shapes[f"W_{name}"] and weights.dtype == np.float32
        bound = 1 / np.sqrt(fan_in)
        for values in (weights, bias):
            assert np.max(np.abs(values)) <= bound
        assert np.max(np.abs(weights)) > 0.9 * bound  # fills the interval
        if weights.size > 10_000:
            assert np.std(weights) == pytest.approx(bound / np.sqrt(3), rel=0.02)
    assert all(params[f"a_{name}"].tolist() == [0.25] for name in cnn.PRELU_LAYERS)
    assert cnn.num_classes(params) == 10 and cnn.embedding_width(params) == 4
    assert network.arch(params) == "cnn" and not network.has_input_norm(params)
    again = cnn.init_params(np.random.default_rng(0))
    assert all(np.array_equal(params[k], again[k]) for k in params)


@pytest.mark.parametrize("net", [network, FAST], ids=["readable", "fast"])
def test_input_norm_is_the_first_operation_and_draws_nothing(net):
    plain = cnn.init_params(np.random.default_rng(5))
    normed = network.with_input_norm(plain, *network.INPUT_NORMS["authors"])
    assert sorted(normed) == sorted(plain) + ["input_mean", "input_std"]
    x = np.random.default_rng(6).random((3, 784), dtype=np.float32)
    logits, _, cache = net.forward(normed, x)
    z = (x - np.float32(0.1307)) / np.float32(0.3081)
    np.testing.assert_array_equal(logits, net.forward(plain, z)[0])
    grads, dx = net.backward(np.ones_like(logits), None, cache)
    assert "input_mean" not in grads and dx.dtype == np.float32


@pytest.mark.parametrize("module", [cnn, fast_cnn], ids=["readable", "fast"])
def test_float32_stays_float32(module):
    params = cnn.init_params(np.random.default_rng(7))
    x = np.random.default_rng(8).random((3, 784), dtype=np.float32)
    logits, h, cache = module.forward(params, x)
    grads, dx = module.backward(np.ones_like(logits), np.ones_like(h), cache)
    assert logits.dtype == h.dtype == dx.dtype == np.float32
    assert all(g.dtype == np.float32 for g in grads.values()), {
        k: g.dtype for k, g in grads.items()}


@pytest.mark.parametrize("module", [cnn, fast_cnn], ids=["readable", "fast"])
def test_backward_options(module):
    params, x, dlogits, dh, _ = float64_case(9, n=3)
    cache = module.forward(params, x)[2]
    grads, dx = module.backward(dlogits, dh, cache)
    no_dx_grads, no_dx = module.backward(dlogits, dh, cache, need_dx=False)
    assert no_dx is None and all(np.array_equal(no_dx_grads[k], grads[k]) for k in grads)
    no_grads, dx_only = module.backward(dlogits, dh, cache, need_param_grads=False)
    assert no_grads == {}
    np.testing.assert_array_equal(dx_only, dx)
    head_free, _ = module.backward(None, dh, cache)
    assert np.all(head_free["W_head"] == 0) and np.all(head_free["b_head"] == 0)
    with pytest.raises(ValueError, match="dlogits, dh"):
        module.backward(None, None, cache)


@pytest.mark.parametrize("need_dx", [True, False])
def test_stacked_forwards_are_the_forward_of_the_stacked_batch(need_dx):
    """fast/cnn.py keeps the two parts' caches apart; fast/network.py's backward adds their
    gradients."""
    params, x, _, _, rng = float64_case(10, n=5, input_norm=True)
    x_a, x_b = x[:2], x[2:]
    logits, h, cache = FAST.forward(params, x)
    s_logits, s_h, s_cache = FAST.stack_forwards(params, FAST.forward(params, x_a),
                                                 FAST.forward(params, x_b))
    np.testing.assert_allclose(s_logits, logits, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(s_h, h, rtol=1e-12, atol=1e-14)
    dlogits, dh = rng.standard_normal(logits.shape), rng.standard_normal(h.shape)
    grads, dx = FAST.backward(dlogits, dh, cache, need_dx=need_dx)
    s_grads, s_dx = FAST.backward(dlogits, dh, s_cache, need_dx=need_dx)
    assert sorted(s_grads) == sorted(grads)
    for key in grads:
        np.testing.assert_allclose(s_grads[key], grads[key], rtol=1e-11, atol=1e-13, err_msg=key)
    if need_dx:
        np.testing.assert_allclose(s_dx, dx, rtol=1e-12, atol=1e-14)
    else:
        assert s_dx is None
    plain = FAST.backward(dlogits, dh, cache, need_dx=need_dx)  # an unstacked cache
    assert all(np.array_equal(plain[0][k], grads[k]) for k in grads)


def test_bad_input():
    params = cnn.init_params(np.random.default_rng(0))
    cases = [(np.zeros((2, 100), np.float32), ValueError, r"x: the CNN reads 28 x 28 images"),
             (np.zeros((2, 28, 28), np.float32), ValueError, "x: expected a 2-d array"),
             (np.zeros((2, 784), np.int64), TypeError, "x: expected a floating dtype"),
             (np.full((2, 784), np.nan, np.float32), ValueError, "x: contains NaN"),
             ([[0.0] * 784], TypeError, "x: expected a numpy array")]
    for x, error, message in cases:
        with pytest.raises(error, match=message):
            cnn.forward(params, x)
    with pytest.raises(TypeError, match="rng"):
        cnn.init_params(0)
