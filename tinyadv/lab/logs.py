"""The paper's authors' training logs, read to the epoch: python -m tinyadv.lab.logs

data/ovalle2022_logs/raw/ holds, byte for byte, the logs and config files the authors
committed at 4f4bced (2021-05-12: one log) and cdfe2d1 (2021-05-14: the 24 final logs).
Every log begins ``args: Namespace(config='./configs/<file>.ini', ...)``, prints four
training lines an epoch (steps 0, 60, 120, 180 of 235) with ``pos_mask`` and ``neg_mask``
-- despite their names, the batch means of the hardest-positive and hardest-negative angular
distances of their triplet miner, ``inf`` when no triplet is computed -- and after each epoch
the accuracy on the original (clean), sensitivity (their FGSM) and invariance (their attack,
against the source label) test sets, 10,000 images each.

This module parses them (``parse_log``), decides which config each log actually trained
(``trained_config``: a log is named after its config's ``model_name``, and at 4f4bced two
config files carried each other's contents), and writes

    data/ovalle2022_logs/runs.csv     the last epoch of each of the 24 final logs
    data/ovalle2022_logs/epochs.csv   every epoch of all 25 logs

and finds the facts the audit rests on (``class_share_evidence``: how many of each
invariance-triplet run's epochs score exactly one digit's share of the test set).

    python -m tinyadv.lab.logs            rewrite both CSV files from the raw logs
    python -m tinyadv.lab.logs --check    exit 1 unless both files equal what the logs give
"""
import argparse
import configparser
import csv
import functools
import hashlib
import io
import math
import os
import re
import sys

from .. import data
from ..fileio import write_text_atomic

__all__ = ["parse_log", "read_config", "what_it_trains", "trained_config", "load_raw",
           "runs_csv_text", "epochs_csv_text", "class_share_evidence", "share_digit",
           "main", "LOGS_DIR", "RAW_DIR", "COMMITS", "TEST_LABEL_COUNTS", "EPOCH_COLUMNS",
           "RUNS_COLUMNS"]

LOGS_DIR = os.path.join(data.DATA_DIR, "ovalle2022_logs")
RAW_DIR = os.path.join(LOGS_DIR, "raw")
# The SHA-256 of raw/SHA256SUMS, which lists the SHA-256 of every raw file.
RAW_MANIFEST_SHA256 = "998df576af9a007c2086943ac0736fbf062451e58c770e68736f9485a9855988"
COMMITS = ("4f4bced", "cdfe2d1")  # in the order they were made
FINAL_COMMIT = "cdfe2d1"  # the commit of the 24 final logs (runs.csv)
RESULTS_FOLDER = "pt-metric-invariance/experiment-results"  # in the authors' repository
# MNIST test images of each digit (data/README.md): a network that gives every image of a
# set one class d scores exactly TEST_LABEL_COUNTS[d] / 100 % against the source label.
TEST_LABEL_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)

_LOG_NAME = re.compile(r"^(?P<name>[a-z-]+)_run_(?P<run>\d+)\.txt$")
_ARGS = re.compile(r"^args: Namespace\(config='\./configs/(?P<file>[a-z_]+\.ini)'")
_STEP = re.compile(r"^Training @ epoch = (?P<epoch>\d+), (?P<step>\d+)/(?P<steps>\d+), "
                   r"loss = (?P<loss>\S+), pos_mask = (?P<pos>\S+), neg_mask = (?P<neg>\S+)$")
_TEST_SET = re.compile(r"^\*+(?P<set>original|sensitivity|invariance) test set \*+$")
_ACCURACY = re.compile(r"^Accuracy: (?P<value>[0-9.]+)$")
_EPOCH_END = re.compile(r"^Patience= -?\d+, Time=\S+, train_epoch_loss = (?P<loss>\S+), "
                        r"test_epoch_acc = (?P<acc>[0-9.]+)$")
TEST_SETS = {"original": "clean", "sensitivity": "fgsm", "invariance": "invariance_source"}


class LogFormatError(ValueError):
    """A log does not read the way every one of the authors' logs does."""


