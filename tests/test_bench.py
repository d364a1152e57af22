"""Smoke test of ``python -m tinyadv.bench``: it runs, and its JSON line has sane numbers.

Speed itself is never asserted here (timings on a shared machine are noise); only that each
figure exists, is finite and positive, and that the analytic FLOP count is the one the
module docstring derives.
"""
import json
import math
import sys

import pytest

from tinyadv import train
from tinyadv.fast.step import fast_train_step
from tinyadv.lab import bench
from tinyadv.lab.configs import model_config, preset_config
from tinyadv.optim import make_optimizer

BASELINE = train.model_config("baseline")  # the two steps bench times, default preset
FULL = train.model_config("baseline+mls+mli")
TINY = dict(sizes=[784, 16, 16, 10], batch=8, steps=3, warmup=1, inv_queries=40, inv_refs=200,
            gemm_size=64)


@pytest.fixture(scope="module")
def result():
    return bench.run(**TINY)


def test_main_prints_one_json_line(capsys):
    assert bench.main(["--json", "--sizes", "784,8,10", "--batch", "4", "--steps", "2",
                       "--warmup", "0", "--inv-queries", "0", "--gemm-size", "32"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 1, f"--json must print exactly one line, got {len(lines)}"
    parsed = json.loads(lines[0])
    assert parsed["sizes"] == [784, 8, 10] and parsed["invariance_s_per_10k"] is None


def test_text_report_names_every_figure(capsys):
    assert bench.main(["--sizes", "784,8,10", "--batch", "4", "--steps", "2", "--warmup", "0",
                       "--inv-queries", "0", "--gemm-size", "32"]) == 0
    text = capsys.readouterr().out
    for word in ("machine:", "GEMM", "baseline", "full", "GFLOP/s", "ceiling", "peak memory"):
        assert word in text, f"{word!r} missing from the report:\n{text}"


def test_json_has_the_required_keys(result):
    for key in ("baseline_ms_per_step", "full_ms_per_step", "gemm_gflops", "full_gflops",
                "invariance_s_per_10k", "baseline_gflops", "peak_rss_mb", "machine"):
        assert key in result, f"missing key {key!r} in {sorted(result)}"


def test_numbers_are_finite_and_positive(result):
    for key in ("baseline_ms_per_step", "full_ms_per_step", "gemm_gflops", "full_gflops",
                "baseline_gflops", "peak_rss_mb", "full_mflop_per_step"):
        value = result[key]
        assert isinstance(value, float) and math.isfinite(value) and value > 0, (key, value)
    assert result["baseline_ms_p10"] <= result["baseline_ms_per_step"] <= result["baseline_ms_p90"]
    # The generator is another module: if it is importable its time must be a real number.
    inv = result["invariance_s_per_10k"]
    assert inv is None or (math.isfinite(inv) and inv > 0)


def test_machine_is_described(result):
    machine = result["machine"]
    assert machine["cores"] >= 1
    assert machine["cpu"] and machine["numpy"] and machine["blas"]


def test_flop_count_matches_the_docstring():
    sizes = [784, 256, 256, 10]
    assert bench.pass_flops(sizes, 128) == 2 * 128 * (784 * 256 + 256 * 256 + 256 * 10)
    assert bench.step_flops(sizes, 128, BASELINE) == 447_741_952
    assert bench.step_flops(sizes, 128, FULL) == 611_188_736
    # The full step does strictly more work: one more group of rows, and the N x N search.
    assert bench.step_flops([784, 16, 10], 8, FULL) > bench.step_flops([784, 16, 10], 8, BASELINE)
    # The oracle protocol stacks the MLI negatives too; random negatives need no search.
    oracle = FULL.replace(protocol="oracle")
    assert bench.step_flops(sizes, 128, oracle) - bench.step_flops(sizes, 128, FULL) == (
        3 * bench.pass_flops(sizes, 128) - 2 * 128 * 784 * 256)
    assert bench.step_flops(sizes, 128, FULL) - bench.step_flops(
        sizes, 128, FULL.replace(negatives="random")) == 2 * 128 * 128 * 256


def test_bad_sizes_are_rejected():
    with pytest.raises(SystemExit):
        bench.main(["--sizes", "784,abc,10"])
    with pytest.raises(SystemExit):
        bench.main(["--sizes", "100,16,10"])


def _minor_faults():
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="mallopt is glibc's")
def test_training_steps_do_not_page_fault_once_memory_is_kept():
    """keep_freed_memory() stops the allocator returning each step's temporaries to the OS.

    Without it, a heap layout like the one provoked below (small arrays kept alive between
    steps) makes every full step take ~600-1000 page faults; with it, a handful. Counting
    faults, not time, keeps this independent of the machine's speed and load.
    """
    import numpy as np
    from tinyadv import mlp, train
    from tinyadv.fast.memory import keep_freed_memory
    if not keep_freed_memory():
        pytest.skip("not glibc: mallopt unavailable")
    rng = np.random.default_rng(0)
    X = rng.random((512, 784), dtype=np.float32)
    y = rng.integers(0, 10, 512)
    params = mlp.init_params([784, 256, 256, 10], rng, init="he")
    config = train.model_config("baseline+mls+mli", train.TrainConfig())
    opt = make_optimizer(config.optimizer, params, config.lr)
    kept = []
    for step in range(24):
        if step == 4:
            start = _minor_faults()
        kept.append(np.ones(int(rng.integers(1_000, 400_000)), np.uint8))  # shift the heap
        idx = rng.choice(len(X), 128, replace=False)
        fast_train_step(params, opt, config, train.draw_batch(config, idx, X, y, X), rng)
    faults_per_step = (_minor_faults() - start) / 20
    assert faults_per_step < 100, f"{faults_per_step:.0f} page faults per step"


def test_performed_flops_leave_out_one_forward_of_the_anchors():
    sizes = [784, 256, 256, 10]
    for config in (BASELINE, FULL):
        assert (bench.step_flops(sizes, 128, config) - bench.performed_flops(sizes, 128, config)
                == bench.pass_flops(sizes, 128))
    assert round(bench.performed_flops(sizes, 128, FULL) / 1e5) == 5424  # 542.4 MFLOP


@pytest.mark.parametrize("preset", ["default", "paper-4d"])
@pytest.mark.parametrize("model", ["baseline", "baseline+mls+mli"])
def test_performed_flops_are_what_a_training_step_computes(monkeypatch, preset, model):
    """Count the layer products one step of the lab's makes (fast/step.py; every network
    product goes through layers.linear_forward/linear_backward) and compare with the analytic
    count."""
    import numpy as np
    from tinyadv import mlp, train
    counted = []

    def counting_forward(x, W, b):
        counted.append(2 * x.shape[0] * W.shape[0] * W.shape[1])
        return linear_forward(x, W, b)

    def counting_backward(dout, cache, need_dx=True, need_dW=True):
        x, W = cache
        counted.append((need_dx + need_dW) * 2 * x.shape[0] * W.shape[0] * W.shape[1])
        return linear_backward(dout, cache, need_dx, need_dW)

    linear_forward, linear_backward = mlp.linear_forward, mlp.linear_backward
    monkeypatch.setattr(mlp, "linear_forward", counting_forward)
    monkeypatch.setattr(mlp, "linear_backward", counting_backward)
    batch, sizes = 16, (784, 32, 32, 10)
    config = model_config(model, preset_config(preset, sizes=sizes))
    rng = np.random.default_rng(0)
    X = rng.uniform(0, 1, (64, 784)).astype(np.float32)
    y = np.arange(64) % 10
    params = mlp.init_params(config.sizes, rng, init=config.init, embed_dim=config.embed_dim)
    opt = make_optimizer(config.optimizer, params, config.lr)
    idx = rng.choice(64, batch, replace=False)
    x_inv = X if config.uses_invariance else None
    fast_train_step(params, opt, config.train, train.draw_batch(config.train, idx, X, y, x_inv),
                    rng)
    widths = list(sizes[:-1]) + [config.embed_dim, sizes[-1]] if config.embed_dim else sizes
    full = model != "baseline"
    cosine_matrix = 2 * batch * batch * widths[-2] if full else 0  # not a layer product
    assert sum(counted) + cosine_matrix == bench.performed_flops(widths, batch, config)


def test_authors_preset_runs_and_counts_its_embedding_layer():
    r = bench.run(**{**TINY, "inv_queries": 0}, preset="paper-4d")
    assert r["preset"] == "paper-4d"
    # 784-16-16-10 with a 4-unit embedding layer: the head reads 4 inputs, not 16.
    widths = [784, 16, 16, 4, 10]
    full = model_config("baseline+mls+mli", preset_config("paper-4d"))
    assert r["full_mflop_per_step"] == bench.step_flops(widths, 8, full) / 1e6
