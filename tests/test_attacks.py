"""FGSM and PGD: the budget, the range, the direction (against a numerical gradient),
chunking, determinism, and clear errors on bad input."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyadv import attacks, losses, mlp, network
from tinyadv.fast.network import FAST
from tinyadv.fast.step import fgsm_sharing_forward
from tinyadv.gradcheck import numerical_gradient

SIZES = [784, 12, 8, 10]
ROUNDING = 1e-6  # float32 arithmetic may overshoot eps by about one ulp of a pixel value


def small_net(seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    params = mlp.init_params(SIZES, rng, dtype=dtype, init="he")
    for k in range(1, 4):  # non-zero biases keep ReLUs off their kink (conftest note)
        params[f"b{k}"] = (0.1 * rng.standard_normal(params[f"b{k}"].shape)).astype(dtype)
    return params


def images(n, seed=0, low=0.0, high=1.0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return rng.uniform(low, high, size=(n, 784)).astype(dtype), rng.integers(0, 10, size=n)


def ce(params, x, y):
    return losses.softmax_cross_entropy_forward(network.forward(params, x)[0], y)[0]


@settings(max_examples=20, deadline=None)
@given(eps=st.floats(0.0, 1.0), seed=st.integers(0, 1000),
       craft=st.sampled_from(attacks.CRAFT_FROM))
def test_fgsm_stays_in_budget_and_range(eps, seed, craft):
    params = small_net(seed % 3)
    x, y = images(17, seed)
    x_adv = attacks.fgsm(params, x, y, eps, craft_from=craft)
    assert x_adv.dtype == np.float32 and x_adv.shape == x.shape
    assert np.max(np.abs(x_adv - x)) <= eps + ROUNDING
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


@settings(max_examples=15, deadline=None)
@given(eps=st.floats(0.0, 0.5), steps=st.integers(0, 5), seed=st.integers(0, 1000))
def test_pgd_stays_in_budget_and_range(eps, steps, seed):
    params = small_net(seed % 3)
    x, y = images(9, seed)
    x_adv = attacks.pgd(params, x, y, eps, steps, attacks.default_pgd_step_size(eps, steps),
                        np.random.default_rng(seed))
    assert x_adv.dtype == np.float32
    assert np.max(np.abs(x_adv - x)) <= eps + ROUNDING
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0


def test_fgsm_direction_is_the_sign_of_the_numerical_gradient():
    """Pixels away from 0 and 1, so no clipping: (x_adv - x) / eps = sign(dCE/dx)."""
    params = small_net(1, dtype=np.float64)
    x, y = images(3, 1, low=0.2, high=0.8, dtype=np.float64)
    eps = 0.1
    probe = x.copy()
    numeric = numerical_gradient(lambda: ce(params, probe, y), probe)  # (3, 784)
    x_adv = attacks.fgsm(params, x, y, eps)
    assert x_adv.dtype == np.float64
    clear = np.abs(numeric) > 1e-9  # where the numerical sign is trustworthy
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(np.round((x_adv - x) / eps)[clear], np.sign(numeric)[clear])


def test_fgsm_from_predicted_labels_uses_the_predictions():
    params = small_net(2, dtype=np.float64)
    x, y = images(4, 2, low=0.2, high=0.8, dtype=np.float64)
    predicted = mlp.predict(params, x)
    y_wrong = (predicted + 1) % 10  # true labels that all disagree with the model
    probe = x.copy()
    numeric = numerical_gradient(lambda: ce(params, probe, predicted), probe)
    x_adv = attacks.fgsm(params, x, y_wrong, 0.1, craft_from="predicted")
    clear = np.abs(numeric) > 1e-9
    np.testing.assert_array_equal(np.round((x_adv - x) / 0.1)[clear], np.sign(numeric)[clear])
    # ... and it differs from the true-label attack
    assert not np.array_equal(x_adv, attacks.fgsm(params, x, y_wrong, 0.1))
    # y may be omitted when crafting from predictions
    np.testing.assert_array_equal(x_adv, attacks.fgsm(params, x, None, 0.1, craft_from="predicted"))


def test_pixels_with_zero_gradient_stay_put():
    params = small_net(3)
    dead = np.arange(0, 784, 7)
    params["W1"][dead] = 0.0  # these pixels cannot influence the output: gradient exactly 0
    x, y = images(5, 3, low=0.2, high=0.8)
    fgsm_adv = attacks.fgsm(params, x, y, 0.1)
    np.testing.assert_array_equal(fgsm_adv[:, dead], x[:, dead])
    live = np.setdiff1d(np.arange(784), dead)
    assert np.all(np.abs(fgsm_adv[:, live] - x[:, live]) > 0.09)  # the others all moved
    # PGD: the steps leave them where the random start put them
    start = attacks.pgd(params, x, y, 0.1, 0, 0.05, np.random.default_rng(0))
    stepped = attacks.pgd(params, x, y, 0.1, 3, 0.05, np.random.default_rng(0))
    np.testing.assert_array_equal(stepped[:, dead], start[:, dead])
    assert not np.array_equal(stepped[:, live], start[:, live])


def test_pixels_pushed_outside_are_clipped():
    params = small_net(4)
    x, y = images(6, 4)
    x[:, :392] = 0.0
    x[:, 392:] = 1.0
    x_adv = attacks.fgsm(params, x, y, 0.3)
    direction = np.sign(x_adv - x)
    assert np.all(direction[:, :392] >= 0) and np.all(direction[:, 392:] <= 0)
    assert np.any(direction[:, :392] > 0) and np.any(direction[:, 392:] < 0)


@pytest.mark.parametrize("chunk_size", [1, 7, 64])
def test_results_do_not_depend_on_chunking(chunk_size):
    """Exactly equal in float64. (In float32 BLAS rounding, which depends on the matrix
    shape, can flip the sign of a gradient at rounding level: next test.)"""
    params = small_net(5, dtype=np.float64)
    x, y = images(150, 5, dtype=np.float64)
    np.testing.assert_array_equal(attacks.fgsm(params, x, y, 0.2, chunk_size=chunk_size),
                                  attacks.fgsm(params, x, y, 0.2))
    np.testing.assert_array_equal(
        attacks.fgsm(params, x, None, 0.2, craft_from="predicted", chunk_size=chunk_size),
        attacks.fgsm(params, x, None, 0.2, craft_from="predicted"))
    np.testing.assert_array_equal(
        attacks.pgd(params, x, y, 0.2, 3, 0.1, np.random.default_rng(1), chunk_size=chunk_size),
        attacks.pgd(params, x, y, 0.2, 3, 0.1, np.random.default_rng(1)))


def test_float32_chunking_differs_only_where_the_gradient_is_rounding_noise():
    params = small_net(5)
    x, y = images(300, 5)
    whole = attacks.fgsm(params, x, y, 0.2)
    params64 = {k: v.astype(np.float64) for k, v in params.items()}
    logits, _, cache = mlp.forward(params64, x.astype(np.float64))
    dlogits = losses.softmax_cross_entropy_backward(
        float(len(x)), losses.softmax_cross_entropy_forward(logits, y)[1])
    grad = mlp.backward(dlogits, None, cache, need_param_grads=False)[1]  # float64 reference
    relative = np.abs(grad) / np.abs(grad).max(axis=1, keepdims=True)
    for chunk_size in (1, 7, 64):
        differ = attacks.fgsm(params, x, y, 0.2, chunk_size=chunk_size) != whole
        assert np.all(relative[differ] < 1e-5), relative[differ]
        assert differ.mean() < 1e-4


def test_deterministic_and_input_untouched():
    params = small_net(6)
    x, y = images(40, 6)
    x_before = x.copy()
    a1 = attacks.fgsm(params, x, y, 0.1)
    a2 = attacks.fgsm(params, x, y, 0.1)
    p1 = attacks.pgd(params, x, y, 0.1, 4, 0.05, np.random.default_rng(7))
    p2 = attacks.pgd(params, x, y, 0.1, 4, 0.05, np.random.default_rng(7))
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(p1, p2)
    np.testing.assert_array_equal(x, x_before)
    p3 = attacks.pgd(params, x, y, 0.1, 4, 0.05, np.random.default_rng(8))
    assert not np.array_equal(p1, p3)  # the random start really depends on the generator


def test_eps_zero_is_the_identity():
    params = small_net(7)
    x, y = images(10, 7)
    np.testing.assert_array_equal(attacks.fgsm(params, x, y, 0.0), x)
    pgd_adv = attacks.pgd(params, x, y, 0.0, 3, 0.1, np.random.default_rng(0))
    np.testing.assert_array_equal(pgd_adv, x)


def test_attacks_increase_the_loss():
    """Gradient *ascent*: a sign error in the attack would lower the loss instead."""
    params = small_net(8)
    x, y = images(200, 8)
    clean = ce(params, x, y)
    fgsm_loss = ce(params, attacks.fgsm(params, x, y, 0.05), y)
    pgd_loss = ce(params, attacks.pgd(params, x, y, 0.05, 10, 0.0125, np.random.default_rng(0)), y)
    assert fgsm_loss > clean + 0.1
    assert pgd_loss > clean + 0.1


def test_empty_batch():
    params = small_net(0)
    x = np.zeros((0, 784), dtype=np.float32)
    y = np.zeros(0, dtype=np.int64)
    assert attacks.fgsm(params, x, y, 0.1).shape == (0, 784)
    assert attacks.pgd(params, x, y, 0.1, 2, 0.05, np.random.default_rng(0)).shape == (0, 784)


def _bad_inputs():
    x, y = images(4, 0)
    nan_x = x.copy()
    nan_x[1, 5] = np.nan
    big_x = x.copy()
    big_x[0, 0] = 1.5
    neg_x = x.copy()
    neg_x[0, 0] = -0.1
    return [
        ("eps", dict(x=x, y=y, eps=-0.1)),
        ("eps", dict(x=x, y=y, eps=float("nan"))),
        ("eps", dict(x=x, y=y, eps=float("inf"))),
        ("x", dict(x=nan_x, y=y, eps=0.1)),
        ("x", dict(x=big_x, y=y, eps=0.1)),
        ("x", dict(x=neg_x, y=y, eps=0.1)),
        ("x", dict(x=x[:, :100], y=y, eps=0.1)),
        ("y", dict(x=x, y=y[:3], eps=0.1)),
        ("y", dict(x=x, y=np.array([0, 1, 2, 10]), eps=0.1)),
        ("y", dict(x=x, y=np.array([0, 1, -1, 3]), eps=0.1)),
    ]


@pytest.mark.parametrize("name, kwargs", _bad_inputs())
def test_bad_input_raises_a_clear_error(name, kwargs):
    params = small_net(0)
    with pytest.raises(ValueError, match=rf"^{name}:"):
        attacks.fgsm(params, **kwargs)
    with pytest.raises(ValueError, match=rf"^{name}:"):
        attacks.pgd(params, **kwargs, steps=2, step_size=0.05, rng=np.random.default_rng(0))


def test_bad_options_raise():
    params = small_net(0)
    x, y = images(4, 0)
    with pytest.raises(TypeError, match="^y:"):
        attacks.fgsm(params, x, y.astype(np.float32), 0.1)
    with pytest.raises(TypeError, match="^y:"):
        attacks.fgsm(params, x, None, 0.1)  # true labels are needed by default
    with pytest.raises(ValueError, match="^craft_from:"):
        attacks.fgsm(params, x, y, 0.1, craft_from="target")
    with pytest.raises(ValueError, match="^chunk_size:"):
        attacks.fgsm(params, x, y, 0.1, chunk_size=0)
    with pytest.raises(TypeError, match="^rng:"):
        attacks.pgd(params, x, y, 0.1, 2, 0.05, rng=0)
    with pytest.raises(ValueError, match="^steps:"):
        attacks.pgd(params, x, y, 0.1, -1, 0.05, np.random.default_rng(0))
    with pytest.raises(ValueError, match="^step_size:"):
        attacks.pgd(params, x, y, 0.1, 2, -0.05, np.random.default_rng(0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fgsm_from_a_shared_forward_is_the_same_attack(dtype):
    """The lab's step (fast/step.py) makes FGSM images from the anchors' forward, which the
    objective reuses: the same images as attacks.fgsm, bit for bit; and attacks.fgsm through
    the lab's network (net=FAST) is the readable one's."""
    params = small_net(3, dtype=dtype)
    x, y = images(9, seed=3, dtype=dtype)
    expected = attacks.fgsm(params, x, y, 0.1)
    np.testing.assert_array_equal(fgsm_sharing_forward(params, x, y, 0.1, FAST.forward(params, x)),
                                  expected)
    np.testing.assert_array_equal(attacks.fgsm(params, x, y, 0.1, net=FAST), expected)


def normed_net(seed=0, dtype=np.float64):
    """small_net with the authors' input normalisation as its first operation."""
    return network.with_input_norm(small_net(seed, dtype=dtype), *network.INPUT_NORMS["authors"])


