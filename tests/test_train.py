"""TrainConfig validation, the training loop, the readable step against the lab's fast one and
the authors' (every configuration), and the oracle-positive sampler."""
import copy
import dataclasses
import hashlib
import json
import os

import numpy as np
import pytest

from tinyadv import data, invariance, network, train
from tinyadv.fast.step import fast_train_step
from tinyadv.lab.configs import PRESET_ROWS, PRESETS, RunConfig, model_config as row_config
from tinyadv.lab.configs import preset_config
from tinyadv.optim import make_optimizer
from tinyadv.train import MODELS, OraclePositives, TrainConfig, model_config

GOLDEN = os.path.join(os.path.dirname(__file__), "golden")


def test_config_defaults_are_the_papers_weights_where_they_apply():
    full = model_config("baseline+mls+mli")
    assert (full.margin, full.lambda_sens, full.lambda_inv, full.lambda_norm) == (0.05, 0.5, 0.5, 1e-3)
    assert full.negatives == "hardest" and full.protocol == "source"
    assert model_config("baseline").lambda_sens == 0 and model_config("baseline").adversarial
    assert model_config("baseline+mls+mli(oracle)").protocol == "oracle"
    assert TrainConfig().fgsm_eps == 0.1


def test_config_holds_only_what_the_papers_step_reads():
    assert len(dataclasses.fields(TrainConfig)) <= 20
    for name in ("fgsm_clamp", "triplet", "invariance_generator", "train_size", "inv_eps"):
        assert name not in {f.name for f in dataclasses.fields(TrainConfig)}


def test_config_is_frozen():
    with pytest.raises(Exception):
        TrainConfig().lr = 1.0


def test_unknown_config_key_is_an_error_naming_it():
    with pytest.raises(ValueError, match="learning_rate"):
        TrainConfig.from_dict({"learning_rate": 0.1})
    with pytest.raises(ValueError, match="unknown config key"):
        TrainConfig().replace(epoch=3)


@pytest.mark.parametrize("field, value", [
    ("lr", 0.0), ("lr", -1.0), ("optimizer", "rmsprop"), ("batch_size", 1), ("epochs", -1),
    ("fgsm_eps", -0.1), ("fgsm_eps", 2.0), ("protocol", "human"), ("negatives", "easiest"),
    ("lambda_inv", -0.5), ("sizes", (10, 5, 2)), ("lr_schedule", "step"),
    ("init", "xavier"), ("embed_dim", -1), ("embed_dim", 2.0), ("ce_on", "clean"),
    ("input_norm", "imagenet"), ("arch", "resnet"), ("adversarial", 1),
])
def test_bad_config_values_are_rejected_with_the_field_name(field, value):
    with pytest.raises(ValueError, match=field.split("_")[0]):
        TrainConfig(**{field: value})


def test_ce_on_fgsm_needs_fgsm_images():
    with pytest.raises(ValueError, match="ce_on: expected 'clean\\+fgsm' or 'clean\\+invariance' "
                                         "when adversarial is false"):
        TrainConfig(ce_on="fgsm", adversarial=False)
    assert TrainConfig(adversarial=False).ce_on == "clean+fgsm"
    assert TrainConfig(ce_on="clean+invariance", adversarial=False).uses_invariance


def test_config_round_trips_through_a_dict():
    config = model_config("baseline+mls+mli(oracle)").replace(seed=3)
    assert TrainConfig.from_dict(dataclasses.asdict(config)) == config


def test_unknown_model_is_an_error():
    with pytest.raises(ValueError, match="model"):
        model_config("baseline+everything")


def test_oracle_positives_have_the_anchors_class_as_flipped_label():
    rng = np.random.default_rng(0)
    y_flip = rng.integers(0, 10, size=500)
    y_anchor = rng.integers(0, 10, size=128)
    sampler = OraclePositives(y_flip)
    j = sampler.draw(y_anchor, rng)
    assert np.array_equal(y_flip[j], y_anchor)
    # every example flipped to class c is reachable: draw many and count distinct indices
    many = sampler.draw(np.full(20000, 3), rng)
    assert set(many) == set(np.flatnonzero(y_flip == 3))


def test_oracle_positives_need_every_class():
    with pytest.raises(ValueError, match="y_flip"):
        OraclePositives(np.array([0, 1, 2]))


@pytest.fixture(scope="module")
def small_mnist():
    X, y = data.load_mnist("train")
    X, y = X[:512], y[:512]
    # stand-in invariance examples: a neighbour-free perturbation with a "flipped" label,
    # enough to exercise the training code paths (the real generator is tested elsewhere)
    x_inv = np.clip(X[::-1] * 0.5 + X * 0.5, 0, 1).astype(np.float32)
    y_flip = y[::-1].copy()
    same = y_flip == y
    y_flip[same] = (y[same] + 1) % 10
    return X, y, x_inv, y_flip