def parse_log(text, where="log"):
    """One log's first line and every epoch.

    Returns
    -------
    dict(config_named: the .ini file of its first line, epochs: list, one dict per epoch
    started, in order: epoch (1-based: the log's "epoch = k" is epoch k + 1), clean, fgsm,
    invariance_source (str as printed, or None where the log stops before it), pos, neg
    (the mean over the epoch's logged steps of pos_mask / neg_mask, None when they are inf:
    no triplet), train_loss (str, None if not printed), steps_logged)
    """
    lines = text.replace("\r", "").split("\n")
    match = _ARGS.match(lines[0]) if lines else None
    if not match:
        raise LogFormatError(f"{where}: the first line does not name a config: {lines[:1]!r}")
    epochs, pending_set = [], None
    for number, line in enumerate(lines[1:], start=2):
        if (m := _STEP.match(line)):
            epoch = int(m["epoch"]) + 1
            if not epochs or epochs[-1]["epoch"] != epoch:
                if epoch != len(epochs) + 1:
                    raise LogFormatError(f"{where}, line {number}: epoch {epoch} follows "
                                         f"{len(epochs)}")
                epochs.append({"epoch": epoch, "clean": None, "fgsm": None,
                               "invariance_source": None, "train_loss": None,
                               "_pos": [], "_neg": []})
            epochs[-1]["_pos"].append(float(m["pos"]))
            epochs[-1]["_neg"].append(float(m["neg"]))
        elif (m := _TEST_SET.match(line)):
            pending_set = TEST_SETS[m["set"]]
        elif (m := _ACCURACY.match(line)):
            if pending_set is None or not epochs:
                raise LogFormatError(f"{where}, line {number}: an accuracy with no test set")
            epochs[-1][pending_set], pending_set = m["value"], None
        elif (m := _EPOCH_END.match(line)):
            if not epochs or epochs[-1]["invariance_source"] != m["acc"]:
                raise LogFormatError(f"{where}, line {number}: the epoch's summary "
                                     f"({m['acc']}) is not its invariance accuracy")
            epochs[-1]["train_loss"] = m["loss"]
    for epoch in epochs:
        pos, neg = epoch.pop("_pos"), epoch.pop("_neg")
        finite = all(math.isfinite(v) for v in pos + neg)
        if not finite and not all(math.isinf(v) for v in pos + neg):
            raise LogFormatError(f"{where}, epoch {epoch['epoch']}: some steps computed a "
                                 f"triplet and some did not")
        epoch["steps_logged"] = len(pos)
        epoch["pos"] = sum(pos) / len(pos) if finite else None
        epoch["neg"] = sum(neg) / len(neg) if finite else None
    return {"config_named": match["file"], "epochs": epochs}


def read_config(text):
    """An authors' .ini file as {section: {key: value}}."""
    parser = configparser.ConfigParser()
    parser.read_string(text)
    return {section: dict(parser[section]) for section in parser.sections()}


def what_it_trains(config):
    """What a config's loss has a gradient from, as a short phrase.

    Cross-entropy on the clean, FGSM or invariance images ([x_ent] perturbation); each
    triplet block in use with its perturbed images ([triplet], [triplet_additional]). The
    ``add_norm_reg`` term, 0.5 * the norm of the *input images*, does not depend on the
    weights: it adds no gradient and is named apart, in brackets.
    """
    on = {"None": "clean", "sensitivity": "FGSM", "invariance": "invariance"}
    x_ent = config["x_ent"]
    parts = [f"CE on {on[x_ent['perturbation']]} images"]
    for block in ("triplet", "triplet_additional"):
        if config[block]["use"] == "True":
            parts.append(f"triplet with {on[config[block]['perturbation']]} positives")
    phrase = " + ".join(parts)
    if x_ent["add_norm_reg"] == "True":
        images = "invariance" if x_ent["norm_image_adversarial"] == "True" else "input"
        phrase += f" (+ 0.5 * norm of the {images} images: no gradient)"
    return phrase


def _verified_raw_files(raw_dir):
    """{relative path: bytes} of every raw file, each checked against raw/SHA256SUMS, whose
    own SHA-256 is RAW_MANIFEST_SHA256."""
    manifest_path = os.path.join(raw_dir, "SHA256SUMS")
    manifest = data.read_verified(manifest_path, RAW_MANIFEST_SHA256, decompress=False)
    files = {}
    for line in manifest.decode("ascii").splitlines():
        digest, _, relpath = line.partition("  ")
        files[relpath] = data.read_verified(os.path.join(raw_dir, relpath), digest,
                                            decompress=False)
    return files


