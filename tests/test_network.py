"""The CNN wired in (TrainConfig.arch = "cnn"): one place picks the network (network.py), and
the objective, FGSM, PGD, training, evaluation, the reproduction and the benchmark run it
unchanged, readable or fast (fast/network.py); arch = "mlp" (the default) changes nothing,
not even a saved run's key."""
import json

import numpy as np
import pytest

from tinyadv import attacks, cnn, data, evaluate, mlp, network, train
from tinyadv.fast import cnn as fast_cnn
from tinyadv.fast.network import FAST
from tinyadv.fast.objective import fast_objective
from tinyadv.fast.step import fast_train_step
from tinyadv.lab import bench, reproduce
from tinyadv.lab.configs import RunConfig, model_config, preset_config
from tinyadv.objective import objective, random_negatives

AGREE = dict(rtol=1e-10, atol=1e-13)


@pytest.fixture(scope="module")
def small_mnist():
    X, y = data.load_mnist("train")
    return X[:128], y[:128]


def cnn64(seed):
    return cnn.init_params(np.random.default_rng(seed), dtype=np.float64)


def test_arch_is_a_config_field_left_out_of_an_mlps_dict():
    assert train.TrainConfig().arch == "mlp"
    assert "arch" not in RunConfig().to_dict()  # an MLP run saved before keeps its key
    config = preset_config("paper-4d", arch="cnn")
    assert config.to_dict()["arch"] == "cnn"
    assert RunConfig.from_dict(config.to_dict()) == config
    assert config.replace(epochs=2).arch == "cnn"
    assert RunConfig.parse_field("arch", "cnn") == "cnn"
    with pytest.raises(ValueError, match="arch: expected one of"):
        train.TrainConfig(arch="resnet")
    with pytest.raises(ValueError, match="init: expected 'uniform' with arch 'cnn'"):
        train.TrainConfig(arch="cnn", init="he")


def test_one_place_picks_the_network():
    cnn_params = cnn.init_params(np.random.default_rng(0))
    mlp_params = mlp.init_params([784, 8, 10], np.random.default_rng(0))
    assert network.arch(cnn_params) == "cnn" and network.READABLE.module(cnn_params) is cnn
    assert network.arch(mlp_params) == "mlp" and network.READABLE.module(mlp_params) is mlp
    assert FAST.module(cnn_params) is fast_cnn and FAST.module(mlp_params) is mlp
    assert network.input_dim(cnn_params) == network.input_dim(mlp_params) == 784
    assert network.num_classes(cnn_params) == 10 and network.embedding_width(cnn_params) == 4
    for bad in ({"W": np.zeros(3)}, [1, 2]):
        with pytest.raises(TypeError, match="params: expected the dict of an MLP"):
            network.arch(bad)
    rng = np.random.default_rng(1)
    config = train.TrainConfig(arch="cnn", input_norm="authors")
    params = network.init_params(config, rng)
    assert network.arch(params) == "cnn" and "input_std" in params


@pytest.mark.parametrize("config", ["baseline", "full", "oracle"])
def test_fast_objective_agrees_with_the_readable_one_on_the_cnn(config):
    """The fast objective with FGSM's forward of the anchors reused (fast/cnn.py keeps the
    two forwards apart; fast/network.py's backward adds their gradients) equals the readable
    one."""
    rng = np.random.default_rng(3)
    params = cnn64(3)
    n = 4
    x, y = rng.random((n, 784)), np.array([0, 1, 1, 2])
    kwargs = dict(margin=0.2, ce_on="fgsm")  # the baseline's anchors carry no gradient
    kwargs["x_adv"] = np.clip(x + 0.1 * np.sign(rng.standard_normal(x.shape)), 0, 1)
    if config in ("full", "oracle"):
        kwargs.update(x_inv=rng.random((n, 784)), lambda_sens=0.5, lambda_inv=0.5,
                      lambda_norm=0.01, neg_index="hardest")
    if config == "oracle":
        kwargs.update(x_inv_neg=rng.random((n, 784)), neg_index=random_negatives(y, rng))
    loss, grads, terms = objective(params, x, y, **kwargs)
    for fast in (fast_objective(params, x, y, **kwargs),
                 fast_objective(params, x, y, anchor_forward=FAST.forward(params, x), **kwargs)):
        np.testing.assert_allclose(fast[0], loss, **AGREE)
        for key in terms:
            np.testing.assert_allclose(fast[2][key], terms[key], **AGREE, err_msg=key)
        assert sorted(fast[1]) == sorted(grads) == sorted(network.trainable_keys(params))
        for key in grads:
            np.testing.assert_allclose(fast[1][key], grads[key], **AGREE, err_msg=key)


@pytest.mark.parametrize("net", [network, FAST], ids=["readable", "fast"])
def test_fgsm_and_pgd_on_the_cnn(net):
    params = cnn64(4)
    rng = np.random.default_rng(4)
    x, y = rng.random((6, 784)), rng.integers(0, 10, 6)
    x_adv = attacks.fgsm(params, x, y, 0.1, net=net)
    logits, _, cache = cnn.forward(params, x)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    probs[np.arange(6), y] -= 1  # d sum_i CE_i / d logits
    _, dx = cnn.backward(probs, None, cache)
    np.testing.assert_array_equal(x_adv, np.clip(x + 0.1 * np.sign(dx), 0, 1))
    np.testing.assert_array_equal(attacks.fgsm(params, x, y, 0.1, chunk_size=4, net=net), x_adv)
    x_pgd = attacks.pgd(params, x, y, 0.1, 3, 0.05, np.random.default_rng(0), net=net)
    assert np.max(np.abs(x_pgd - x)) <= 0.1 + 1e-12 and x_pgd.min() >= 0 and x_pgd.max() <= 1
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 784\)"):
        attacks.fgsm(params, x[:, :100], y, 0.1)


