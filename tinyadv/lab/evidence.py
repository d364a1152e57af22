"""Per-seed evidence: the numbers behind a table's comparisons, small enough to commit.

An *evidence* file (data/runs/<name>.json) holds, for one command's runs,

- ``correct``: per row, per column, the number of images each seed got right (``totals``
  gives the images of each column), so every per-seed accuracy is 100 * correct / total;
- ``values``: per row, other per-seed numbers (e.g. Figure 1's scatter ratio);
- ``families``: the comparisons the table makes, grouped by the question they answer, each
  with the summary of its paired per-image test (stats.difference_counts: how many images
  have each per-image difference) when both rows were scored on the same images;

and the command that made it. ``evaluate`` turns a family into comparisons (Welch over the
seeds, the paired per-image test, Holm inside a corrected family: stats.py), the same way
for a table printed by a command and for a test recomputing data/results.md.

``collect`` builds one from saved runs, recomputing each run's per-image correctness from its
weights (perimage.py); recipes.py says which runs make each committed file.
"""
import json
import os

import numpy as np

from ..fileio import write_text_atomic
from . import perimage, stats

__all__ = ["Family", "build", "command_text", "evaluate", "format_family", "load", "save",
           "per_seed_percent", "scored_runs", "collect", "EVIDENCE_DIR", "TABLE1_FAMILIES",
           "PROBE_KEYS", "DEFAULT_COLUMNS"]

EVIDENCE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "data", "runs")


class Family:
    """A question, the comparisons that answer it, and whether Holm corrects them: every
    (row a, row b) pair on every column, or an explicit list of (a, b, column)."""

    def __init__(self, name, question, pairs=(), columns=(), corrected=True, comparisons=None):
        self.name, self.question, self.corrected = name, question, corrected
        self._comparisons = (list(comparisons) if comparisons is not None else
                             [(a, b, c) for a, b in pairs for c in columns])

    def comparisons(self):
        return list(self._comparisons)


# Table 1's rows against the Baseline, in reproduce's presets: two questions, two families.
TABLE1_ROWS = ("baseline+mls", "baseline+mls+mli", "baseline+mls+mli(oracle)")
TABLE1_FAMILIES = (
    ("invariance", "Does a row change the invariance columns -- the paper's metric on "
                   "tinyadv's and on the paper's attack, and agreement with people -- "
                   "against the Baseline?",
     ("invariance_source", "invariance_authors", "human")),
    ("accuracy", "Does a row change clean, FGSM or PGD accuracy against the Baseline?",
     ("clean", "fgsm", "pgd")))


# Flags that change where or how runs are trained, never their numbers: left out of the
# command an evidence file names.
PLACE_FLAGS = {"--out": 1, "--jobs": 1, "--shard": 1, "--merge": 0}


def command_text(program, argv):
    """The command that makes a table's numbers: ``program`` and ``argv`` without the flags
    that only say where or how to train (PLACE_FLAGS)."""
    kept, skip = [], 0
    for item in argv:
        if skip:
            skip -= 1
            continue
        flag = item.split("=", 1)[0]
        if flag in PLACE_FLAGS:
            skip = PLACE_FLAGS[flag] if "=" not in item else 0
            continue
        kept.append(item)
    return " ".join([program, *kept])


def table1_families(rows):
    """TABLE1_FAMILIES for the rows a reproduction trained (each against the Baseline)."""
    pairs = [(row, "baseline") for row in TABLE1_ROWS if row in rows]
    if "baseline" not in rows or not pairs:
        return []
    return [Family(name, question, pairs, columns) for name, question, columns in TABLE1_FAMILIES]


