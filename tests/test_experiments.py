"""What reproduce and sweep share (tinyadv/experiments.py): when a saved run may be reused,
and how a command ends when it is stopped."""
import dataclasses
import json
import signal

import numpy as np
import pytest

from tinyadv import experiments
from tinyadv.experiments import Evaluation, Run
from tinyadv.runner import WorkerError
from tinyadv.train import TrainConfig, preset_config

RUN = Run("baseline__seed0", preset_config("default"), preset="default")
EVALUATION = Evaluation(train_images=400, test_images=100, pgd_steps=10)
# A value other than the default for every TrainConfig field.
OTHER = dict(sizes=(784, 32, 10), init="he", embed_dim=4, ce_on="fgsm", optimizer="sgd",
             lr=1e-3, lr_schedule="constant", batch_size=64, epochs=3, fgsm_eps=0.2,
             adversarial=True, inv_eps=0.3, inv_shifts=1, margin=0.5, lambda_sens=0.5,
             lambda_inv=0.5, lambda_norm=1e-3, negatives="random", protocol="oracle",
             train_size=100, seed=1)


def save(runs_dir, run, evaluation):
    """A saved run as train_and_evaluate writes it (weights, then the record)."""
    np.savez(runs_dir / f"{run.name}.npz", W1=np.zeros((2, 2), np.float32))
    record = {"key": experiments.run_key(run, evaluation), "results": {}}
    (runs_dir / f"{run.name}.json").write_text(json.dumps(record))


def test_other_covers_every_field():
    assert set(OTHER) == {f.name for f in dataclasses.fields(TrainConfig)}
    assert all(getattr(TrainConfig(), k) != v for k, v in OTHER.items() if k != "adversarial")


def test_a_saved_run_is_reused_only_when_everything_that_decides_it_matches(tmp_path):
    save(tmp_path, RUN, EVALUATION)
    assert experiments.load_saved_run(tmp_path, RUN, EVALUATION) is not None
    changed = [dataclasses.replace(RUN, config=RUN.config.replace(**{name: value}))
               for name, value in OTHER.items() if name != "adversarial"]
    changed.append(dataclasses.replace(RUN, config=RUN.config.replace(adversarial=False)))
    changed.append(dataclasses.replace(RUN, preset="authors"))
    for run in changed:
        assert experiments.load_saved_run(tmp_path, run, EVALUATION) is None, run
    for name in ("train_images", "test_images", "pgd_steps"):
        other = dataclasses.replace(EVALUATION, **{name: getattr(EVALUATION, name) + 1})
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