def test_fgsm_through_the_input_norm_follows_the_pixel_gradient():
    """With the normalisation inside the network, FGSM steps along sign(dCE/dx) in pixel
    units (a numerical gradient of the whole network, normalisation included) and stays in
    [0, 1] -- it does not step in the normalised units the first layer sees."""
    params = normed_net(2)
    x, y = images(3, 2, low=0.2, high=0.8, dtype=np.float64)
    eps = 0.1
    probe = x.copy()
    numeric = numerical_gradient(lambda: ce(params, probe, y), probe)  # (3, 784)
    x_adv = attacks.fgsm(params, x, y, eps)
    clear = np.abs(numeric) > 1e-9
    assert clear.mean() > 0.9
    np.testing.assert_array_equal(np.round((x_adv - x) / eps)[clear], np.sign(numeric)[clear])
    # The same direction a second way: the chain rule by hand, dx = dz / std with std > 0,
    # so the sign is the one of the plain network's gradient at z = (x - mean) / std.
    plain = network.without_input_norm(params)
    z = (x - params["input_mean"]) / params["input_std"]
    np.testing.assert_array_equal(attacks.input_gradient_sign(params, x, y),
                                  attacks.input_gradient_sign(plain, z, y))


def test_pgd_through_the_input_norm_stays_in_pixel_budget_and_raises_the_loss():
    params = normed_net(3, dtype=np.float32)
    x, y = images(40, 3)
    eps = 0.1
    x_adv = attacks.pgd(params, x, y, eps, steps=5, step_size=0.05, rng=np.random.default_rng(0))
    assert np.max(np.abs(x_adv - x)) <= eps + ROUNDING
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    assert ce(params, x_adv, y) > ce(params, x, y)