def build(name, command, seeds, correct_by_run, totals, families, runs_of_row,
          values=None, notes=None):
    """An evidence dict (module docstring) from per-image correctness.

    Parameters
    ----------
    correct_by_run : {run name: {column: (N,) bool}} (perimage.correctness)
    totals : {column: N}
    runs_of_row : {row: [run name per seed, in the order of ``seeds``]}
    families : [Family]; each comparison gets its paired summary here
    values : {row: {name: [per-seed float]}} of other per-seed numbers
    """
    correct = {row: {c: [int(correct_by_run[run][c].sum()) for run in names] for c in totals}
               for row, names in runs_of_row.items()}
    stacked = lambda row, c: np.stack([correct_by_run[run][c] for run in runs_of_row[row]])  # noqa: E731
    fams = []
    for family in families:
        comps = [{"a": a, "b": b, "column": c,
                  "paired": (stats.difference_counts(stacked(a, c), stacked(b, c))
                             if c in totals else None)}  # per-seed values only: no pairs
                 for a, b, c in family.comparisons()]
        fams.append({"name": family.name, "question": family.question,
                     "corrected": family.corrected, "comparisons": comps})
    return {"name": name, "command": command, "seeds": list(seeds), "totals": dict(totals),
            "correct": correct, "values": values or {}, "families": fams,
            "notes": notes or []}


def per_seed_percent(evidence, row, column):
    """Per-seed accuracies in % (or the per-seed values of a non-count column)."""
    if column in evidence["correct"].get(row, {}):
        total = evidence["totals"][column]
        return [100.0 * k / total for k in evidence["correct"][row][column]]
    return list(evidence["values"][row][column])


def evaluate(evidence, family_name):
    """The family's comparisons, each: a, b, column, mean_a, mean_b, seeds (Welch, with
    p_family) and images (the paired test, with its own p_family; None when not paired)."""
    family = next(f for f in evidence["families"] if f["name"] == family_name)
    out = []
    for comp in family["comparisons"]:
        a = per_seed_percent(evidence, comp["a"], comp["column"])
        b = per_seed_percent(evidence, comp["b"], comp["column"])
        out.append({"a": comp["a"], "b": comp["b"], "column": comp["column"],
                    "mean_a": float(np.mean(a)), "mean_b": float(np.mean(b)),
                    "seeds": stats.welch(a, b),
                    "images": (stats.paired_from_counts(comp["paired"])
                               if comp.get("paired") else None)})
    stats.correct_family([c["seeds"] for c in out], family["corrected"])
    paired = [c["images"] for c in out if c["images"] is not None]
    if paired:
        stats.correct_family(paired, family["corrected"])
    return out


