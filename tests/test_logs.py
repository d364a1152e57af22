"""The authors' raw logs, read to the epoch (tinyadv/lab/logs.py): runs.csv and epochs.csv
rebuilt exactly, and the facts the audit rests on found in the logs, not typed in."""
import pytest

from tinyadv import data
from tinyadv.lab import logs, paper


@pytest.fixture(scope="module")
def raw():
    return logs.load_raw()


def _committed(name):
    with open(f"{logs.LOGS_DIR}/{name}", encoding="utf-8") as f:
        return f.read()


def test_runs_csv_and_epochs_csv_are_exactly_what_the_raw_logs_give(raw):
    assert logs.runs_csv_text(raw) == _committed("runs.csv")
    assert logs.epochs_csv_text(raw) == _committed("epochs.csv")
    assert paper.load_author_logs()  # and the audit's checksum is that of the rebuilt file


def test_every_log_is_read_to_its_last_epoch(raw):
    assert len(raw) == 25  # 24 final logs at cdfe2d1 and the one at 4f4bced
    final = [log for log in raw if log["commit"] == "cdfe2d1"]
    assert len(final) == 24 and all(len(log["epochs"]) == 200 for log in final)
    assert all(e["clean"] and e["fgsm"] and e["invariance_source"]
               for log in final for e in log["epochs"])
    assert all(e["steps_logged"] == 4 for log in raw for e in log["epochs"])


def test_the_config_swap_at_4f4bced(raw):
    """Each final nll-ml-* log names the other config file; it trained its own name's."""
    for log in raw:
        if log["commit"] == "cdfe2d1" and log["name"].startswith("nll-ml-"):
            other = {"nll-ml-invariance": "nll_ml_sensitivity.ini",
                     "nll-ml-sensitivity": "nll_ml_invariance.ini"}[log["name"]]
            assert log["config_named"] == other and log["config_version"] == "4f4bced"
            assert log["config_trained"] == log["name"].replace("-", "_") + ".ini"
        elif log["commit"] == "cdfe2d1":
            assert log["config_named"] == log["config_trained"]
    mli = next(log for log in raw if log["name"] == "nll-ml-invariance")
    assert mli["trains"] == "CE on FGSM images + triplet with invariance positives"


def test_the_overwritten_both_triplets_log(raw):
    """4f4bced's nll-ml-sensitivity_run_1.txt ran nll_ml_sens_invar.ini (both triplets):
    31 epochs started, 30 scored, at digit 6's share (9.58%) from epoch 14 on, but twice."""
    early = [log for log in raw if log["commit"] == "4f4bced"]
    assert len(early) == 1
    log = early[0]
    assert (log["name"], log["run"], log["config_named"]) == (
        "nll-ml-sensitivity", 1, "nll_ml_sens_invar.ini")
    assert "invariance positives + triplet with FGSM positives" in log["trains"]
    assert len(log["epochs"]) == 31 and log["epochs"][-1]["invariance_source"] is None
    scores = [e["invariance_source"] for e in log["epochs"][:30]]
    first = scores.index("9.58")
    assert first + 1 == 14
    assert [s for s in scores[first:] if s != "9.58"] == ["9.57", "9.59"]
    assert logs.share_digit("9.58") == 6
    # cdfe2d1's log of the same name is another run: 200 epochs of the MLS config
    later = next(l for l in raw if l["commit"] == "cdfe2d1" and l["file"] == log["file"])
    assert len(later["epochs"]) == 200 and later["config_trained"] == "nll_ml_sensitivity.ini"


def test_runs_csv_names_the_commit_of_the_numbers_it_holds(raw):
    rows = paper.load_author_logs()
    mls1 = next(r for r in rows if (r["config"], r["run"]) == ("nll-ml-sensitivity", 1))
    assert mls1["added_in_commit"] == "cdfe2d1" and mls1["invariance_source"] == 82.83
    assert {r["added_in_commit"] for r in rows} == {"cdfe2d1"}


def test_class_share_evidence_of_the_invariance_triplet_runs(raw):
    evidence = logs.class_share_evidence(raw)
    runs = {k: v for k, v in evidence["per_log"].items() if k.startswith("cdfe2d1/")}
    got = [(v["share_epochs"], v["collapse_epoch"], next(iter(v["by_digit"].items())))
           for _, v in sorted(runs.items())]
    assert got == [(166, 3, (3, 152)), (148, 4, (6, 116)), (133, 2, (7, 81))]
    assert all(v["max_after_collapse"] < logs.COLLAPSE_CEILING for v in runs.values())
    assert [v["last_share_digit"] for _, v in sorted(runs.items())] == [5, None, 1]
    assert evidence["control"] == {"epochs": 4200, "shares": 0}  # no other log ever does


def test_share_digit_reads_the_test_set_counts():
    assert [logs.share_digit(n / 100) for n in logs.TEST_LABEL_COUNTS] == list(range(10))
    assert logs.share_digit("10.00") is None and logs.share_digit(None) is None


def test_a_changed_raw_file_fails_its_checksum(tmp_path, monkeypatch):
    import shutil
    copy = tmp_path / "raw"
    shutil.copytree(logs.RAW_DIR, copy)
    target = copy / "cdfe2d1" / "experiment-results" / "nll-sensitivity_run_3.txt"
    target.write_bytes(target.read_bytes().replace(b"Accuracy: 85.67", b"Accuracy: 95.67"))
    monkeypatch.setattr(logs, "RAW_DIR", str(copy))
    with pytest.raises(data.DataFileError, match="nll-sensitivity_run_3.txt"):
        logs.load_raw()


def test_a_log_that_skips_an_epoch_is_refused():
    text = ("args: Namespace(config='./configs/nll_sensitivity.ini', device=0, reset=False)\n"
            "Training @ epoch = 0, 0/235, loss = 1.0, pos_mask = inf, neg_mask = inf\n"
            "Training @ epoch = 2, 0/235, loss = 1.0, pos_mask = inf, neg_mask = inf\n")
    with pytest.raises(logs.LogFormatError, match="epoch 3 follows 1"):
        logs.parse_log(text)


def test_check_mode_reports_a_stale_file(tmp_path, monkeypatch, capsys):
    (tmp_path / "runs.csv").write_text(_committed("runs.csv").replace("cdfe2d1", "4f4bced", 1))
    (tmp_path / "epochs.csv").write_text(_committed("epochs.csv"))
    monkeypatch.setattr(logs, "LOGS_DIR", str(tmp_path))
    assert logs.main(["--check"]) == 1
    out = capsys.readouterr().out
    assert "runs.csv: DIFFERS" in out and "epochs.csv: matches" in out
