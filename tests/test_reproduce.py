"""python -m tinyadv.reproduce on a tiny subset: outputs, resuming, determinism, bad flags."""
import json
import os
import signal
import subprocess
import sys
import time

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


def test_ctrl_c_keeps_finished_runs_and_a_rerun_resumes(tmp_path):
    """Ctrl-C (SIGINT to the whole process group, as a terminal sends it) after the first run."""
    args = [sys.executable, "-m", "tinyadv.reproduce", "--train-size", "2000", "--test-size",
            "100", "--epochs", "2", "--seeds", "0", "--out", str(tmp_path)]
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    deadline = time.time() + 120
    while not list((tmp_path / "runs").glob("*.json")) and time.time() < deadline:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGINT)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode == 130, out
    assert "run the same command again to resume" in out
    saved = len(list((tmp_path / "runs").glob("*.json")))
    assert 1 <= saved < 4
    assert not (tmp_path / "table1.json").exists()
    assert not [p for p in tmp_path.rglob("*") if ".tmp" in p.name]
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert again.stdout.count("reusing") == saved
    assert again.stdout.count("training:") == 4 - saved
    assert (tmp_path / "table1.json").exists()


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
