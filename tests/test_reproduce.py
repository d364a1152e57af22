"""python -m tinyadv.reproduce on a tiny subset: outputs, resuming, determinism, bad flags."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from tinyadv.lab import experiments, paper, reproduce
from tinyadv.evaluate import AUTHORS_KEYS
from tinyadv.lab.configs import preset_config

from interrupt_matrix import (describe, problems, run_parallel, signal_run,  # noqa: E402
                              temporary_files)

TINY = ["--train-size", "400", "--test-size", "100", "--epochs", "1"]
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module", autouse=True)
def stand_in_attack():
    """The paper's authors' attack set from tests/fake_tramer.py (reproduce loads it in
    this process, after training, to score the saved weights)."""
    import fake_tramer

    with pytest.MonkeyPatch.context() as patch:
        yield fake_tramer.install(patch)


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
    assert result["preset"] == "default"
    assert list(result["table"]) == ["baseline", "baseline+mls", "baseline+mls+mli",
                                     "baseline+mls+mli(oracle)"]
    for row in result["table"].values():
        assert list(row) == reproduce.COLUMNS + list(AUTHORS_KEYS) + ["fgsm_pgd_gap"]
        for column, cell in row.items():
            assert len(cell["per_seed"]) == 2
            assert cell["std"] >= 0
            assert min(cell["per_seed"]) <= cell["mean"] <= max(cell["per_seed"])
            if column != "fgsm_pgd_gap":
                assert 0 <= cell["mean"] <= 100
        gaps = [f - p for f, p in zip(row["fgsm"]["per_seed"], row["pgd"]["per_seed"])]
        assert row["fgsm_pgd_gap"]["per_seed"] == gaps
    assert result["table"]["baseline"]["clean"]["total"] == 100
    assert result["table"]["baseline"]["human_linf_eps04"]["total"] == 100
    assert result["table"]["baseline"]["human_linf_manual_eps04"]["total"] == 50
    assert result["paper"]["table1"]["baseline+mls+mli"] == {"clean": 99.09, "fgsm": 98.98,
                                                             "invariance_source": 87.80}
    mli = result["authors_logs"]["paper_rows"]["baseline+mls+mli"]
    assert mli["config"] == "nll-sensitivity-norm-invar" and mli["printed_run"] == 3
    assert mli["triplet_computed"] is False and len(mli["runs"]) == 3
    assert result["wall_seconds"] > 0
    assert len(result["figure1"]["scatter_ratio_with_mli"]) == 2  # one per seed
    assert min(result["figure1"]["scatter_ratio_with_mli"]) > 0
    assert not [p for p in tiny_run.rglob("*") if ".tmp" in p.name]
    runs = sorted(p.name for p in (tiny_run / "runs").iterdir())
    assert len(runs) == 2 * 4 * 2  # (json + npz) x 4 models x 2 seeds
    md = (tiny_run / "table1.md").read_text()
    for words in ("paper, as printed", "authors' logs: nll-sensitivity-norm-invar",
                  "tinyadv `default`", "87.80", "85.09 ± 3.25", "FGSM − PGD", "Figure 1"):
        assert words in md, words
    config = json.loads((tiny_run / "config.json").read_text())
    assert config["preset"] == "default" and config["base_config"]["init"] == "uniform"


def test_rerun_reuses_saved_runs_and_gives_the_same_table(tiny_run, capsys):
    before = json.loads((tiny_run / "table1.json").read_text())["table"]
    code, out = run(TINY + ["--seeds", "0", "1", "--out", str(tiny_run)], capsys)
    assert code == 0
    assert "reusing 8 saved run(s)" in out and "to train" not in out
    assert json.loads((tiny_run / "table1.json").read_text())["table"] == before


def test_same_seed_same_numbers_in_a_fresh_folder(tiny_run, tmp_path):
    assert reproduce.main(TINY + ["--seeds", "1", "--out", str(tmp_path)]) == 0
    fresh = json.loads((tmp_path / "table1.json").read_text())["table"]
    earlier = json.loads((tiny_run / "table1.json").read_text())["table"]
    for model, row in fresh.items():
        for column, cell in row.items():
            assert cell["per_seed"] == [earlier[model][column]["per_seed"][1]], (model, column)


def test_paper_4d_preset_is_recorded_keyed_and_trains_a_4d_embedding(tmp_path, capsys):
    code, out = run(TINY + ["--seeds", "0", "--preset", "paper-4d", "--out", str(tmp_path)], capsys)
    assert code == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["preset"] == "paper-4d"
    assert config["base_config"]["embed_dim"] == 4 and config["base_config"]["ce_on"] == "fgsm"
    record = json.loads((tmp_path / "runs" / "baseline+mls__seed0.json").read_text())
    assert record["key"]["preset"] == "paper-4d" and record["key"]["config"]["embed_dim"] == 4
    with np.load(tmp_path / "runs" / "baseline+mls__seed0.npz", allow_pickle=False) as f:
        assert f["W_emb"].shape == (256, 4) and f["W3"].shape == (4, 10)
    # That the default preset's saved runs are not mistaken for paper-4d's is checked by
    # test_the_authors_attack_column_is_printed_beside_the_paper, which runs paper-4d in a
    # copy of tiny_run's folder.


def test_set_overrides_a_field_and_is_recorded(tmp_path, capsys):
    code, _ = run(TINY + ["--seeds", "0", "--set", "init=he", "--set", "fgsm_eps=0.2",
                          "--out", str(tmp_path)], capsys)
    assert code == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["overrides"] == {"init": "he", "fgsm_eps": 0.2}
    record = json.loads((tmp_path / "runs" / "baseline__seed0.json").read_text())
    assert record["key"]["config"]["init"] == "he" and record["key"]["config"]["fgsm_eps"] == 0.2


# ---- Ctrl-C at any instant (the thorough matrix: python tests/interrupt_reproduce.py) ----

INTERRUPTIBLE = ["--train-size", "400", "--test-size", "100", "--epochs", "1", "--seeds", "0"]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The table the interrupted runs must reproduce once resumed."""
    out = tmp_path_factory.mktemp("uninterrupted")
    assert reproduce.main(INTERRUPTIBLE + ["--out", str(out)]) == 0
    return json.loads((out / "table1.json").read_text())["table"]


