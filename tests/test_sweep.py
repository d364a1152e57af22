"""python -m tinyadv.sweep: the grid, the statistics, the outputs of --quick, resuming, bad flags."""
import json

import pytest

from tinyadv.lab import sweep
from tinyadv.lab.reproduce import COLUMNS
from tinyadv.lab.configs import preset_config

BASE = preset_config("default")


def names(axes, protocols=("source",)):
    return [s.name for s, _ in sweep.grid_settings(axes, list(protocols), BASE)]


def test_default_grid_is_the_issues_18_settings():
    settings = sweep.grid_settings(sweep.DEFAULT_AXES, ["source"], BASE)
    assert len(settings) == 18  # 2 embeddings x (baseline + 2 MLS + 2 margins x 3 lambda_inv)
    kinds = [s.kind for s, _ in settings]
    assert kinds.count("baseline") == 2 and kinds.count("mls") == 4 and kinds.count("mli") == 12
    by_name = {s.name: c for s, c in settings}
    mli = by_name["mli embed_dim=4 margin=0.5 lambda_inv=8"]
    assert (mli.embed_dim, mli.margin, mli.lambda_inv, mli.lambda_sens, mli.lambda_norm,
            mli.protocol) == (4, 0.5, 8.0, 0.5, 1e-3, "source")
    base = by_name["baseline embed_dim=0"]
    assert base.lambda_sens == base.lambda_inv == base.lambda_norm == 0 and base.embed_dim == 0
    assert by_name["mls embed_dim=0 margin=0.05"].lambda_inv == 0
    # every setting compares with the baseline of its own embedding
    for setting, config in settings:
        assert dict(setting.context) == {"embed_dim": config.embed_dim}
    stems = {s.stem(0) for s, _ in settings}
    assert len(stems) == 18 and not any("/" in stem or " " in stem for stem in stems)


def test_grid_flags_add_up():
    args = sweep.parse_args(["--grid", "margin=0.1", "--grid", "lambda_inv=1,3"])
    assert args.axes == {"embed_dim": [0, 4], "margin": [0.1], "lambda_inv": [1.0, 3.0]}


def test_a_source_run_has_one_name_whatever_the_protocols():
    """So runs saved by a source-only sweep are reused when oracle runs are added."""
    source = set(names(sweep.DEFAULT_AXES))
    both = set(names(sweep.DEFAULT_AXES, ("source", "oracle")))
    assert source < both and len(both - source) == 12
    assert all(name.endswith("protocol=oracle") for name in both - source)


def test_protocols_multiply_only_the_mli_settings():
    both = sweep.grid_settings(sweep.DEFAULT_AXES, ["source", "oracle"], BASE)
    assert len(both) == 30
    assert sum(c.protocol == "oracle" for _, c in both) == 12
    assert "mli embed_dim=0 margin=0.5 lambda_inv=2 protocol=oracle" in [s.name for s, _ in both]


def test_a_grid_axis_replaces_or_adds_and_duplicates_are_trained_once():
    assert names({"embed_dim": [0], "margin": [0.5], "lambda_inv": [2.0]}) == [
        "baseline embed_dim=0", "mls embed_dim=0 margin=0.5", "mli embed_dim=0 margin=0.5 lambda_inv=2"]
    # the init x ce_on factorial of baselines alone: no triplet weights, each config once
    factorial = names({"init": ["he", "uniform"], "ce_on": ["clean+fgsm", "fgsm"],
                       "lambda_sens": [0.0], "lambda_inv": [0.0]})
    assert factorial == ["baseline init=he ce_on=clean+fgsm", "baseline init=he ce_on=fgsm",
                         "baseline init=uniform ce_on=clean+fgsm", "baseline init=uniform ce_on=fgsm"]
    # margin does not matter without a triplet: still a single baseline
    assert names({"margin": [0.05, 0.5], "lambda_sens": [0.0], "lambda_inv": [0.0]}) == ["baseline"]


