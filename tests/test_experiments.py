"""What reproduce and sweep share (tinyadv/lab/experiments.py): when a saved run may be reused,
and how a command ends when it is stopped."""
import dataclasses
import json
import signal

import numpy as np
import pytest

from tinyadv.lab import experiments
from tinyadv.lab.experiments import Evaluation, Run
from tinyadv.lab.runner import WorkerError
from tinyadv.lab.configs import FIELD_ORDER, RunConfig, preset_config

RUN = Run("baseline__seed0", preset_config("default"), preset="default")
EVALUATION = Evaluation(train_images=400, test_images=100, pgd_steps=10)
# A value other than the default for every field of a run's config.
OTHER = dict(sizes=(784, 32, 10), init="he", embed_dim=4, ce_on="fgsm", optimizer="sgd",
             lr=1e-3, lr_schedule="constant", batch_size=64, epochs=3, fgsm_eps=0.2,
             adversarial=True, inv_eps=0.3, inv_shifts=1, margin=0.5, lambda_sens=0.5,
             lambda_inv=0.5, lambda_norm=1e-3, negatives="random", protocol="oracle",
             train_size=100, seed=1, invariance_generator="authors", input_norm="authors",
             arch="cnn", fgsm_clamp="normalised", leak_clean_grad=True, triplet="authors",
             invariance_input="raw255", lambda_image_norm=0.5)
# Fields that are valid only beside another changed field: the run with that companion alone
# is the one each must differ from.
COMPANIONS = {"fgsm_clamp": dict(input_norm="authors"),
              "leak_clean_grad": dict(input_norm="authors")}


def save(runs_dir, run, evaluation):
    """A saved run as train_and_evaluate writes it (weights, then the record with the
    checksums of both)."""
    np.savez(runs_dir / f"{run.name}.npz", W1=np.arange(600, dtype=np.float32).reshape(20, 30))
    record = {"key": experiments.run_key(run, evaluation), "results": {"clean": 1.0}}
    record["npz_sha256"] = experiments.file_sha256(runs_dir / f"{run.name}.npz")
    record["record_sha256"] = experiments.record_sha256(record)
    (runs_dir / f"{run.name}.json").write_text(json.dumps(record))


def test_other_covers_every_field():
    assert set(OTHER) == set(FIELD_ORDER)
    assert all(getattr(RunConfig(), k) != v for k, v in OTHER.items() if k != "adversarial")


def test_a_saved_run_is_reused_only_when_everything_that_decides_it_matches(tmp_path):
    save(tmp_path, RUN, EVALUATION)
    assert experiments.load_saved_run(tmp_path, RUN, EVALUATION) is not None
    changed = [dataclasses.replace(RUN, config=RUN.config.replace(**{name: value}))
               for name, value in OTHER.items() if name not in ("adversarial", *COMPANIONS)]
    changed.append(dataclasses.replace(RUN, config=RUN.config.replace(adversarial=False)))
    changed.append(dataclasses.replace(RUN, preset="paper-4d"))
    for run in changed:
        assert experiments.load_saved_run(tmp_path, run, EVALUATION) is None, run
    for name, companion in COMPANIONS.items():
        alone = dataclasses.replace(RUN, config=RUN.config.replace(**companion))
        both = dataclasses.replace(RUN, config=RUN.config.replace(**companion,
                                                                   **{name: OTHER[name]}))
        assert experiments.run_key(alone, EVALUATION) != experiments.run_key(both, EVALUATION)
    for name, value in (("train_images", 401), ("test_images", 101), ("pgd_steps", 11),
                        ("pgd_eps", 0.1), ("probes", True)):
        other = dataclasses.replace(EVALUATION, **{name: value})
        assert experiments.load_saved_run(tmp_path, RUN, other) is None, name


def test_a_record_of_another_format_or_without_its_weights_is_not_reused(tmp_path):
    save(tmp_path, RUN, EVALUATION)
    record = json.loads((tmp_path / f"{RUN.name}.json").read_text())
    record["key"]["record_format"] = experiments.RECORD_FORMAT - 1
    (tmp_path / f"{RUN.name}.json").write_text(json.dumps(record))
    assert experiments.load_saved_run(tmp_path, RUN, EVALUATION) is None
    save(tmp_path, RUN, EVALUATION)
    (tmp_path / f"{RUN.name}.json").write_text('{"key": ')  # cut short
    assert experiments.load_saved_run(tmp_path, RUN, EVALUATION) is None
    save(tmp_path, RUN, EVALUATION)
    (tmp_path / f"{RUN.name}.npz").unlink()
    assert experiments.load_saved_run(tmp_path, RUN, EVALUATION) is None


