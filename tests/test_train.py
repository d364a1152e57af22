"""TrainConfig validation, the training loop's determinism, and the oracle-positive sampler."""
import numpy as np
import pytest

from tinyadv import data, train
from tinyadv.train import MODELS, PRESETS, OraclePositives, TrainConfig, model_config, preset_config


def test_config_defaults_are_the_papers_weights_where_they_apply():
    full = model_config("baseline+mls+mli")
    assert (full.margin, full.lambda_sens, full.lambda_inv, full.lambda_norm) == (0.05, 0.5, 0.5, 1e-3)
    assert full.negatives == "hardest" and full.protocol == "source"
    assert model_config("baseline").lambda_sens == 0 and model_config("baseline").adversarial
    assert model_config("baseline+mls+mli(oracle)").protocol == "oracle"
    assert TrainConfig().fgsm_eps == 0.1


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
])
def test_bad_config_values_are_rejected_with_the_field_name(field, value):
    with pytest.raises(ValueError, match=field.split("_")[0]):
        TrainConfig(**{field: value})


def test_ce_on_fgsm_needs_fgsm_images():
    with pytest.raises(ValueError, match="ce_on: expected 'clean\\+fgsm' when adversarial is false"):
        preset_config("paper-4d", adversarial=False)
    assert preset_config("default", adversarial=False).ce_on == "clean+fgsm"


def test_config_round_trips_through_a_dict():
    config = model_config("baseline+mls+mli(oracle)").replace(seed=3)
    assert TrainConfig.from_dict(config.to_dict()) == config


def test_presets():
    assert preset_config("default") == TrainConfig()
    authors = preset_config("paper-4d")
    assert (authors.embed_dim, authors.ce_on, authors.init) == (4, "fgsm", "uniform")
    # margin and lambdas are the rows' own, whatever the preset
    assert model_config("baseline+mls+mli", authors).lambda_inv == 0.5
    assert model_config("baseline+mls+mli", authors).embed_dim == 4
    assert preset_config("paper-4d", epochs=2, embed_dim=8).embed_dim == 8  # overrides win
    with pytest.raises(ValueError, match="preset"):
        preset_config("paper")
    with pytest.raises(ValueError, match="unknown config key"):
        preset_config("default", embedding=4)
    assert set(PRESETS) == {"default", "paper-4d", "authors-code"}
    assert preset_config("authors") == preset_config("paper-4d")  # the old name, an alias


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


CASES = [(preset, model) for preset in PRESETS for model in train.PRESET_ROWS[preset]]


@pytest.mark.parametrize("preset, model", CASES)
def test_training_is_deterministic_and_lowers_the_loss(model, preset, small_mnist):
    """Every row of every preset (the authors' code on a small MLP: the CNN has tests of its
    own), trained twice: the same numbers; the loss falls; the triplets act."""
    X, y, x_inv, y_flip = small_mnist
    rows = train.PRESET_ROWS[preset]
    config = model_config(model, preset_config(preset), rows).replace(
        epochs=3, batch_size=64, sizes=(784, 32, 16, 10), arch="mlp")
    params_a, history_a = train.train(config, X, y, x_inv, y_flip, log=None)
    params_b, history_b = train.train(config, X, y, x_inv, y_flip, log=None)
    for k in params_a:
        assert params_a[k].dtype == np.float32  # training runs in float32
        assert np.array_equal(params_a[k], params_b[k])  # same seed, same numbers
    assert history_a == [dict(h, seconds=a["seconds"]) for h, a in zip(history_b, history_a)]
    assert history_a[-1]["total"] < history_a[0]["total"]
    if config.lambda_sens:
        assert history_a[0]["triplet_sens"] > 0 and history_a[0]["active_sens"] > 0
    if config.lambda_inv:
        assert history_a[0]["triplet_inv"] > 0 and history_a[0]["active_inv"] > 0
    other = train.train(config.replace(seed=1), X, y, x_inv, y_flip, log=None)[0]
    assert not np.array_equal(other["W1"], params_a["W1"])


def test_invariance_models_need_invariance_examples(small_mnist):
    X, y, _, _ = small_mnist
    with pytest.raises(ValueError, match="x_inv"):
        train.train(model_config("baseline+mls+mli").replace(epochs=1), X, y, log=None)


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
    config = model_config("baseline+mls", TrainConfig(epochs=2, sizes=(784, 16, 16, 10),
                                                      train_size=384))
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


@pytest.mark.parametrize("preset, model", CASES)
def test_a_training_step_leaves_no_reference_cycles(model, preset):
    """A step's arrays must be freed when it returns, not at the next garbage collection: a
    cycle (e.g. a self-referencing closure) kept each step's activations alive, grew the heap
    by ~400 KB a step and cost ~100 page faults a step until the collector ran."""
    import gc
    from tinyadv import network
    from tinyadv.optim import make_optimizer
    rng = np.random.default_rng(0)
    X = rng.random((64, 784), dtype=np.float32)
    y = np.arange(64) % 10
    config = preset_config(preset, sizes=(784, 16, 16, 10), batch_size=16, arch="mlp").replace(
        **train.PRESET_ROWS[preset][model])
    params = network.init_params(config, rng)
    opt = make_optimizer(config.optimizer, params, config.lr)
    oracle = OraclePositives(y) if config.protocol == "oracle" and config.uses_invariance else None
    for step in range(4):  # the first step may leave one-time import garbage: not counted
        if step == 1:
            gc.collect()
            gc.disable()
        idx = rng.choice(64, 16, replace=False)
        train.train_step(params, opt, config, train.draw_batch(config, idx, X, y, X, oracle, rng),
                         rng)
    try:
        assert gc.collect() == 0, "a training step left garbage reference cycles behind"
    finally:
        gc.enable()
