"""python -m tinyadv.reproduce on a tiny subset: outputs, resuming, determinism, bad flags."""
import json
import os
import subprocess
import sys

import pytest

from tinyadv import reproduce

TINY = ["--train-size", "400", "--test-size", "100", "--epochs", "1"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(args, capsys):
    code = reproduce.main(args)
    return code, capsys.readouterr().out


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    code = reproduce.main(TINY + ["--seeds", "0", "1", "--out", str(out)])
    assert code == 0
    return out


def test_writes_every_output_with_every_row_and_column(tiny_run):
    for name in ("table1.md", "table1.json", "figure1.png", "config.json"):
        assert (tiny_run / name).stat().st_size > 0
    with open(tiny_run / "figure1.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    result = json.loads((tiny_run / "table1.json").read_text())
    assert list(result["table"]) == ["baseline", "baseline+mls", "baseline+mls+mli",
                                     "baseline+mls+mli(oracle)"]
    for row in result["table"].values():
        assert list(row) == reproduce.COLUMNS
        for cell in row.values():
            assert len(cell["per_seed"]) == 2
            assert 0 <= cell["mean"] <= 100 and cell["std"] >= 0
            assert min(cell["per_seed"]) <= cell["mean"] <= max(cell["per_seed"])
    assert result["table"]["baseline"]["clean"]["total"] == 100
    assert result["table"]["baseline"]["human_linf_eps04"]["total"] == 100
    assert result["table"]["baseline"]["human_linf_manual_eps04"]["total"] == 50
    assert result["paper"]["baseline+mls+mli"] == {"clean": 99.09, "fgsm": 98.98,
                                                   "invariance_source": 87.80}
    assert result["wall_seconds"] > 0
    assert result["figure1"]["scatter_ratio_with_mli"] > 0
    assert not [p for p in tiny_run.rglob("*") if ".tmp" in p.name]
    runs = sorted(p.name for p in (tiny_run / "runs").iterdir())
    assert len(runs) == 2 * 4 * 2  # (json + npz) x 4 models x 2 seeds
    md = (tiny_run / "table1.md").read_text()
    assert "paper: baseline+mls+mli" in md and "87.80" in md


def test_rerun_reuses_saved_runs_and_gives_the_same_table(tiny_run, capsys):
    before = json.loads((tiny_run / "table1.json").read_text())["table"]
    code, out = run(TINY + ["--seeds", "0", "1", "--out", str(tiny_run)], capsys)
    assert code == 0
    assert out.count("reusing") == 8 and "training:" not in out
    assert json.loads((tiny_run / "table1.json").read_text())["table"] == before


def test_same_seed_same_numbers_in_a_fresh_folder(tiny_run, tmp_path):
    assert reproduce.main(TINY + ["--seeds", "1", "--out", str(tmp_path)]) == 0
    fresh = json.loads((tmp_path / "table1.json").read_text())["table"]
    earlier = json.loads((tiny_run / "table1.json").read_text())["table"]
    for model, row in fresh.items():
        for column, cell in row.items():
            assert cell["per_seed"] == [earlier[model][column]["per_seed"][1]], (model, column)


def test_interrupt_keeps_finished_runs_and_resumes(tmp_path, monkeypatch, capsys):
    real_run_one = reproduce.run_one
    calls = []

    def interrupt_on_third(*args, **kwargs):
        calls.append(args[:2])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_run_one(*args, **kwargs)

    monkeypatch.setattr(reproduce, "run_one", interrupt_on_third)
    code, out = run(TINY + ["--seeds", "0", "--out", str(tmp_path)], capsys)
    assert code == 130 and "resume" in out
    assert len(list((tmp_path / "runs").glob("*.json"))) == 2
    assert not (tmp_path / "table1.json").exists()
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    monkeypatch.setattr(reproduce, "run_one", real_run_one)
    code, out = run(TINY + ["--seeds", "0", "--out", str(tmp_path)], capsys)
    assert code == 0 and out.count("reusing") == 2 and out.count("training:") == 2


def test_changed_config_is_not_reused(tiny_run, tmp_path, capsys):
    code, out = run(["--train-size", "400", "--test-size", "100", "--epochs", "2",
                     "--seeds", "0", "--out", str(tiny_run)], capsys)
    assert code == 0 and "reusing" not in out


@pytest.mark.parametrize("argv", [["--bogus"], ["--epochs", "0"], ["--seeds", "-1"],
                                  ["--train-size", "10"], ["--epochs", "two"]])
def test_bad_flags_exit_2_with_usage(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        reproduce.main(argv)
    assert exc.value.code == 2
    assert "usage" in capsys.readouterr().err


def test_module_entry_point_rejects_unknown_flags():
    proc = subprocess.run([sys.executable, "-m", "tinyadv.reproduce", "--nope"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "usage: python -m tinyadv.reproduce" in proc.stderr