# (line, mode): a worker's first epoch, the first and a later finished run, the last one
# (then the tables would be written); SIGINT once or twice, to the parent or the group. The
# command stops at the line until the signal is out (tests/gate.py), and at its last line
# ("wrote ...") in every case, so it can never finish first: every case must end in 130.
CASES = [("epoch 1/1", ("group", 2)), ("1/4 runs done", ("parent", 1)),
         ("2/4 runs done", ("group", 1)), ("4/4 runs done", ("parent", 2))]
LAST_LINE = "wrote "


def test_ctrl_c_at_several_instants_stops_cleanly_and_a_rerun_resumes(tmp_path, uninterrupted):
    cases = [(text, target, times, tmp_path / f"case{i}")
             for i, (text, (target, times)) in enumerate(CASES)]
    # The reproduce command with the stand-in attack set the in-process runs above use.
    command = [sys.executable, os.path.join("tests", "reproduce_with_stand_in.py"),
               *INTERRUPTIBLE, "--out"]
    outcomes = run_parallel([
        (lambda text=text, target=target, times=times, out=out:
         signal_run(command + [str(out)], ROOT, at=(text, 0.0), target=target, times=times,
                    gap=0.01, timeout=120, gate=out.parent / f"{out.name}-gate",
                    hold=(text, LAST_LINE))) for text, target, times, out in cases], parallel=2)
    for (text, target, times, out), outcome in zip(cases, outcomes):
        finished = outcome.output.count("runs done")
        assert not problems(outcome, codes=(130,)), describe(outcome)
        assert not temporary_files(str(out)), describe(outcome)
        assert "run the same command again to resume" in outcome.output, describe(outcome)
        assert text in outcome.output and LAST_LINE not in outcome.output, describe(outcome)
        for record in (out / "runs").glob("*.json"):  # every saved run is whole
            assert json.loads(record.read_text())["results"]
            with np.load(record.with_suffix(".npz"), allow_pickle=False) as weights:
                assert weights["W1"].shape == (784, 256)
        assert len(list((out / "runs").glob("*.json"))) >= finished
    resumed = [out for _, _, _, out in cases[1:3]]  # two of them: the same table as without Ctrl-C
    saved = [len(list((out / "runs").glob("*.json"))) for out in resumed]
    assert min(saved) >= 1
    # Side by side, as the interrupted runs were: each resume waits on its own folder alone.
    agains = run_parallel([
        (lambda out=out: subprocess.run(command + [str(out)], cwd=ROOT, capture_output=True,
                                        text=True, timeout=300)) for out in resumed], parallel=2)
    for out, count, again in zip(resumed, saved, agains):
        assert again.returncode == 0, again.stderr
        assert f"reusing {count} saved run(s)" in again.stdout
        assert json.loads((out / "table1.json").read_text())["table"] == uninterrupted


