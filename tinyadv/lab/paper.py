"""The paper's Table 1, and where its numbers come from in the authors' own training logs.

The paper (Ovalle, Czyzycki, Hsieh, AAAI-23 student abstract, arXiv 2211.02468) prints one
number per cell and says "Values are averaged over three randomly seeded runs". The authors'
public repository logged every run (data/ovalle2022_logs/, loaded by
``load_author_logs``). This module finds, for each row of the paper's table, the logged
run whose three accuracies equal the printed ones -- by searching, not by a hand-made
mapping -- and sets the printed number beside the mean and sample standard deviation of that
configuration's runs.

It also reads the logs to the epoch (logs.py): the configurations the paper does not print,
grouped by what they actually train (``trained_groups``: three configs train exactly the
Baseline, because their extra term has no gradient), each run's end of training as the mean
of its last END_EPOCHS epochs (``end_of_training``: a run's invariance score moves by
several points from one epoch to the next), and every group against the Baseline's nine
runs (``logs_evidence``: two Holm-corrected families, the printed rows and the rest; ``format_logs_audit``).
"""
import csv
import io
import os

import numpy as np

from .. import data
from . import evidence as evidence_module
from . import logs as logs_module


__all__ = ["load_author_logs", "audit", "format_audit", "find_printed_runs", "summarise_logged_configs",
           "logs_evidence", "format_logs_audit", "trained_groups", "end_of_training", "PAPER",
           "PAPER_TABLE1", "PAPER_COLUMNS", "LOGGED_CONFIG_CONTENTS", "END_EPOCHS"]

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
AUTHOR_LOGS_SHA256 = "5f0b325094397856fbdbb5b044d63191a4c29b142e52a9426bc440869c3e2d7d"
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


# ---- the logs read to the epoch ------------------------------------------------------------

END_EPOCHS = 10  # a run's end of training: the mean of its last 10 of 200 epochs
BASELINE = "Baseline"
# What each group of logged configs trains, and the name the audit gives it.
GROUP_NAMES = {"CE on FGSM images": BASELINE,
               "CE on FGSM images + triplet with FGSM positives": "MLS",
               "CE on FGSM images + triplet with invariance positives": "MLI",
               "CE on invariance images": "CE on the attack (nll-invariance)",
               "CE on clean images": "no adversarial training (clean-nll)"}


def end_of_training(log, column, last=END_EPOCHS):
    """The mean of a log's last ``last`` epochs of one column (accuracy in %)."""
    scored = [float(e[column]) for e in log["epochs"] if e[column]]
    if len(scored) < last:
        raise ValueError(f"{log['file']}: {len(scored)} epochs scored, fewer than {last}")
    return float(np.mean(scored[-last:]))


def trained_groups(logs):
    """{group name: [final logs]}: the 24 final logs grouped by what their loss has a gradient
    from (logs.what_it_trains without the no-gradient norm term)."""
    groups = {}
    for log in logs:
        if log["commit"] != logs_module.FINAL_COMMIT:
            continue
        trains = log["trains"].split(" (+")[0]
        groups.setdefault(GROUP_NAMES.get(trains, trains), []).append(log)
    return groups