def format_family(evidence, family_name, labels=None):
    """Markdown: one line per comparison -- the two rows' means and sizes, the difference, its
    95% CI and p over the seeds (Welch) and, where both rows were scored on the same images,
    over the images (paired), and whether it is beyond the noise (stats.beyond_noise)."""
    family = next(f for f in evidence["families"] if f["name"] == family_name)
    labels = labels or {}
    correction = ("Holm-corrected inside the family" if family["corrected"] else
                  "**exploratory**: no correction for the number of comparisons")
    p_name = "p (Holm)" if family["corrected"] else "p"
    results = evaluate(evidence, family_name)
    paired = any(c["images"] is not None for c in results)
    text = (f"Family `{family['name']}` ({len(results)} comparisons; {correction}). "
            f"{family['question']} Seeds: Welch's t-test over the runs of each row (n). ")
    text += ("Images: paired t-test over the images both rows were scored on. " if paired else "")
    text += "Differences in points, 95% CIs per comparison."
    head = ["comparison", "column", "n", "means", "Δ", "seeds: 95% CI", f"seeds: {p_name}"]
    if paired:
        head += ["images: 95% CI", f"images: {p_name}"]
    head.append("beyond the noise")
    lines = [text, "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in results:
        s, i = c["seeds"], c["images"]
        cells = [f"{labels.get(c['a'], c['a'])} − {labels.get(c['b'], c['b'])}", c["column"],
                 f"{s['n'][0]}, {s['n'][1]}", f"{c['mean_a']:.2f} vs {c['mean_b']:.2f}",
                 stats.format_diff(s["diff"]), stats.format_ci(s["ci"]),
                 stats.format_p(s["p_family"])]
        if paired:
            cells += ([stats.format_ci(i["ci"]), stats.format_p(i["p_family"])] if i
                      else ["--", "--"])
        cells.append("**yes**" if stats.beyond_noise(s, i) else "no")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def load(name, folder=EVIDENCE_DIR):
    """The committed evidence file data/runs/<name>.json."""
    with open(os.path.join(folder, f"{name}.json"), encoding="utf-8") as f:
        return json.load(f)


def save(evidence, path):
    """Write an evidence dict as JSON, atomically (one line per row keeps diffs readable)."""
    write_text_atomic(path, json.dumps(evidence, indent=1, sort_keys=False) + "\n")


DEFAULT_COLUMNS = ("clean", "fgsm", "pgd", "invariance_source", "invariance_flipped",
                   "invariance_authors", "invariance_authors_raw", *perimage.HUMAN_POOLED,
                   *perimage.HUMAN_SET_COLUMNS)


# What an epoch's probe (experiments.epoch_probe) says, kept per epoch in the evidence.
PROBE_KEYS = ("raw", "scaled", "clean", "raw_direction", "raw_top_share")


def _experiments():
    from . import experiments  # imported late: experiments imports the training machinery
    return experiments


def scored_runs(runs, records, runs_dir, evaluation, sets, columns, prefix="", log=print,
                values=None, recorded=()):
    """Each run's per-image correctness recomputed from its weights and checked against
    ``records`` (perimage.correctness); rows named ``prefix`` + the run's "model" label.

    Returns
    -------
    dict(by_run={key: {column: (N,) bool}}, runs_of_row={row: [key per seed]}, seeds,
    seconds={row: [per seed]}, history={row: {probe key: [per seed: [per epoch]]}} for runs
    probed after every epoch, values={row: {name: [per seed]}} of ``values(params, config,
    sets)`` -> {name: float} when given, and of the record's own percentages for the columns
    in ``recorded``, kept as measured and not recomputed: no paired test for those)
    """
    out = {"by_run": {}, "runs_of_row": {}, "seeds": [], "seconds": {}, "history": {},
           "values": {}}
    tasks = [(runs_dir, run.name, run.config, evaluation, "sets", records[run.name]["results"],
              columns) for run in runs]
    recomputed = perimage.correctness_in_workers(tasks, {"sets": sets})
    for run in runs:
        record = records[run.name]
        row, seed = prefix + run.labels["model"], run.labels["seed"]
        key = f"{row}__seed{seed}"
        out["by_run"][key] = recomputed[run.name][0]
        out["runs_of_row"].setdefault(row, []).append(key)
        out["seconds"].setdefault(row, []).append(record["train_seconds"]
                                                  + record["eval_seconds"])
        if seed not in out["seeds"]:
            out["seeds"].append(seed)
        for column in recorded:
            out["values"].setdefault(row, {}).setdefault(column, []).append(
                float(record["results"][column]["percent"]))
        if values:
            params = _experiments().load_params(runs_dir, run.name)
            for name, value in values(params, run.config, sets).items():
                out["values"].setdefault(row, {}).setdefault(name, []).append(float(value))
        probes = [epoch.get("probe") for epoch in record["history"]]
        if probes and all(probes):
            for k in PROBE_KEYS:
                out["history"].setdefault(row, {}).setdefault(k, []).append(
                    [p[k] for p in probes])
    log(f"per-image correctness of {len(runs)} runs recomputed from their weights; every "
        f"count matches its record")
    return out


def _evidence(scored, name, command, families, columns):
    totals = {c: int(len(next(iter(scored["by_run"].values()))[c])) for c in columns}
    evidence = build(name, command, scored["seeds"], scored["by_run"], totals, families,
                     scored["runs_of_row"], values=scored["values"])
    evidence["run_seconds"] = scored["seconds"]
    if scored["history"]:
        evidence["history"] = scored["history"]
    return evidence


def collect(runs, records, runs_dir, evaluation, name, command, families,
            columns=DEFAULT_COLUMNS, sets=None, log=print):
    """Evidence for saved runs (scored_runs, then build); ``sets``: perimage.test_sets."""
    base = runs[0].config
    if sets is None:
        sets = perimage.test_sets(evaluation, base.inv_eps, base.inv_shifts,
                                  authors=any(c.startswith("invariance_authors") for c in columns))
    scored = scored_runs(runs, records, runs_dir, evaluation, sets, columns, log=log)
    return _evidence(scored, name, command, families, columns)
