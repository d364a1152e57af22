"""The paper's Table 1, and where its numbers come from in the authors' own training logs.

The paper (Ovalle, Czyzycki, Hsieh, AAAI-23 student abstract, arXiv 2211.02468) prints one
number per cell and says "Values are averaged over three randomly seeded runs". The authors'
public repository logged every run (data/ovalle2022_logs/, loaded by
``load_author_logs``). This module finds, for each row of the paper's table, the logged
run whose three accuracies equal the printed ones -- by searching, not by a hand-made
mapping -- and sets the printed number beside the mean and sample standard deviation of that
configuration's runs.
"""
import csv
import io
import os

import numpy as np

from .. import data

__all__ = ["load_author_logs", "audit", "format_audit", "find_printed_runs", "summarise_logged_configs", "PAPER",
           "PAPER_TABLE1", "PAPER_COLUMNS", "LOGGED_CONFIG_CONTENTS"]

PAPER = "Ovalle, Czyzycki, Hsieh, AAAI-23 student abstract, arXiv 2211.02468"

# The paper's Table 1: accuracy in % on clean, FGSM and invariance test images. The
# invariance column scores the *source* label (see evaluate.py).
PAPER_TABLE1 = {
    "baseline": {"clean": 99.02, "fgsm": 98.95, "invariance_source": 85.67},
    "baseline+mls": {"clean": 99.38, "fgsm": 99.17, "invariance_source": 82.49},
    "baseline+mls+mli": {"clean": 99.09, "fgsm": 98.98, "invariance_source": 87.80},
}
PAPER_COLUMNS = ("clean", "fgsm", "invariance_source")
# Which triplet terms each row says it trains (MLS: sensitivity, MLI: invariance).
PAPER_ROW_TRIPLETS = {"baseline": (), "baseline+mls": ("MLS",), "baseline+mls+mli": ("MLS", "MLI")}

# What each logged configuration trains, from the authors' config files as committed with
# the logs (data/ovalle2022_logs/README.md). "input norm" is lambda * torch.norm(input
# images): it does not depend on the weights, so it adds nothing to any gradient.
LOGGED_CONFIG_CONTENTS = {
    "clean-nll": "CE on clean images",
    "clean-nll-norm": "CE on clean images + 0.5 * input norm (no gradient)",
    "nll-sensitivity": "CE on FGSM images",
    "nll-sensitivity-norm": "CE on FGSM images + 0.5 * input norm (no gradient)",
    "nll-sensitivity-norm-invar": "CE on FGSM images + 0.5 * invariance-input norm (no gradient)",
    "nll-invariance": "CE on invariance images",
    "nll-ml-sensitivity": "CE on FGSM images + angular triplet, FGSM positives (MLS)",
    "nll-ml-invariance": "CE on FGSM images + angular triplet, invariance positives (MLI)",
}

MATCH_TOLERANCE = 0.005  # the paper prints two decimals; so do the logs


AUTHOR_LOGS_FILE = os.path.join(data.DATA_DIR, "ovalle2022_logs", "runs.csv")
AUTHOR_LOGS_SHA256 = "124e989ec37e737d80682fa229fa935847ae06f30c7c6c47f0592a9328df9f7e"
# column -> how to read it (runs.csv's columns are described in data/ovalle2022_logs/README.md)
AUTHOR_LOG_COLUMNS = {
    "config": str, "run": int, "clean": float, "fgsm": float, "invariance_source": float,
    "epochs_logged": int, "triplet_in_log": {"yes": True, "no": False}.__getitem__,
    "added_in_commit": str, "log_file": str,
}




def load_author_logs(path=AUTHOR_LOGS_FILE, expected_sha256=AUTHOR_LOGS_SHA256):
    """The final test accuracies of every training run the paper's authors logged.

    One dict per run (Ovalle et al.'s public repository, see data/ovalle2022_logs/README.md):
    config (str), run (1-3), clean, fgsm, invariance_source (accuracy in %), epochs_logged,
    triplet_in_log (bool: did any logged step compute a triplet loss), added_in_commit,
    log_file. Numbers copied from the authors' logs, not computed by tinyadv.
    """
    text = data.read_verified(path, expected_sha256, decompress=False).decode("utf-8")
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != list(AUTHOR_LOG_COLUMNS):
        raise data.DataFileError(f"{path}: expected the columns {list(AUTHOR_LOG_COLUMNS)}, got "
                            f"{reader.fieldnames}. {data.restore_hint(path)}")
    rows = []
    for line, row in enumerate(reader, start=2):
        try:
            rows.append({k: read(row[k]) for k, read in AUTHOR_LOG_COLUMNS.items()})
        except (KeyError, ValueError, TypeError) as err:
            raise data.DataFileError(f"{path}, line {line}: cannot read {row} ({err!r}). "
                                f"{data.restore_hint(path)}") from err
    return rows