CASES = [(preset, model) for preset in PRESETS for model in PRESET_ROWS[preset]]


@pytest.mark.parametrize("preset, model", CASES)
def test_training_is_deterministic_and_lowers_the_loss(model, preset, small_mnist):
    """Every row of every preset, with the step the lab trains it with (the authors' code on
    a small MLP: the CNN has tests of its own), trained twice: the same numbers; the loss
    falls; the triplets act."""
    X, y, x_inv, y_flip = small_mnist
    config = row_config(model, preset_config(preset), PRESET_ROWS[preset]).replace(
        epochs=3, batch_size=64, sizes=(784, 32, 16, 10), arch="mlp")
    xi, yf = (x_inv, y_flip) if config.uses_invariance else (None, None)

    def run(c):
        return train.train(c.train, X, y, xi, yf, log=None, step=c.training_step())
    params_a, history_a = run(config)
    params_b, history_b = run(config)
    for k in params_a:
        assert params_a[k].dtype == np.float32  # training runs in float32
        assert np.array_equal(params_a[k], params_b[k])  # same seed, same numbers
    assert history_a == [dict(h, seconds=a["seconds"]) for h, a in zip(history_b, history_a)]
    assert history_a[-1]["total"] < history_a[0]["total"]
    if config.lambda_sens:
        assert history_a[0]["triplet_sens"] > 0 and history_a[0]["active_sens"] > 0
    if config.lambda_inv:
        assert history_a[0]["triplet_inv"] > 0 and history_a[0]["active_inv"] > 0
    assert not np.array_equal(run(config.replace(seed=1))[0]["W1"], params_a["W1"])


def test_invariance_models_need_invariance_examples(small_mnist):
    X, y, _, _ = small_mnist
    for config in (model_config("baseline+mls+mli"), TrainConfig(ce_on="clean+invariance")):
        with pytest.raises(ValueError, match="x_inv"):
            train.train(config.replace(epochs=1), X, y, log=None)


def test_progress_line_per_epoch(small_mnist):
    X, y, x_inv, y_flip = small_mnist
    lines = []
    train.train(TrainConfig(epochs=2, sizes=(784, 16, 16, 10)), X, y, log=lines.append)
    assert len(lines) == 2
    assert "epoch 2/2" in lines[1] and "loss" in lines[1] and "train acc" in lines[1]
    assert "left" in lines[0]


