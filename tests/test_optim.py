"""SGD and Adam on quadratics whose minimum we know, plus their state and argument checks."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyadv.optim import SGD, Adam, make_optimizer

seeds = st.integers(0, 2 ** 32 - 1)


def quadratic(seed):
    """f(w) = 1/2 sum_k a_k (w_k - c_k)^2 over two parameter arrays; minimum at w = c."""
    rng = np.random.default_rng(seed)
    a = {"W1": rng.uniform(0.5, 5.0, (3, 4)), "b1": rng.uniform(0.5, 5.0, 4)}
    c = {k: rng.standard_normal(v.shape) for k, v in a.items()}
    w = {k: 3 * rng.standard_normal(v.shape) for k, v in a.items()}

    def grads(params):
        return {k: a[k] * (params[k] - c[k]) for k in params}

    def distance(params):
        return max(float(np.max(np.abs(params[k] - c[k]))) for k in params)

    return w, grads, distance


@settings(max_examples=25, deadline=None)
@given(seed=seeds, name=st.sampled_from(["sgd", "adam"]))
def test_optimizers_reach_the_minimum_of_a_quadratic(seed, name):
    params, grads, distance = quadratic(seed)
    start = distance(params)
    opt = make_optimizer(name, params, lr=0.05)
    # 1000 steps: Adam moves at most ~lr per coordinate and step, and the start can be ~10
    # away (the slowest seed seen needed ~800 steps). Near the minimum a constant-lr Adam
    # shows small bursts (v decays faster than m), hence "1e-3 of the start", not "exact".
    for _ in range(1000):
        opt.step(params, grads(params))
    assert distance(params) < 1e-3 * start


@pytest.mark.parametrize("name", ["sgd", "adam"])
def test_each_step_goes_downhill_at_first(name):
    params, grads, distance = quadratic(0)
    opt = make_optimizer(name, params, lr=0.01)
    previous = distance(params)
    for _ in range(5):  # far from the minimum, small steps: the distance must fall
        opt.step(params, grads(params))
        assert distance(params) < previous
        previous = distance(params)


@settings(max_examples=30, deadline=None)
@given(seed=seeds, lr=st.floats(1e-4, 1.0),
       log_magnitude=st.floats(-2, 3))  # |g| from 1e-2 to 1e3
def test_adam_first_step_has_size_lr_per_coordinate(seed, lr, log_magnitude):
    rng = np.random.default_rng(seed)
    g = rng.choice([-1.0, 1.0], size=(3, 5)) * 10 ** log_magnitude * rng.uniform(1, 2, (3, 5))
    params = {"W": rng.standard_normal((3, 5))}
    before = params["W"].copy()
    Adam(params, lr=lr).step(params, {"W": g})
    # After one step m_hat = g and v_hat = g^2, so the step is lr * g / (|g| + eps'):
    # lr * sign(g) up to eps' / |g| <= 3.2e-7 / 1e-2 (eps' = 1e-8 / sqrt(1 - beta2) here).
    np.testing.assert_allclose(before - params["W"], lr * np.sign(g), rtol=1e-4)


def test_adam_leaves_zero_gradient_coordinates_alone():
    params = {"W": np.array([1.0, 2.0, 3.0])}
    Adam(params, lr=0.1).step(params, {"W": np.array([0.0, 5.0, 0.0])})
    assert params["W"][0] == 1.0 and params["W"][2] == 3.0 and params["W"][1] < 2.0


def test_sgd_first_step_is_minus_lr_times_the_gradient():
    params = {"W": np.array([1.0, -2.0])}
    SGD(params, lr=0.1, momentum=0.9).step(params, {"W": np.array([3.0, 4.0])})
    np.testing.assert_allclose(params["W"], [0.7, -2.4], rtol=1e-15)


def test_state_is_shaped_like_the_params_and_dtypes_are_kept():
    params = {"W1": np.zeros((4, 3), np.float32), "b1": np.zeros(3, np.float32)}
    grads = {"W1": np.ones((4, 3), np.float32), "b1": np.ones(3, np.float32)}
    adam, sgd = Adam(params, lr=0.01), SGD(params, lr=0.01)
    for state in (adam.m, adam.v, sgd.velocity):
        assert sorted(state) == sorted(params)
        assert all(state[k].shape == params[k].shape and state[k].dtype == np.float32
                   for k in params)
    W1 = params["W1"]
    adam.step(params, grads)
    assert adam.t == 1
    assert params["W1"] is W1 and W1.dtype == np.float32  # updated in place
    assert np.all(adam.m["W1"] != 0) and np.all(adam.v["W1"] != 0)
    sgd.step(params, grads)
    assert np.all(sgd.velocity["b1"] == np.float32(-0.01))


@pytest.mark.parametrize("lr", [0.0, -0.1, float("nan"), float("inf")])
@pytest.mark.parametrize("cls", [SGD, Adam])
def test_bad_learning_rate_is_rejected(cls, lr):
    with pytest.raises(ValueError, match="lr"):
        cls({"W": np.zeros(2)}, lr=lr)


@pytest.mark.parametrize("momentum", [-0.1, 1.0, float("nan")])
def test_bad_momentum_is_rejected(momentum):
    with pytest.raises(ValueError, match="momentum"):
        SGD({"W": np.zeros(2)}, lr=0.1, momentum=momentum)


def test_unknown_optimizer_is_rejected():
    with pytest.raises(ValueError, match="optimizer.*'rmsprop'"):
        make_optimizer("rmsprop", {"W": np.zeros(2)}, lr=0.1)
