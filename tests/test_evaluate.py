"""evaluate: every number is a percentage with its count, each column is what it says."""
import json

import numpy as np
import pytest

from tinyadv import attacks, data, evaluate, mlp, network


@pytest.fixture(scope="module")
def net():
    rng = np.random.default_rng(0)
    params = mlp.init_params([784, 32, 16, 10], rng, init="he")
    for k in (1, 2, 3):
        params[f"b{k}"] = (0.1 * rng.standard_normal(params[f"b{k}"].shape)).astype(np.float32)
    return params


@pytest.fixture(scope="module")
def test_set(mnist_test):
    X, y = mnist_test
    X, y = X[:300], y[:300]
    rng = np.random.default_rng(1)
    x_inv = np.clip(X + rng.uniform(-0.2, 0.2, X.shape).astype(np.float32), 0, 1)
    y_flip = (y + rng.integers(1, 10, len(y))) % 10  # always another class
    return X, y, x_inv, y_flip


def test_accuracy_counts(net, test_set):
    X, _, _, _ = test_set
    pred = mlp.predict(net, X)
    y = pred.copy()
    y[:75] = (y[:75] + 1) % 10  # exactly 75 of 300 wrong
    result = evaluate.accuracy(net, X, y)
    assert result == {"percent": 75.0, "correct": 225, "total": 300}
    assert type(result["percent"]) is float and type(result["correct"]) is int
    assert evaluate.accuracy(net, X, pred)["percent"] == 100.0
    empty = evaluate.accuracy(net, X[:0], y[:0])
    assert empty["total"] == 0 and np.isnan(empty["percent"])


def test_evaluate_model_columns(net, test_set):
    X, y, x_inv, y_flip = test_set
    eps = 0.1
    result = evaluate.evaluate_model(net, X, y, x_inv, y_flip, fgsm_eps=eps, pgd_steps=5,
                                     rng=np.random.default_rng(3))
    gap = result.pop("fgsm_pgd_gap")
    assert gap == {"points": result["fgsm"]["percent"] - result["pgd"]["percent"]}
    assert tuple(result) == evaluate.KEYS
    assert set(result) == {"clean", "fgsm", "pgd", "invariance_source", "invariance_flipped",
                           "human_linf_eps03", "human_linf_eps04", "human_linf_manual_eps04",
                           "human_l0"}
    for key, value in result.items():
        assert set(value) == {"percent", "correct", "total"}, key
        assert value["percent"] == pytest.approx(100 * value["correct"] / value["total"])
    json.dumps(result)  # plain Python numbers, ready for a results file
    # each column is the accuracy on what it claims
    assert result["clean"] == evaluate.accuracy(net, X, y)
    assert result["fgsm"] == evaluate.accuracy(net, attacks.fgsm(net, X, y, eps), y)
    x_pgd = attacks.pgd(net, X, y, eps, 5, 2.5 * eps / 5, np.random.default_rng(3))
    assert result["pgd"] == evaluate.accuracy(net, x_pgd, y)
    assert result["invariance_source"] == evaluate.accuracy(net, x_inv, y)
    assert result["invariance_flipped"] == evaluate.accuracy(net, x_inv, y_flip)
    for name, total in (("linf_eps03", 100), ("linf_eps04", 100), ("linf_manual_eps04", 50),
                        ("l0", 100)):
        X_h, y_human, _ = data.load_tramer(name)
        assert result[f"human_{name}"] == evaluate.accuracy(net, X_h, y_human)
        assert result[f"human_{name}"]["total"] == total
    # the attacks hurt: they are gradient ascent on the loss
    assert result["fgsm"]["correct"] < result["clean"]["correct"]
    assert result["pgd"]["correct"] < result["clean"]["correct"]


def test_evaluate_model_is_reproducible_and_eps_zero_is_clean(net, test_set):
    X, y, x_inv, y_flip = test_set
    a = evaluate.evaluate_model(net, X, y, x_inv, y_flip, fgsm_eps=0.1)
    b = evaluate.evaluate_model(net, X, y, x_inv, y_flip, fgsm_eps=0.1)
    assert a == b
    zero = evaluate.evaluate_model(net, X, y, x_inv, y_flip, fgsm_eps=0.0)
    assert zero["fgsm"] == zero["clean"] == zero["pgd"]


def test_overfitting_warning_only_for_a_large_fgsm_pgd_gap():
    def results(fgsm, pgd):
        return {"fgsm": {"percent": fgsm}, "pgd": {"percent": pgd}}
    assert evaluate.overfitting_warning(results(91.4, 85.6)) == ""
    assert evaluate.overfitting_warning(results(93.5, 73.5)) == ""  # exactly the threshold
    warning = evaluate.overfitting_warning(results(93.5, 56.3))
    assert "37.2 points below" in warning and "catastrophic overfitting" in warning
    assert evaluate.overfitting_warning(results(93.5, 83.5), gap=5.0) != ""