def logs_evidence(logs):
    """The logs as an evidence dict (evidence.py): per group, per run, the final epoch and the
    mean of the last END_EPOCHS epochs of each column; one family, every group against the
    Baseline's runs on the end-of-training means, Holm-corrected."""
    groups = trained_groups(logs)
    values = {}
    for group, members in groups.items():
        values[group] = {}
        for column in PAPER_COLUMNS:
            values[group][column] = [end_of_training(log, column) for log in members]
            values[group][f"{column}_final"] = [float(log["epochs"][-1][column])
                                                for log in members]
        values[group]["configs"] = sorted({log["name"] for log in members})
    def family(name, question, groups_compared):
        return {"name": name, "corrected": True, "question": question,
                "comparisons": [{"a": g, "b": BASELINE, "column": c, "paired": None}
                                for g in groups_compared for c in PAPER_COLUMNS]}
    end = f"at the end of training (mean of the last {END_EPOCHS} of 200 epochs)"
    others = [g for g in groups if g not in (BASELINE, "MLS")]
    families = [
        family("logs: the paper's rows", "Does + MLS, the one printed row whose config "
               "computes a triplet, change clean, FGSM or invariance accuracy (their scoring) "
               f"against the Baseline, {end}?", ["MLS"]),
        family("logs: the configs the paper does not print", "Does a configuration the paper "
               "does not print change clean, FGSM or invariance accuracy (their scoring) "
               f"against the Baseline, {end}?", others)]
    return {"name": "authors-logs", "command": "python -m tinyadv.lab.logs", "seeds": [1, 2, 3],
            "totals": {}, "correct": {}, "values": values, "families": families,
            "notes": ["runs, not seeds: the authors seeded nothing"]}


def _spread(values):
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def format_logs_audit(logs):
    """Markdown: the logs read to the epoch -- what each config trained, the groups, the
    comparisons against the Baseline, the one-class collapse of the MLI runs."""
    lines = ["Every log: the config its first line names, and what it trained (a log is "
             "named after its config's `model_name`; at 4f4bced two config files carried "
             "each other's contents):", "",
             "| commit | log | epochs | first line names | trained (the cdfe2d1 file with its "
             "settings) | what that trains |", "|---|---|---|---|---|---|"]
    for log in logs:
        lines.append(f"| {log['commit']} | {log['file']} | {len(log['epochs'])} | "
                     f"{log['config_named']} | {log['config_trained']} | {log['trains']} |")
    ev = logs_evidence(logs)
    lines += ["", f"The logged configurations grouped by what they train; mean ± sample std "
                  f"over runs of the last epoch (as printed) and of each run's mean over its "
                  f"last {END_EPOCHS} epochs (end of training):", "",
              "| group | configs | runs | last epoch: clean / FGSM / invariance | last "
              f"{END_EPOCHS} epochs: clean / FGSM / invariance | invariance, run range |",
              "|---|---|---|---|---|---|"]
    for group, v in ev["values"].items():
        final = " / ".join(_spread(v[f"{c}_final"]) for c in PAPER_COLUMNS)
        end = " / ".join(_spread(v[c]) for c in PAPER_COLUMNS)
        inv = v["invariance_source"]
        lines.append(f"| {group} | {', '.join(v['configs'])} | {len(inv)} | {final} | {end} | "
                     f"{min(inv):.2f}-{max(inv):.2f} |")
    for fam in ev["families"]:
        lines += ["", evidence_module.format_family(ev, fam["name"])]
    shares = logs_module.class_share_evidence(logs)
    lines += ["The invariance-triplet runs' one-class collapse: epochs whose invariance score "
              "is exactly one digit's share of the 10,000 test images (a network that gives "
              "every invariance image one class d scores n_d / 100 %); collapsed = the first "
              f"epoch inside the shares' range {logs_module.SHARE_RANGE[0]:.2f}-"
              f"{logs_module.SHARE_RANGE[1]:.2f}:", "",
              "| log | epochs scored | exactly a digit's share | digits (epochs) | collapsed at "
              "epoch | highest after | last epoch |", "|---|---|---|---|---|---|---|"]
    for where, e in shares["per_log"].items():
        digits = ", ".join(f"{d} ({n})" for d, n in e["by_digit"].items())
        last = f"{e['last_score']:.2f}" + (f" (digit {e['last_share_digit']})"
                                           if e["last_share_digit"] is not None else "")
        lines.append(f"| {where} | {e['epochs_scored']} | {e['share_epochs']} | {digits} | "
                     f"{e['collapse_epoch']} | {e['max_after_collapse']:.2f} | {last} |")
    c = shares["control"]
    lines += ["", f"Control: {c['shares']} of the {c['epochs']} epochs of every other log "
                  f"score exactly a digit's share."]
    return "\n".join(lines) + "\n"