def trained_config(log_name, config_named, configs):
    """Which config a log ran: the version, at either commit, of the file its first line
    names whose ``model_name`` is the log's name (logs are named after it). Raises
    LogFormatError if none, or two different versions, qualify.

    Returns
    -------
    (commit of that version, its parsed contents, the cdfe2d1 file with the same training
    settings -- the name a reader of the final repository would look up)
    """
    versions = []
    for commit in COMMITS:
        config = configs.get((commit, config_named))
        if config is not None and config["model"]["model_name"] == log_name:
            versions.append((commit, config))
    if not versions or any(c != versions[0][1] for _, c in versions[1:]):
        raise LogFormatError(f"{log_name}: {len(versions)} versions of {config_named} have "
                             f"model_name {log_name}; expected one (or identical ones)")
    commit, config = versions[0]
    training = {k: v for k, v in config.items() if k != "model"}
    final = [name for (c, name), other in sorted(configs.items()) if c == FINAL_COMMIT
             and {k: v for k, v in other.items() if k != "model"} == training]
    if len(final) != 1:
        raise LogFormatError(f"{log_name}: {len(final)} files at {FINAL_COMMIT} train what "
                             f"{config_named} at {commit} does; expected one")
    return commit, config, final[0]


def load_raw():
    """Every log at both commits, parsed, with the config it names and the one it trained
    (read and verified once per process and folder: the result is shared, do not change it).

    Returns
    -------
    list of dicts, ordered by commit then file name: commit, file, name (the log's config
    name), run, config_named, config_trained (the cdfe2d1 file it ran the settings of),
    config_version (the commit whose version of config_named it ran), trains
    (what_it_trains), triplet_computed, epochs (parse_log)
    """
    return _load_raw(RAW_DIR)


@functools.lru_cache(maxsize=4)
def _load_raw(raw_dir):
    files = _verified_raw_files(raw_dir)
    configs = {}
    for relpath, payload in files.items():
        commit, folder, name = relpath.split("/")
        if folder == "configs":
            configs[commit, name] = read_config(payload.decode("utf-8"))
    logs = []
    for commit in COMMITS:
        for relpath in sorted(p for p in files if p.startswith(f"{commit}/experiment-results/")):
            filename = relpath.rsplit("/", 1)[1]
            m = _LOG_NAME.match(filename)
            if not m:
                raise LogFormatError(f"{relpath}: expected <config>_run_<k>.txt")
            parsed = parse_log(files[relpath].decode("utf-8"), where=relpath)
            version, config, final_file = trained_config(m["name"], parsed["config_named"],
                                                         configs)
            logs.append({
                "commit": commit, "file": filename, "name": m["name"], "run": int(m["run"]),
                "config_named": parsed["config_named"], "config_trained": final_file,
                "config_version": version, "trains": what_it_trains(config),
                "triplet_computed": any(e["pos"] is not None for e in parsed["epochs"]),
                "epochs": parsed["epochs"]})
    return logs


RUNS_COLUMNS = ("config", "run", "clean", "fgsm", "invariance_source", "epochs_logged",
                "triplet_in_log", "added_in_commit", "log_file")


def _csv_text(header, rows):
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def runs_csv_text(logs):
    """runs.csv: the last epoch of every final (cdfe2d1) log, as printed, one row a log."""
    rows = []
    for log in logs:
        if log["commit"] != FINAL_COMMIT:
            continue
        last = log["epochs"][-1]
        rows.append([log["name"], log["run"], last["clean"], last["fgsm"],
                     last["invariance_source"], len(log["epochs"]),
                     "yes" if log["triplet_computed"] else "no", log["commit"],
                     f"{RESULTS_FOLDER}/{log['file']}"])
    return _csv_text(RUNS_COLUMNS, rows)


def share_digit(value):
    """The digit whose share of the 10,000 test images equals ``value`` (a printed
    percentage, str or float, two decimals), or None."""
    if value is None:
        return None
    hundredths = round(float(value) * 100)
    matches = [d for d, n in enumerate(TEST_LABEL_COUNTS) if n == hundredths]
    return matches[0] if matches else None


EPOCH_COLUMNS = ("commit", "log_file", "config", "run", "config_named", "config_trained",
                 "epoch", "clean", "fgsm", "invariance_source", "invariance_is_share_of_digit",
                 "pos_distance", "neg_distance", "train_loss")