def test_changed_config_is_not_reused(tiny_run, tmp_path, capsys):
    copy = tmp_path / "copy"  # tiny_run itself stays as the other tests expect it
    shutil.copytree(tiny_run, copy)
    code, out = run(TINY + ["--seeds", "0", "--out", str(copy)], capsys)  # as saved: reused
    assert code == 0 and "reusing 4 saved run(s)" in out
    code, out = run(["--train-size", "400", "--test-size", "100", "--epochs", "2",
                     "--seeds", "0", "--out", str(copy)], capsys)
    assert code == 0 and "reusing" not in out


@pytest.mark.parametrize("argv, words", [
    (["--bogus"], "unrecognized"), (["--epochs", "0"], "--epochs"), (["--seeds", "-1"], "--seeds"),
    (["--train-size", "10"], "--train-size"), (["--epochs", "two"], "--epochs"),
    (["--preset", "paper"], "--preset"), (["--set", "init"], "FIELD=VALUE"),
    (["--set", "nope=1"], "unknown config field 'nope'"), (["--set", "init=xavier"], "init"),
    (["--set", "embed_dim=four"], "embed_dim: expected an integer"),
    (["--set", "lambda_inv=2"], "sets lambda_inv itself"), (["--set", "seed=3"], "--seeds"),
    (["--set", "invariance_generator=tramer2020"], "invariance_generator: expected one of"),
    (["--set", "input_norm=mnist"], "input_norm: expected one of"),
])
def test_bad_flags_exit_2_with_usage(argv, words, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        reproduce.main(argv + ["--out", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage" in err and words in err


def test_module_entry_point_rejects_unknown_flags():
    proc = subprocess.run([sys.executable, "-m", "tinyadv.reproduce", "--nope"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "usage: python -m tinyadv.reproduce" in proc.stderr


def test_the_authors_attack_column_is_printed_beside_the_paper(tiny_run, tmp_path, capsys):
    md = (tiny_run / "table1.md").read_text()
    assert "The paper's invariance column on the paper's own attack" in md
    assert "| human_l0 | invariance_authors | FGSM − PGD (points) |" in md
    assert "invariance_authors_raw" not in md  # the default preset prints the right feeding only
    assert "85.67 | 86.06 ± 0.69 |" in md and "87.80 | 85.09 ± 3.25 |" in md
    table = json.loads((tiny_run / "table1.json").read_text())["table"]
    assert table["baseline"]["invariance_authors"]["total"] == 100
    # In a copy of the default preset's folder (tiny_run stays as it is): its saved runs,
    # which have the same names, are not mistaken for paper-4d's.
    copy = tmp_path / "default_copy"
    shutil.copytree(tiny_run, copy)
    code, out = run(TINY + ["--seeds", "0", "--preset", "paper-4d", "--set", "input_norm=authors",
                            "--out", str(copy)], capsys)
    assert code == 0 and "reusing" not in out and "4 run(s) to train" in out
    md = (copy / "table1.md").read_text()
    assert "invariance_authors_raw" in md and "fed as the authors' code fed it" in md
    record = json.loads((copy / "runs" / "baseline__seed0.json").read_text())
    assert record["key"]["preset"] == "paper-4d"
    assert record["key"]["config"]["input_norm"] == "authors"
    with np.load(copy / "runs" / "baseline__seed0.npz", allow_pickle=False) as f:
        assert float(f["input_std"]) == pytest.approx(0.3081)  # saved with the network


def test_a_damaged_saved_run_is_trained_again_and_the_output_says_why(tiny_run, tmp_path, capsys):
    copy = tmp_path / "copy"
    shutil.copytree(tiny_run, copy)
    before = json.loads((copy / "table1.json").read_text())["table"]
    npz = copy / "runs" / "baseline__seed0.npz"
    npz.write_bytes(npz.read_bytes()[:-100])  # truncated beside a valid record
    record = copy / "runs" / "baseline+mls__seed1.json"
    record.write_text(record.read_text()[:50])  # a broken record
    (copy / "runs" / "baseline+mls+mli__seed0.json").unlink()
    code, out = run(TINY + ["--seeds", "0", "1", "--out", str(copy)], capsys)
    assert code == 0
    assert "to train: baseline__seed0 (checksum mismatch in baseline__seed0.npz" in out
    assert "to train: baseline+mls__seed1 (unreadable record baseline+mls__seed1.json" in out
    assert "to train: baseline+mls+mli__seed0 (missing: no saved record)" in out
    assert "reusing 5 saved run(s)" in out and "3 run(s) to train" in out
    assert json.loads((copy / "table1.json").read_text())["table"] == before  # same numbers


def test_the_mli_generator_names_only_the_runs_that_use_it():
    runs = reproduce.table1_runs(preset_config("paper-4d", invariance_generator="authors"),
                                 [0, 1], "paper-4d")
    names = {run.name: run.config.invariance_generator for run in runs}
    assert names["baseline__seed1"] == names["baseline+mls__seed0"] == "nearest"
    assert names["baseline+mls+mli__authors__seed0"] == "authors"
    assert names["baseline+mls+mli(oracle)__authors__seed1"] == "authors"
    plain = reproduce.table1_runs(preset_config("paper-4d"), [0, 1], "paper-4d")
    shared = {run.name for run in plain} & set(names)
    assert shared == {f"{m}__seed{s}" for m in ("baseline", "baseline+mls") for s in (0, 1)}
    evaluation = experiments.Evaluation()
    for run in plain:  # the shared runs have the same key: reused, not retrained
        twin = next((r for r in runs if r.name == run.name), None)
        if twin is not None:
            assert experiments.run_key(twin, evaluation) == experiments.run_key(run, evaluation)


# ---- sharding: N machines share --out, then one --merge builds the table -----------------

def test_two_shards_then_a_merge_give_the_unsharded_table_bit_for_bit(tiny_run, tmp_path, capsys):
    args = TINY + ["--seeds", "0", "1", "--out", str(tmp_path)]
    code, out = run(args + ["--shard", "0/2"], capsys)
    assert code == 0 and not (tmp_path / "table1.json").exists()  # a shard writes no table
    assert "shard 0/2: 4 of 8 runs" in out and "4 of 8 runs saved" in out
    code = reproduce.main(args + ["--merge"])  # half the runs: nothing is written
    err = capsys.readouterr().err
    assert code == 1 and not (tmp_path / "table1.json").exists()
    assert "4 of 8 runs are not saved" in err and "baseline+mls__seed1 (missing" in err
    assert run(args + ["--shard", "1/2"], capsys)[0] == 0
    code, out = run(args + ["--merge"], capsys)
    assert code == 0 and "to train" not in out
    merged = json.loads((tmp_path / "table1.json").read_text())["table"]
    assert merged == json.loads((tiny_run / "table1.json").read_text())["table"]
    def tables(folder):  # the markdown but its last line, the wall time of the invocation
        return [line for line in (folder / "table1.md").read_text().splitlines()
                if not line.startswith("Wall time")]
    assert tables(tmp_path) == tables(tiny_run)


def test_a_merge_refuses_shards_trained_with_another_configuration(tiny_run, tmp_path, capsys):
    args = TINY + ["--seeds", "0", "--out", str(tmp_path)]
    # Shard 0/2's runs trained with TINY: tiny_run's (the same runs, trained unsharded),
    # copied without its outputs; shard 1/2 is then trained with --epochs 2.
    shutil.copytree(tiny_run / "runs", tmp_path / "runs")
    other = [a if a != "1" else "2" for a in TINY] + ["--seeds", "0", "--out", str(tmp_path)]
    assert other != args and run(other + ["--shard", "1/2"], capsys)[0] == 0  # --epochs 2
    code = reproduce.main(args + ["--merge"])
    err = capsys.readouterr().err
    assert code == 1 and not (tmp_path / "table1.json").exists()
    assert "2 of 4 runs are not saved" in err and "different config" in err


def test_shard_assignment_is_fixed_and_covers_every_run_once():
    runs = reproduce.table1_runs(preset_config("default"), [0, 1, 2], "default")
    shards = [experiments.shard_of(runs, (k, 5)) for k in range(5)]
    assert sorted(r.name for s in shards for r in s) == sorted(r.name for r in runs)
    assert [r.name for r in shards[1]] == [runs[1].name, runs[6].name, runs[11].name]


@pytest.mark.parametrize("flags, words", [
    (["--shard", "2/2"], "K/N"), (["--shard", "1"], "K/N"), (["--shard", "a/b"], "K/N"),
    (["--shard", "0/0"], "K/N"), (["--shard", "-1/3"], "K/N"),
    (["--shard", "0/2", "--merge"], "not allowed with"),
])
def test_bad_shard_flags_exit_2_with_usage(flags, words, capsys, tmp_path):
    with pytest.raises(SystemExit) as exc:
        reproduce.main(TINY + flags + ["--out", str(tmp_path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage" in err and words in err


def test_the_retired_preset_name_is_an_error_naming_both_presets(capsys):
    """"authors" ran paper-4d, not the authors' code: the name is refused, and the message
    says which preset is which."""
    with pytest.raises(SystemExit) as exc:
        reproduce.parse_args(TINY + ["--preset", "authors"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--preset authors was retired" in err
    assert "--preset paper-4d" in err and "--preset authors-code" in err


def test_a_row_field_can_be_set_in_the_rows_named(tmp_path, capsys):
    args = reproduce.parse_args(TINY + ["--preset", "authors-code", "--rows", "nll-ml-invariance",
                                        "--set", "lambda_norm=0", "--set", "arch=mlp"])
    assert args.rows == {"nll-ml-invariance": dict(lambda_inv=0.5, lambda_norm=0.0)}
    runs = reproduce.table1_runs(preset_config("authors-code", arch="mlp"), [0], args.preset,
                                 args.rows)
    assert [(r.config.lambda_inv, r.config.lambda_norm) for r in runs] == [(0.5, 0.0)]
    with pytest.raises(SystemExit):  # a value the config refuses
        reproduce.parse_args(TINY + ["--rows", "baseline+mls", "--set", "lambda_sens=-1"])
    assert "lambda_sens: expected a number in [0, inf], got -1.0" in capsys.readouterr().err


def test_authors_code_side_by_side_scores_the_paper_column_as_their_code_did():
    # The paper's invariance column is their attack's test set fed 0..255; under authors-code
    # tinyadv's line beside it must show that column, not tinyadv's own generator's.
    def cell(value):
        return {"mean": value, "std": 0.5, "per_seed": [value - 0.5, value + 0.5]}
    table = {"nll-sensitivity": {"clean": cell(97.0), "fgsm": cell(96.0),
                                 "invariance_source": cell(70.0),
                                 "invariance_authors_raw": cell(84.0)}}
    audit = paper.audit(paper.load_author_logs())
    text = reproduce.format_side_by_side(table, audit, "authors-code", [0, 1])
    line = next(ln for ln in text.splitlines() if "tinyadv `authors-code`: nll-sensitivity" in ln)
    assert line.endswith("| 97.00 ± 0.50 | 96.00 ± 0.50 | 84.00 ± 0.50 |")
    assert "their attack, fed as their code fed it" in line
    default = reproduce.format_side_by_side({"baseline": table["nll-sensitivity"]}, audit,
                                            "default", [0, 1])
    assert "| 97.00 ± 0.50 | 96.00 ± 0.50 | 70.00 ± 0.50 |" in default


def test_the_comparisons_rest_on_the_runs_own_per_image_counts(tiny_run):
    """evidence.json: each row's per-seed counts are the table's per-seed accuracies; the
    printed families give Welch's interval and p over the seeds, recomputed here."""
    from scipy import stats as scipy_stats

    from tinyadv.lab import evidence, stats

    found = json.loads((tiny_run / "evidence.json").read_text())
    table = json.loads((tiny_run / "table1.json").read_text())["table"]
    for row, columns in found["correct"].items():
        for column in ("clean", "fgsm", "pgd", "invariance_source", "human_linf_eps04"):
            assert evidence.per_seed_percent(found, row, column) == pytest.approx(
                table[row][column]["per_seed"])
    assert [f["name"] for f in found["families"]] == ["invariance", "accuracy"]
    c = next(c for c in evidence.evaluate(found, "accuracy")
             if (c["a"], c["column"]) == ("baseline+mls", "clean"))
    ref = scipy_stats.ttest_ind(table["baseline+mls"]["clean"]["per_seed"],
                                table["baseline"]["clean"]["per_seed"], equal_var=False)
    if ref.pvalue == ref.pvalue:  # defined (the seeds differ)
        assert c["seeds"]["p"] == pytest.approx(ref.pvalue)
    md = (tiny_run / "table1.md").read_text()
    assert "Family `invariance` (9 comparisons; Holm-corrected inside the family)" in md
    assert "| baseline+mls − baseline | clean | 2, 2 | " in md
    assert stats.format_ci(c["seeds"]["ci"]) in md


def test_a_per_image_count_that_is_not_the_records_is_refused(tiny_run):
    from tinyadv.lab import evidence, perimage, recipes

    runs, records, runs_dir, evaluation, base = recipes.folder_runs(str(tiny_run), ["baseline"])
    sets = perimage.test_sets(evaluation, base.inv_eps, base.inv_shifts, authors=False)
    record = records[runs[0].name]
    params = evidence._experiments().load_params(runs_dir, runs[0].name)
    got = perimage.correctness(params, runs[0].config, evaluation, sets, record["results"],
                               ("clean", "pgd", "human_linf_eps04"))
    assert int(got["pgd"].sum()) == record["results"]["pgd"]["correct"]  # the same random start
    wrong = json.loads(json.dumps(record["results"]))
    wrong["pgd"]["correct"] += 1
    with pytest.raises(perimage.CountMismatch, match="pgd"):
        perimage.correctness(params, runs[0].config, evaluation, sets, wrong, ("pgd",))


def test_pgdcheck_more_starts_never_find_more_robust_images(tiny_run, tmp_path, capsys):
    from tinyadv.lab import pgdcheck

    assert pgdcheck.main([str(tiny_run), "--rows", "baseline", "baseline+mls", "--images", "60",
                          "--attacks", "3x1", "3x3", "--out", str(tmp_path)]) == 0
    text = (tmp_path / "pgdcheck.md").read_text()
    assert "| baseline | " in text and "Family `pgd check`" in text
    runs, _, runs_dir, _, _ = pgdcheck.recipes.folder_runs(str(tiny_run), ["baseline"])
    params = pgdcheck.evidence._experiments().load_params(runs_dir, runs[0].name)
    from tinyadv import data
    X, y = data.load_mnist("test")
    one = pgdcheck.worst_case_correct(params, X[:60], y[:60], 0.1, 3, 1, seed=0)
    three = pgdcheck.worst_case_correct(params, X[:60], y[:60], 0.1, 3, 3, seed=0)
    assert not np.any(three & ~one)  # the first start is the same; more can only remove


def test_the_probes_of_every_epoch_reach_the_matched_epoch_table(tmp_path, monkeypatch):
    """An authors-code run (the MLP, tiny) keeps each epoch's probe; the evidence carries them
    per seed and epoch, and the matched-epoch table sets them beside the logs' same epochs."""
    from tinyadv.lab import evidence, recipes, tables

    out = tmp_path / "ac"
    assert reproduce.main(TINY + ["--epochs", "2", "--preset", "authors-code", "--set",
                                  "arch=mlp", "--rows", "nll-ml-invariance", "--seeds", "0", "1",
                                  "--out", str(out)]) == 0
    found = recipes.collect_folders([(str(out), None, "")], "authors-code-mlp", "test", [],
                                    columns=recipes.AUTHORS_CODE_COLUMNS)
    history = found["history"]["nll-ml-invariance"]
    record = json.loads(next((out / "runs").glob("nll-ml-invariance*seed1.json")).read_text())
    assert history["raw"][1] == [e["probe"]["raw"] for e in record["history"]]
    assert len(history["clean"]) == 2 and len(history["clean"][0]) == 2  # seeds x epochs
    monkeypatch.setattr(recipes, "load", lambda name: found if name == "authors-code-mlp" else None)
    text = tables.block_matched_epochs()
    line = next(ln for ln in text.splitlines() if ln.startswith("| | tinyadv MLP"))
    clean = [s[0] for s in history["clean"]]
    raw = [s[0] for s in history["raw"]]
    assert line.split(" | ")[2] == f"{np.mean(clean):.2f} ± {np.std(clean, ddof=1):.2f} / " \
                                   f"{np.mean(raw):.2f} ± {np.std(raw, ddof=1):.2f}"
    assert "their logs | 80.36 ± 6.17 / 57.30 ± 5.97" in text  # nll-sensitivity, epoch 1
    ends = tables.block_authors_code()
    assert f"last {tables.END_PROBES} epochs" in ends