@pytest.mark.parametrize("argv, words", [
    (["--grid", "embedding=0,4"], "unknown config field 'embedding'"),
    (["--grid", "embed_dim=zero"], "embed_dim: expected an integer"),
    (["--grid", "init=he,xavier"], "init"),
    (["--grid", "margin"], "FIELD=v1,v2"),
    (["--grid", "seed=1,2"], "--seeds"),
    (["--grid", "margin=0.1", "--grid", "margin=0.2"], "margin: given twice"),
    (["--grid", "epochs=0,1"], "--grid epochs: expected integers >= 1"),
    (["--preset", "paper-4d", "--grid", "adversarial=false"], "--grid with --preset paper-4d: ce_on"),
    (["--preset", "authors"], "--preset authors was retired"),
    (["--grid", "margin=0.1234567,0.1234568"], "too close to tell apart"),
    (["--protocols", "human"], "--protocols"),
    (["--seeds", "1", "1"], "--seeds"),
    (["--jobs", "0"], "--jobs"),
    (["--bogus"], "unrecognized"),
    (["--set", "invariance_generator=tramer2020"], "--set: invariance_generator: expected one of"),
    (["--set", "input_norm=authors,none"], "--set input_norm: expected one value"),
    (["--set", "margin=0.1", "--grid", "margin=0.2,0.3"], "--set margin: also given to --grid"),
])
def test_bad_flags_exit_2_naming_them(argv, words, capsys):
    with pytest.raises(SystemExit) as exc:
        sweep.main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage: python -m tinyadv.sweep" in err and words in err


def test_change_is_welch_with_its_interval_and_the_seed_spread():
    from scipy import stats as scipy_stats
    within = sweep.change([70.0, 72.0, 74.0], [70.5, 71.0, 71.5])
    assert within["diff"] == pytest.approx(1.0) and within["spread"] == pytest.approx(2.0)
    assert within["within_spread"] is True and 0 < within["welch_p"] < 1
    ref = scipy_stats.ttest_ind([70.0, 72.0, 74.0], [70.5, 71.0, 71.5], equal_var=False)
    assert within["welch_p"] == pytest.approx(ref.pvalue)
    assert within["ci"] == pytest.approx(tuple(ref.confidence_interval(0.95)))
    beyond = sweep.change([80.0, 80.5, 81.0], [70.0, 70.5, 71.0])
    assert beyond["within_spread"] is False and beyond["welch_p"] < 1e-3
    one_seed = sweep.change([80.0], [70.0])
    assert one_seed == {"diff": 10.0, "spread": None, "within_spread": None, "welch_p": None,
                        "ci": None}
    assert "one seed: no test" in sweep._fmt_change(one_seed)


def test_run_values_pool_the_human_sets_by_count():
    results = {c: {"percent": 50.0, "correct": 50, "total": 100} for c in COLUMNS}
    results["human_linf_manual_eps04"] = {"percent": 10.0, "correct": 5, "total": 50}
    record = {"results": results, "history": [{"active_sens": 0.25, "active_inv": 0.5}]}
    values = sweep.run_values(record)
    assert values["human_pooled"] == pytest.approx(100 * (3 * 50 + 5) / 350)
    assert values["active_sens"] == 25.0 and values["active_inv"] == 50.0
    assert values["fgsm_pgd_gap"] == 0.0


# 3 settings x 2 seeds, one epoch each (--quick's two are not needed for what is checked here:
# the outputs, the changes, reuse, shards, retraining a damaged run)
QUICK = ["--quick", "--epochs", "1", "--seeds", "0", "1", "--grid", "embed_dim=4"]


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("sweep")
    assert sweep.main(QUICK + ["--out", str(out)]) == 0
    return out


def test_quick_writes_every_column_both_plots_and_the_changes(quick):
    for name in ("sweep.json", "sweep.md", "sweep.png", "config.json", "evidence.json"):
        assert (quick / name).stat().st_size > 0
    result = json.loads((quick / "sweep.json").read_text())
    settings = result["settings"]
    assert list(settings) == ["baseline embed_dim=4", "mls embed_dim=4 margin=0.5",
                              "mli embed_dim=4 margin=0.5 lambda_inv=2"]
    for entry in settings.values():
        assert set(entry["columns"]) == set(sweep.SETTING_COLUMNS)
        assert all(len(cell["per_seed"]) == 2 for cell in entry["columns"].values())
    mli = settings["mli embed_dim=4 margin=0.5 lambda_inv=2"]
    assert mli["baseline"] == "baseline embed_dim=4"
    assert mli["columns"]["active_inv"]["mean"] > 0  # the term acted
    assert settings["baseline embed_dim=4"]["columns"]["active_sens"]["mean"] == 0
    base = settings["baseline embed_dim=4"]["columns"]["invariance_source"]["mean"]
    ch = mli["change"]["invariance_source"]
    assert ch["diff"] == pytest.approx(mli["columns"]["invariance_source"]["mean"] - base)
    # the paired per-image test sees the same difference of means, on the same 1000 images
    assert ch["paired"]["diff"] == pytest.approx(ch["diff"]) and ch["paired"]["n"] == 1000
    human = mli["change"]["human_pooled"]
    assert human["paired"]["n"] == 350 and human["paired"]["diff"] == pytest.approx(human["diff"])
    assert len(result["runs"]) == 6
    md = (quick / "sweep.md").read_text()
    assert "Δ invariance_source" in md and "**exploratory**" in md and "95% CI" in md
    assert "within spread" not in md