def interrupted():
    raise KeyboardInterrupt


def failed():
    raise WorkerError("a run failed in its worker", task=None)


@pytest.mark.parametrize("body, status", [(lambda: None, 0), (interrupted, 130), (failed, 1)])
def test_run_command_statuses_and_the_callers_sigint_handler(tmp_path, capsys, body, status):
    """Called from code (a notebook, a test) the caller's Ctrl-C handler is back afterwards;
    as a command SIGINT stays ignored, so a late Ctrl-C cannot become a traceback."""
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / ".baseline__seed0.json-x1y2.tmp").write_text("half")
    own = signal.getsignal(signal.SIGINT)
    try:
        assert experiments.run_command(body, str(tmp_path), str(tmp_path / "runs"), [RUN],
                                       EVALUATION, command_line=False) == status
        assert signal.getsignal(signal.SIGINT) is own
        assert experiments.run_command(body, str(tmp_path), str(tmp_path / "runs"), [RUN],
                                       EVALUATION, command_line=True) == status
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGINT, own)
    out = capsys.readouterr().out
    if status:
        assert "0 of 1 runs are saved" in out and "run the same command again" in out
        assert not list((tmp_path / "runs").iterdir())  # the temporary file is gone
    else:
        assert out == ""


def why_not(runs_dir):
    record, why = experiments.check_saved_run(runs_dir, RUN, EVALUATION)
    assert (record is None) == bool(why)
    return why


def test_a_saved_run_is_reused_only_if_every_file_reads_back_and_matches(tmp_path):
    """Each way a saved run can go bad, and the reason the progress output gives."""
    json_path, npz_path = tmp_path / f"{RUN.name}.json", tmp_path / f"{RUN.name}.npz"
    assert why_not(tmp_path).startswith("missing: no saved record")
    save(tmp_path, RUN, EVALUATION)
    assert why_not(tmp_path) == ""  # whole: reused
    npz_path.write_bytes(npz_path.read_bytes()[:-40])  # truncated, the JSON still valid
    assert why_not(tmp_path).startswith(f"checksum mismatch in {RUN.name}.npz")
    save(tmp_path, RUN, EVALUATION)
    npz_path.unlink()
    assert why_not(tmp_path) == f"missing weights {RUN.name}.npz"
    save(tmp_path, RUN, EVALUATION)
    json_path.write_text(json_path.read_text()[:-10])  # a broken JSON
    assert why_not(tmp_path).startswith(f"unreadable record {RUN.name}.json")
    json_path.write_bytes(b"\xff\xfe not text")
    assert why_not(tmp_path).startswith(f"unreadable record {RUN.name}.json")
    json_path.write_text("[1, 2]")  # JSON, but not a record
    assert why_not(tmp_path).startswith(f"unreadable record {RUN.name}.json")
    save(tmp_path, RUN, EVALUATION)
    record = json.loads(json_path.read_text())
    record["results"]["clean"] = 99.0  # a number edited by hand: valid JSON, same key
    json_path.write_text(json.dumps(record))
    assert why_not(tmp_path).startswith(f"checksum mismatch in {RUN.name}.json")
    save(tmp_path, RUN, EVALUATION)
    other = dataclasses.replace(RUN, config=RUN.config.replace(input_norm="authors"))
    assert experiments.check_saved_run(tmp_path, other, EVALUATION)[1].startswith(
        "different config")


def test_weights_that_match_their_checksum_but_do_not_read_back_are_not_reused(tmp_path):
    """A record whose weights checksum was taken of a file that is not an .npz at all."""
    (tmp_path / f"{RUN.name}.npz").write_bytes(b"PK\x03\x04 not a zip archive")
    record = {"key": experiments.run_key(RUN, EVALUATION), "results": {},
              "npz_sha256": experiments.file_sha256(tmp_path / f"{RUN.name}.npz")}
    record["record_sha256"] = experiments.record_sha256(record)
    (tmp_path / f"{RUN.name}.json").write_text(json.dumps(record))
    assert why_not(tmp_path).startswith(f"unreadable weights {RUN.name}.npz")


def test_a_record_without_checksums_is_not_reused(tmp_path):
    np.savez(tmp_path / f"{RUN.name}.npz", W1=np.zeros((2, 2), np.float32))
    record = {"key": experiments.run_key(RUN, EVALUATION), "results": {}}
    (tmp_path / f"{RUN.name}.json").write_text(json.dumps(record))
    assert why_not(tmp_path).startswith("checksum mismatch")