def test_hooks_see_every_step_and_epoch_and_change_nothing(small_mnist):
    """on_step gets (step number, the current weights, the step's terms) after every step,
    on_epoch (epoch, weights, the history record) after every epoch, and its text ends the
    epoch's log line; watching leaves the run exactly as it is without hooks."""
    X, y, x_inv, y_flip = small_mnist
    X, y = X[:384], y[:384]
    config = model_config("baseline+mls", TrainConfig(epochs=2, sizes=(784, 16, 16, 10)))
    steps, epochs, lines = [], [], []

    def on_step(step, params, terms):
        steps.append((step, float(params["b1"][0]), terms["total"]))

    def on_epoch(epoch, params, record):
        epochs.append((epoch, record))
        return f"looked at epoch {epoch}"

    params, history = train.train(config, X, y, log=lines.append, on_step=on_step,
                                  on_epoch=on_epoch)
    plain, plain_history = train.train(config, X, y, log=None)
    assert [s for s, _, _ in steps] == list(range(1, 2 * 384 // 128 + 1))
    assert len({b for _, b, _ in steps}) == len(steps)  # the weights move between calls
    assert steps[-1][1] == float(plain["b1"][0])  # the last call saw the final weights
    assert [e for e, _ in epochs] == [1, 2] and [r for _, r in epochs] == history
    assert history[0]["total"] == pytest.approx(np.mean([t for _, _, t in steps[:3]]))
    assert lines[1].endswith("| looked at epoch 2")
    assert all(np.array_equal(params[k], plain[k]) for k in plain)
    strip = lambda h: [{k: v for k, v in r.items() if k != "seconds"} for r in h]  # noqa: E731
    assert strip(history) == strip(plain_history)


def test_a_handed_in_step_runs_instead_of_the_readable_one(small_mnist):
    X, y, _, _ = small_mnist
    seen = []

    def step(params, opt, config, batch, rng):
        seen.append(batch.x.shape)
        return {"total": 1.0, "ce": 1.0, "triplet_sens": 0.0, "active_sens": 0.0,
                "triplet_inv": 0.0, "active_inv": 0.0, "norm": 0.0}
    params, _ = train.train(TrainConfig(epochs=1, batch_size=128, sizes=(784, 8, 10)), X, y,
                            log=None, step=step)
    assert seen == [(128, 784)] * 4
    fresh = network.init_params(TrainConfig(sizes=(784, 8, 10)), np.random.default_rng(0))
    assert all(np.array_equal(params[k], fresh[k]) for k in fresh)  # nothing else trained


def test_draw_batch_brings_what_the_protocol_needs():
    rng = np.random.default_rng(0)
    X = rng.random((40, 784), dtype=np.float32)
    y = np.arange(40) % 10
    x_inv = X[::-1].copy()
    idx = np.array([3, 7, 11])
    plain = train.draw_batch(TrainConfig(), idx, X, y)
    assert plain.x_inv is None and plain.x_inv_neg is None
    assert np.array_equal(plain.x, X[idx]) and np.array_equal(plain.y, y[idx])
    source = train.draw_batch(model_config("baseline+mls+mli"), idx, X, y, x_inv)
    assert np.array_equal(source.x_inv, x_inv[idx]) and source.x_inv_neg is None
    y_flip = (y + 1) % 10
    oracle = train.draw_batch(model_config("baseline+mls+mli(oracle)"), idx, X, y, x_inv,
                              OraclePositives(y_flip), rng)
    j = [int(np.flatnonzero((x_inv == row).all(axis=1))[0]) for row in oracle.x_inv]
    assert np.array_equal(y_flip[j], y[idx])  # flipped *to* the anchor's class
    assert np.array_equal(oracle.x_inv_neg, X[j])  # with their own source images


def test_learning_rate_schedules():
    cosine, constant = TrainConfig(lr=0.1), TrainConfig(lr=0.1, lr_schedule="constant")
    assert train.learning_rate(cosine, 0, 10) == 0.1
    assert train.learning_rate(cosine, 5, 10) == pytest.approx(0.05)
    assert train.learning_rate(cosine, 10, 10) == pytest.approx(0.0)
    assert train.learning_rate(constant, 7, 10) == 0.1


# ---- the readable step, the lab's fast step, and the authors' step ------------------------

class GradientRecorder:
    """An optimiser that keeps the gradients it is handed instead of stepping."""

    def step(self, params, grads):
        self.grads = grads


STEP_CASES = [  # (TrainConfig fields, network), every term and protocol of Eq. 2
    *[(dict(MODELS[m]), arch) for m in MODELS for arch in ("mlp", "mlp4")],
    *[(dict(MODELS[m]), "cnn") for m in ("baseline+mls+mli", "baseline+mls+mli(oracle)")],
    (dict(ce_on="fgsm", lambda_sens=0.5, lambda_norm=1e-3), "mlp4"),
    (dict(ce_on="fgsm"), "cnn"),
    (dict(adversarial=False), "mlp"),
    (dict(adversarial=False, ce_on="clean+invariance"), "mlp4"),
    (dict(ce_on="clean+invariance", lambda_sens=0.5, lambda_inv=0.5, lambda_norm=1e-3), "cnn"),
    (dict(negatives="random", lambda_sens=0.5, lambda_inv=0.5, lambda_norm=1e-3), "mlp"),
    (dict(input_norm="authors", lambda_sens=0.5, lambda_inv=0.5, lambda_norm=1e-3), "mlp4"),
    (dict(input_norm="authors", lambda_sens=0.5, lambda_inv=0.5, lambda_norm=1e-3), "cnn"),
]
NETWORKS = {"mlp": dict(sizes=(784, 24, 16, 10)), "mlp4": dict(sizes=(784, 24, 16, 10), embed_dim=4),
            "cnn": dict(arch="cnn")}


@pytest.mark.parametrize("fields, net", STEP_CASES)
def test_the_fast_step_computes_the_readable_steps_numbers(fields, net):
    """In float64, one step from the same weights and batch: the gradients handed to the
    optimiser and every loss term agree to 1e-9 (relative), every configuration, both
    networks -- the lab's fast step (fast/step.py) is the paper's step."""
    n = 8 if net == "cnn" else 12  # anchors; the readable CNN loops over positions
    config = TrainConfig(batch_size=n, **NETWORKS[net], **fields)
    rng = np.random.default_rng(4)
    X = rng.random((12, 784))  # float64 images; the batch is the first n
    y = np.arange(12) % 4
    x_inv = np.clip(X[::-1] * 0.6 + 0.3 * rng.random((12, 784)), 0, 1)
    oracle = OraclePositives((np.arange(12) + 5) % 10)  # flipped labels: every class
    params = network.init_params(config, np.random.default_rng(1), dtype=np.float64)
    xi = x_inv if config.uses_invariance else None
    results = []
    for step in (train.train_step, fast_train_step):
        draw = np.random.default_rng(9)  # the same oracle positives and random negatives
        batch = train.draw_batch(config, np.arange(n), X, y, xi, oracle, draw)
        recorder = GradientRecorder()
        terms = step(copy.deepcopy(params), recorder, config, batch, draw)
        results.append((recorder.grads, terms))
    (readable, readable_terms), (fast, fast_terms) = results
    assert sorted(readable) == sorted(fast) == sorted(network.trainable_keys(params))
    for key in readable:
        scale = max(np.abs(readable[key]).max(), 1e-12)
        assert np.abs(readable[key] - fast[key]).max() <= 1e-9 * scale, key
    for key, value in readable_terms.items():
        assert fast_terms[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def _params_sha256(params):
    digest = hashlib.sha256()
    for key in sorted(params):
        digest.update(key.encode())
        digest.update(np.ascontiguousarray(params[key]).tobytes())
    return digest.hexdigest()


GOLDEN_STEPS = json.load(open(os.path.join(GOLDEN, "steps.json")))


@pytest.fixture(scope="module")
def golden_data():
    X, y = data.load_mnist("train")
    X, y = X[:160].copy(), y[:160].copy()
    x_inv, y_flip = invariance.label_flip(X, y, X, y, 0.4, exclude_self=True)
    return X, y, x_inv, y_flip


@pytest.mark.parametrize("name", sorted(GOLDEN_STEPS["runs"]))
def test_the_labs_steps_train_what_the_code_before_them_trained(name, golden_data):
    """Five float32 steps of the paper's rows (the fast step) and of the authors' variants
    (authors_code.authors_step), against what train.train_step computed before the steps
    were handed in (tests/golden/steps.json, recorded at 23f27e7): bit for bit on the machine
    they were recorded on; elsewhere a BLAS may round its sums differently, so there the
    weights must agree to float32 accuracy."""
    golden = GOLDEN_STEPS["runs"][name]
    X, y, x_inv, y_flip = golden_data
    config = RunConfig.from_dict({**GOLDEN_STEPS["common"], **golden["config"]})
    n = golden.get("train_images", len(X))  # the CNN's runs: fewer images, fewer steps
    X, y, x_inv, y_flip = X[:n], y[:n], x_inv[:n], y_flip[:n]
    xi, yf = (x_inv, y_flip) if config.uses_invariance else (None, None)
    params, history = train.train(config.train, X, y, xi, yf, log=None,
                                  step=config.training_step())
    if _params_sha256(params) == golden["sha256"]:
        assert {k: v for k, v in history[0].items() if k != "seconds"} == golden["terms"]
        return
    for key, expected in golden["abs_sums"].items():
        assert np.abs(params[key].astype(np.float64)).sum() == pytest.approx(expected, rel=1e-4)


@pytest.mark.parametrize("preset, model", CASES)
def test_a_training_step_leaves_no_reference_cycles(model, preset):
    """A step's arrays must be freed when it returns, not at the next garbage collection: a
    cycle (e.g. a self-referencing closure) kept each step's activations alive, grew the heap
    by ~400 KB a step and cost ~100 page faults a step until the collector ran."""
    import gc
    rng = np.random.default_rng(0)
    X = rng.random((64, 784), dtype=np.float32)
    y = np.arange(64) % 10
    config = row_config(model, preset_config(preset, sizes=(784, 16, 16, 10), batch_size=16,
                                             arch="mlp"), PRESET_ROWS[preset])
    params = network.init_params(config.train, rng)
    opt = make_optimizer(config.optimizer, params, config.lr)
    x_inv = X if config.uses_invariance else None
    oracle = OraclePositives(y) if config.protocol == "oracle" and x_inv is not None else None
    for step_fn in (config.training_step(), train.train_step):
        for step in range(4):  # the first step may leave one-time import garbage: not counted
            if step == 1:
                gc.collect()
                gc.disable()
            idx = rng.choice(64, 16, replace=False)
            batch = train.draw_batch(config.train, idx, X, y, x_inv, oracle, rng)
            if step_fn is train.train_step and not config.authors.is_paper():
                break  # the readable step is the paper's only
            step_fn(params, opt, config.train, batch, rng)
        try:
            assert gc.collect() == 0, "a training step left garbage reference cycles behind"
        finally:
            gc.enable()