def test_quick_rerun_reuses_every_run_and_gives_the_same_numbers(quick, capsys):
    before = json.loads((quick / "sweep.json").read_text())["settings"]
    assert sweep.main(QUICK + ["--out", str(quick)]) == 0
    out = capsys.readouterr().out
    assert "reusing 6 saved run(s)" in out and "to train" not in out
    assert json.loads((quick / "sweep.json").read_text())["settings"] == before


def test_a_shard_trains_its_share_and_a_merge_gives_the_unsharded_sweep(quick, tmp_path, capsys):
    """The unsharded --quick sweep's folder with shard 1 of 3's runs and every output removed:
    the shard trains exactly those runs and writes no output; the merge gives the same sweep."""
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(quick, copy)
    for name in ("sweep.json", "sweep.md", "sweep.png", "evidence.json"):
        (copy / name).unlink()
    args = QUICK + ["--out", str(copy)]
    settings = sweep.grid_settings({**sweep.QUICK_AXES, "embed_dim": [4]}, ["source"], BASE)
    stems = [s.stem(seed) for s, _ in settings for seed in (0, 1)]
    mine = stems[1::3]  # shard 1 of 3: runs 1 and 4
    for stem in mine:
        for suffix in (".json", ".npz"):
            (copy / "runs" / (stem + suffix)).unlink()
    assert sweep.main(args + ["--merge"]) == 1 and not (copy / "sweep.json").exists()
    assert sweep.main(args + ["--shard", "1/3"]) == 0
    out = capsys.readouterr().out
    assert "shard 1/3: 2 of 6 runs" in out and "reusing 0" not in out
    assert sorted(line.split()[2] for line in out.splitlines()
                  if line.startswith("to train:")) == sorted(mine)
    assert not (copy / "sweep.json").exists()  # a shard writes no table
    assert sweep.main(args + ["--merge"]) == 0
    merged = json.loads((copy / "sweep.json").read_text())
    assert merged["settings"] == json.loads((quick / "sweep.json").read_text())["settings"]
    assert (copy / "evidence.json").read_text() == (quick / "evidence.json").read_text()
    assert sorted(merged["runs"]) == sorted(json.loads((quick / "sweep.json").read_text())["runs"])


def test_quick_rerun_trains_a_damaged_run_again_and_says_why(quick, tmp_path, capsys):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(quick, copy)
    before = json.loads((copy / "sweep.json").read_text())["settings"]
    npz = sorted((copy / "runs").glob("*.npz"))[0]
    npz.write_bytes(npz.read_bytes()[:-64])  # truncated beside a valid record
    assert sweep.main(QUICK + ["--out", str(copy)]) == 0
    out = capsys.readouterr().out
    assert f"to train: {npz.stem} (checksum mismatch in {npz.name}" in out
    assert "reusing 5 saved run(s)" in out
    assert json.loads((copy / "sweep.json").read_text())["settings"] == before


def test_the_mli_generator_is_a_grid_axis_that_names_its_runs():
    settings = sweep.grid_settings({"invariance_generator": ["nearest", "authors"],
                                    "margin": [0.05], "lambda_inv": [0.5]}, ["source"], BASE)
    by_name = {s.name: c for s, c in settings}
    assert by_name["mli invariance_generator=authors margin=0.05 lambda_inv=0.5"] \
        .invariance_generator == "authors"
    assert by_name["mli invariance_generator=nearest margin=0.05 lambda_inv=0.5"] \
        .invariance_generator == "nearest"
    assert len({s.stem(0) for s, _ in settings}) == len(settings) == 6


def test_set_fixes_a_field_as_a_one_value_axis():
    args = sweep.parse_args(["--quick", "--set", "invariance_generator=authors"])
    assert args.axes["invariance_generator"] == ["authors"]
    settings = sweep.grid_settings(args.axes, args.protocols, BASE)
    assert all(c.invariance_generator == "authors" for _, c in settings)
    assert all("invariance_generator=authors" in s.name for s, _ in settings)