def test_training_the_cnn_is_deterministic_and_lowers_the_loss(small_mnist):
    X, y = small_mnist
    x_inv = np.clip(X[::-1] * 0.5 + X * 0.5, 0, 1).astype(np.float32)
    y_flip = (y + 1) % 10
    config = model_config("baseline+mls+mli", preset_config(
        "paper-4d", arch="cnn", epochs=2, batch_size=32)).train
    params, history = train.train(config, X, y, x_inv, y_flip, log=None, step=fast_train_step)
    again, history_again = train.train(config, X, y, x_inv, y_flip, log=None,
                                       step=fast_train_step)
    assert network.arch(params) == "cnn" and all(v.dtype == np.float32 for v in params.values())
    assert all(np.array_equal(params[k], again[k]) for k in params)
    assert [dict(h, seconds=0) for h in history] == [dict(h, seconds=0) for h in history_again]
    assert history[-1]["total"] < history[0]["total"]
    assert history[0]["active_sens"] > 0 and history[0]["active_inv"] > 0


def test_evaluation_scores_the_cnn(small_mnist):
    X, y = small_mnist
    params = cnn.init_params(np.random.default_rng(5))
    result = evaluate.accuracy(params, X[:50], y[:50], net=FAST)
    assert result["total"] == 50
    assert np.array_equal(network.predict(params, X[:50]), cnn.predict(params, X[:50]))
    assert result == evaluate.accuracy(params, X[:50], y[:50])  # the readable network agrees
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 784\)"):
        evaluate.accuracy(params, X[:5, :700], y[:5])


def test_reproduce_trains_the_cnn_with_set_arch(tmp_path, capsys, monkeypatch):
    import fake_tramer

    fake_tramer.install(monkeypatch)
    code = reproduce.main(["--train-size", "200", "--test-size", "10", "--epochs", "1",
                           "--seeds", "0", "--preset", "paper-4d", "--set", "arch=cnn",
                           "--out", str(tmp_path)])
    assert code == 0, capsys.readouterr().out
    table = json.loads((tmp_path / "table1.json").read_text())["table"]
    assert len(table) == len(train.MODELS)
    record = json.loads((tmp_path / "runs" / "baseline__seed0.json").read_text())
    assert record["key"]["config"]["arch"] == "cnn"
    weights = np.load(tmp_path / "runs" / "baseline__seed0.npz", allow_pickle=False)
    assert "W_conv2" in weights.files and weights["W_conv2"].shape == (64, 32, 5, 5)


def test_bench_times_the_cnn_and_prints_another_implementation_beside(tmp_path, capsys):
    other = tmp_path / "pytorch.json"
    other.write_text(json.dumps({"baseline_ms_per_step": 80.0, "full_ms_per_step": 160.0,
                                 "label": "PyTorch"}))
    assert bench.main(["--json", "--arch", "cnn", "--preset", "paper-4d", "--batch", "8",
                       "--steps", "2", "--warmup", "1", "--inv-queries", "0", "--gemm-size",
                       "32", "--compare", str(other)]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["arch"] == "cnn" and result["baseline_ms_per_step"] > 0
    assert result["compare"]["full_ratio"] == pytest.approx(result["full_ms_per_step"] / 160.0)
    mlp_keys = set(bench.run(sizes=[784, 8, 10], batch=4, steps=1, warmup=0, inv_queries=0,
                             gemm_size=32))
    assert set(result) == mlp_keys | {"compare"}  # the same keys as the MLP's
    # Flops: the CNN's layer multiply-adds (bench's docstring), 4,066,344 an image.
    authors = preset_config("paper-4d", arch="cnn")
    baseline = model_config("baseline", authors)
    per_image = sum(bench.CNN_LAYER_MACS)
    assert per_image == 4_066_344
    # FGSM (forward + input gradient) and the objective on [x'] (forward, dW, dx but conv1's)
    assert bench.step_flops([784, 10], 128, baseline) == (
        2 * 2 * per_image * 128 + 3 * 2 * per_image * 128 - 2 * 128 * 460_800)
    for bad in ({"full_ms_per_step": 1.0}, [1, 2], {"baseline_ms_per_step": -1,
                                                     "full_ms_per_step": 1}):
        other.write_text(json.dumps(bad))
        with pytest.raises(ValueError, match="--compare"):
            bench.read_comparison(str(other))


def test_the_authors_fgsm_runs_the_cnn_through_the_network_it_is_given():
    from tinyadv import authors_code

    params = network.with_input_norm(cnn.init_params(np.random.default_rng(6), np.float64),
                                     *network.INPUT_NORMS["authors"])
    rng = np.random.default_rng(6)
    x, y = rng.random((3, 784)), rng.integers(0, 10, 3)
    np.testing.assert_array_equal(authors_code.fgsm(params, x, y),
                                  authors_code.fgsm(params, x, y, net=FAST))
    with pytest.raises(TypeError, match="net: expected a network"):
        authors_code.fgsm(params, x, y, net=cnn.init_params)