def summarise_logged_configs(logs):
    """Per logged configuration: its runs, their mean and sample std, and whether any run
    computed a triplet loss.

    Returns
    -------
    dict config -> {"runs": {run: {column: %}}, "mean": {column: %}, "std": {column: %},
    "n_runs": int, "triplet_computed": bool, "trains": str}
    """
    summary = {}
    for config in sorted({row["config"] for row in logs}):
        rows = sorted((r for r in logs if r["config"] == config), key=lambda r: r["run"])
        values = {c: np.array([r[c] for r in rows]) for c in PAPER_COLUMNS}
        summary[config] = {
            "runs": {r["run"]: {c: r[c] for c in PAPER_COLUMNS} for r in rows},
            "mean": {c: float(v.mean()) for c, v in values.items()},
            "std": {c: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for c, v in values.items()},
            "n_runs": len(rows),
            "triplet_computed": any(r["triplet_in_log"] for r in rows),
            "trains": LOGGED_CONFIG_CONTENTS.get(config, "see data/ovalle2022_logs/README.md"),
        }
    return summary


def find_printed_runs(logs, table=PAPER_TABLE1):
    """For each paper row, the logged (config, run) pairs whose three accuracies all equal the
    printed ones (within rounding). An honest audit expects exactly one match per row.

    Returns
    -------
    dict paper row -> list of {"config": str, "run": int}
    """
    matches = {}
    for row, printed in table.items():
        matches[row] = [{"config": r["config"], "run": r["run"]} for r in logs
                        if all(abs(r[c] - printed[c]) <= MATCH_TOLERANCE for c in PAPER_COLUMNS)]
    return matches


def audit(logs):
    """Everything table1.json carries about the paper: its rows, each row's source in the
    logs with the mean and spread of that configuration, and every logged configuration."""
    configs = summarise_logged_configs(logs)
    rows = {}
    for row, found in find_printed_runs(logs).items():
        entry = {"paper": PAPER_TABLE1[row], "matches": found,
                 "row_claims_triplets": list(PAPER_ROW_TRIPLETS[row])}
        if len(found) == 1:
            config = found[0]["config"]
            entry.update(config=config, printed_run=found[0]["run"], **{
                k: configs[config][k] for k in ("runs", "mean", "std", "n_runs",
                                                 "triplet_computed", "trains")})
        rows[row] = entry
    return {"source": "data/ovalle2022_logs/runs.csv: final test accuracies of every run the "
                      "authors logged (eczy/sensitivity-invariance-tradeoff, branch dev)",
            "paper_rows": rows, "logged_configs": configs}


def _mean_std(summary, column):
    return f"{summary['mean'][column]:.2f} ± {summary['std'][column]:.2f}"


def format_audit(block):
    """Markdown: each paper row beside the logged runs it came from, then every config."""
    lines = ["The paper's Table 1 beside its authors' own logs (three runs per configuration; "
             "mean ± sample std):", "",
             "| paper row | printed: clean / FGSM / invariance | logged config | row claims "
             "| triplet computed | runs 1, 2, 3: invariance | printed = run "
             "| mean ± std: clean / FGSM / invariance |",
             "|---|---|---|---|---|---|---|---|"]
    for row, entry in block["paper_rows"].items():
        printed = " / ".join(f"{entry['paper'][c]:.2f}" for c in PAPER_COLUMNS)
        claims = " + ".join(entry["row_claims_triplets"]) or "no triplet"
        if "config" not in entry:
            lines.append(f"| {row} | {printed} | no single logged run matches "
                         f"({len(entry['matches'])} do) | {claims} | | | | |")
            continue
        runs = ", ".join(f"{entry['runs'][k]['invariance_source']:.2f}" for k in sorted(entry["runs"]))
        means = " / ".join(_mean_std(entry, c) for c in PAPER_COLUMNS)
        computed = "yes" if entry["triplet_computed"] else "no"
        if entry["row_claims_triplets"] and not entry["triplet_computed"]:
            computed = "**no**"  # the row says it trains a triplet term; its run computed none
        lines.append(f"| {row} | {printed} | {entry['config']} | {claims} | {computed} | {runs} "
                     f"| {entry['printed_run']} | {means} |")
    lines += ["", "Every logged configuration:", "",
              "| config | trains | triplet computed | clean | FGSM | invariance (source) |",
              "|---|---|---|---|---|---|"]
    for config, summary in block["logged_configs"].items():
        lines.append(f"| {config} | {summary['trains']} | "
                     f"{'yes' if summary['triplet_computed'] else 'no'} | "
                     + " | ".join(_mean_std(summary, c) for c in PAPER_COLUMNS) + " |")
    return "\n".join(lines) + "\n"