def test_accuracy_vs_eps(net, test_set):
    X, y, _, _ = test_set
    eps_list = [0.0, 0.05, 0.2]
    curve = evaluate.accuracy_vs_eps(net, X, y, eps_list, attack="fgsm")
    assert [point["eps"] for point in curve] == eps_list
    assert curve[0]["correct"] == evaluate.accuracy(net, X, y)["correct"]
    for point, eps in zip(curve, eps_list):
        x_adv = attacks.fgsm(net, X, y, eps)
        assert point["correct"] == evaluate.accuracy(net, x_adv, y)["correct"]
        assert point["total"] == 300
    pgd_curve = evaluate.accuracy_vs_eps(net, X, y, eps_list, attack="pgd", pgd_steps=3,
                                         rng=np.random.default_rng(0))
    assert pgd_curve[0]["correct"] == curve[0]["correct"]
    assert pgd_curve[-1]["correct"] < pgd_curve[0]["correct"]


def test_bad_input(net, test_set):
    X, y, x_inv, y_flip = test_set
    with pytest.raises(ValueError, match="^x_inv_test:"):
        evaluate.evaluate_model(net, X, y, x_inv[:-1], y_flip[:-1], fgsm_eps=0.1)
    with pytest.raises(ValueError, match="^y_flip_test:"):
        evaluate.evaluate_model(net, X, y, x_inv, y_flip + 10, fgsm_eps=0.1)
    with pytest.raises(ValueError, match="^fgsm_eps:"):
        evaluate.evaluate_model(net, X, y, x_inv, y_flip, fgsm_eps=-0.1)
    with pytest.raises(ValueError, match="^pgd_steps:"):
        evaluate.evaluate_model(net, X, y, x_inv, y_flip, fgsm_eps=0.1, pgd_steps=-1)
    with pytest.raises(ValueError, match="^y:"):
        evaluate.accuracy(net, X, y[:-1])
    with pytest.raises(ValueError, match="^attack:"):
        evaluate.accuracy_vs_eps(net, X, y, [0.1], attack="cw")
    with pytest.raises(ValueError, match="^eps_list:"):
        evaluate.accuracy_vs_eps(net, X, y, [0.1, float("nan")])


def by_hand(params, x):
    """Predictions of a ReLU MLP without an embedding layer, written out with plain products:
    a second computation to check mlp.predict's use against."""
    out = x.astype(np.float64)
    if "input_std" in params:
        out = (out - float(params["input_mean"])) / float(params["input_std"])
    n_layers = mlp.num_layers(params)
    for k in range(1, n_layers):
        out = np.maximum(out @ params[f"W{k}"] + params[f"b{k}"], 0)
    return (out @ params[f"W{n_layers}"] + params[f"b{n_layers}"]).argmax(axis=1)


@pytest.fixture(scope="module")
def authors_set(mnist_test):
    """Stand-in for the authors' invariance test examples: 0..255 floats, 200 images."""
    X, y = mnist_test
    rng = np.random.default_rng(7)
    x255 = np.clip(X[:200] * 255 + rng.uniform(-76.5, 76.5, (200, 784)), 0, 255).astype(np.float32)
    return x255, y[:200].copy()


@pytest.mark.parametrize("normalised", [False, True])
def test_authors_invariance_is_scored_both_ways_against_the_source_label(net, authors_set,
                                                                        normalised):
    params = dict(net)
    if normalised:
        params = network.with_input_norm(params, *network.INPUT_NORMS["authors"])
    x255, y_source = authors_set
    result = evaluate.authors_invariance(params, x255, y_source)
    assert set(result) == set(evaluate.AUTHORS_KEYS)
    fed_right = np.mean(by_hand(params, x255 / np.float32(255)) == y_source) * 100
    raw = np.mean(by_hand(network.without_input_norm(params), x255) == y_source) * 100
    assert result["invariance_authors"]["percent"] == pytest.approx(fed_right)
    assert result["invariance_authors_raw"]["percent"] == pytest.approx(raw)
    assert result["invariance_authors"]["total"] == result["invariance_authors_raw"]["total"] == 200
    # The raw feeding really bypasses the normalisation: 0..255 straight into layer 1.
    assert result["invariance_authors_raw"] == evaluate.score(
        mlp.predict(network.without_input_norm(params), x255), y_source)


def test_authors_invariance_rejects_bad_input(net, authors_set):
    x255, y_source = authors_set
    with pytest.raises(ValueError, match="x_inv_255.*0, 255"):
        evaluate.authors_invariance(net, x255 + 300, y_source)
    with pytest.raises(ValueError, match="x_inv_255.*shape"):
        evaluate.authors_invariance(net, x255[:, :100], y_source)
    with pytest.raises(ValueError, match="y_source"):
        evaluate.authors_invariance(net, x255, y_source[:-1])
    with pytest.raises(TypeError, match="x_inv_255"):
        evaluate.authors_invariance(net, x255.astype(np.uint8), y_source)