def epochs_csv_text(logs):
    """epochs.csv: every epoch of every log (columns: EPOCH_COLUMNS; README)."""
    rows = []
    for log in logs:
        for e in log["epochs"]:
            digit = share_digit(e["invariance_source"])
            rows.append([log["commit"], log["file"], log["name"], log["run"],
                         log["config_named"], log["config_trained"], e["epoch"],
                         e["clean"] or "", e["fgsm"] or "", e["invariance_source"] or "",
                         "" if digit is None else digit,
                         "" if e["pos"] is None else f"{e['pos']:.6f}",
                         "" if e["neg"] is None else f"{e['neg']:.6f}", e["train_loss"] or ""])
    return _csv_text(EPOCH_COLUMNS, rows)


# Collapsed: a score inside the range of the ten digits' shares (8.92-11.35%), where a
# network that gives all images one class lands. Held: no later epoch above 20%, twice chance.
SHARE_RANGE = (min(TEST_LABEL_COUNTS) / 100, max(TEST_LABEL_COUNTS) / 100)
COLLAPSE_CEILING = 20.0


def class_share_evidence(logs):
    """For each log with an invariance triplet: how many epochs score exactly one digit's
    share of the test set, which digits and how often, the first collapsed epoch (a score in
    SHARE_RANGE) and the highest score after it; and, as a control, how many epochs of all
    other logs score a share.

    Returns
    -------
    dict(per_log={"<commit>/<file>": {...}}, control={"epochs": int, "shares": int})
    """
    per_log, control = {}, {"epochs": 0, "shares": 0}
    for log in logs:
        scores = [e["invariance_source"] for e in log["epochs"] if e["invariance_source"]]
        digits = [share_digit(s) for s in scores]
        if "invariance positives" not in log["trains"]:
            control["epochs"] += len(scores)
            control["shares"] += sum(d is not None for d in digits)
            continue
        values = [float(s) for s in scores]
        collapsed = next((i for i, v in enumerate(values)
                          if SHARE_RANGE[0] <= v <= SHARE_RANGE[1]), None)
        by_digit = {}
        for d in digits:
            if d is not None:
                by_digit[d] = by_digit.get(d, 0) + 1
        per_log[f"{log['commit']}/{log['file']}"] = {
            "epochs_scored": len(values), "share_epochs": sum(by_digit.values()),
            "by_digit": dict(sorted(by_digit.items(), key=lambda kv: (-kv[1], kv[0]))),
            "collapse_epoch": None if collapsed is None else collapsed + 1,
            "max_after_collapse": None if collapsed is None else max(values[collapsed:]),
            "first_score": values[0], "last_score": values[-1],
            "last_share_digit": digits[-1]}
    return {"per_log": per_log, "control": control}


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tinyadv.lab.logs",
        description="Rebuild data/ovalle2022_logs/runs.csv and epochs.csv from the authors' "
                    "raw logs (data/ovalle2022_logs/raw/), or check them.")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if either file differs from the logs")
    args = parser.parse_args(argv)
    logs = load_raw()
    outputs = {"runs.csv": runs_csv_text(logs), "epochs.csv": epochs_csv_text(logs)}
    status = 0
    for name, text in outputs.items():
        path = os.path.join(LOGS_DIR, name)
        if args.check:
            try:
                with open(path, encoding="utf-8") as f:
                    same = f.read() == text
            except OSError:
                same = False
            print(f"{path}: {'matches the raw logs' if same else 'DIFFERS from the raw logs'}")
            status |= 0 if same else 1
        else:
            write_text_atomic(path, text)
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
            print(f"wrote {path} ({len(text.splitlines()) - 1} rows, sha256 {digest})")
    evidence = class_share_evidence(logs)
    for where, e in evidence["per_log"].items():
        print(f"{where}: {e['share_epochs']} of {e['epochs_scored']} epochs score exactly one "
              f"digit's share {e['by_digit']}; first collapsed epoch {e['collapse_epoch']}, "
              f"highest score after it {e['max_after_collapse']}")
    c = evidence["control"]
    print(f"control: {c['shares']} of {c['epochs']} epochs of the other logs score a share")
    return status


if __name__ == "__main__":
    sys.exit(main())