def test_the_mli_generator_decides_the_data_only_of_runs_that_use_it():
    base = preset_config("default", invariance_generator="authors")
    assert experiments.data_key(base)[2] == "nearest"  # no MLI term: no MLI positives
    assert experiments.data_key(base.replace(lambda_inv=0.5))[2] == "authors"
    assert experiments.data_key(base.replace(lambda_inv=0.5, invariance_generator="nearest")) \
        == (0.4, 0, "nearest")


@pytest.mark.parametrize("value", ["Authors", "label_flip", ""])
def test_an_unknown_generator_is_an_error_naming_the_field(value):
    with pytest.raises(ValueError, match="invariance_generator: expected one of"):
        RunConfig.from_dict({"invariance_generator": value})
    with pytest.raises(ValueError, match="input_norm: expected one of"):
        RunConfig.from_dict({"input_norm": value})


def test_the_attack_sets_enter_the_pixel_pipeline_aligned_with_mnist(monkeypatch):
    import fake_tramer
    from tinyadv import data

    fake_tramer.install(monkeypatch)
    fake_tramer.CALLS.clear()
    evaluation = Evaluation(train_images=400, test_images=100)
    nearest = experiments.prepare_data(evaluation, 0.4, 0, log=None)
    authors = experiments.prepare_data(evaluation, 0.4, 0, log=None, generator="authors")
    x255, y_target, _ = fake_tramer.load_attack_set("authors", "train", limit=400)
    np.testing.assert_array_equal(authors[2], x255 / np.float32(255))  # MLI positives, in [0, 1]
    assert authors[2].dtype == np.float32 and authors[2].max() <= 1
    np.testing.assert_array_equal(authors[3], y_target)  # flipped labels = the attack's targets
    for i in (0, 1, 4, 5, 6, 7):  # everything else, the test invariance set included, as before
        np.testing.assert_array_equal(authors[i], nearest[i])
    x_test, y_source = experiments.authors_test_set(evaluation, log=None)
    assert x_test.shape == (100, 784) and x_test.max() > 1  # 0..255, for both feedings
    np.testing.assert_array_equal(y_source, data.load_mnist("test")[1][:100])
    assert ("authors", "test", 100) in fake_tramer.CALLS
    full = Evaluation()
    experiments.authors_test_set(full, log=None)
    assert fake_tramer.CALLS[-1] == ("authors", "test", None)  # the whole set: no limit


def test_an_attack_set_out_of_step_with_mnist_is_refused(monkeypatch):
    import fake_tramer

    fake = fake_tramer.install(monkeypatch)

    def shuffled(variant, split, limit=None, cache_dir=None, log=print):
        x, t, s = fake_tramer.load_attack_set(variant, split, limit)
        return x[::-1], t[::-1], s[::-1]

    monkeypatch.setattr(fake, "load_attack_set", shuffled)
    with pytest.raises(ValueError, match="source labels do not match MNIST's test labels"):
        experiments.authors_test_set(Evaluation(test_images=100), log=None)
    monkeypatch.setattr(fake, "load_attack_set",
                        lambda *a, **k: tuple(v[:50] for v in fake_tramer.load_attack_set(*a, **k)))
    with pytest.raises(ValueError, match="expected 100 examples"):
        experiments.authors_test_set(Evaluation(test_images=100), log=None)


def test_a_one_seed_table_says_1_seed_and_prints_no_zero_spread():
    """One seed has no spread: its cells show the run's number and the heading says "1 seed";
    two seeds or more keep "mean ± std"."""
    from tinyadv.lab import reproduce

    one = experiments.mean_std([90.45])
    three = experiments.mean_std([98.6, 98.7, 98.75])
    assert experiments.cell_text(one) == "90.45"
    assert experiments.cell_text(three) == "98.68 ± 0.08"
    cell = {**one, "total": 100}
    table = {model: {c: cell for c in reproduce.COLUMNS} | {"fgsm_pgd_gap": one}
             for model in ("baseline", "baseline+mls")}
    text = reproduce.format_table(table, [0], "default")
    assert "1 seed (seed 0): one run per cell, no spread" in text and "±" not in text
    three_cell = {**three, "total": 100}
    table = {model: {c: three_cell for c in reproduce.COLUMNS} | {"fgsm_pgd_gap": three}
             for model in ("baseline", "baseline+mls")}
    assert "mean ± sample std over seeds [0, 1, 2]" in reproduce.format_table(table, [0, 1, 2],
                                                                            "default")
