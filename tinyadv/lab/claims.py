"""Every finding, reproducible from the repository: python -m tinyadv.lab.claims

Each claim of data/results.md and of the README's Findings has a row in the claims table:
what is claimed, how many runs, the effect, its 95% confidence interval and p, the family it
is corrected in, the command that makes its runs and how long that takes. The numbers are
computed here from committed data only -- the authors' raw logs (data/ovalle2022_logs/) and
the per-seed evidence of tinyadv's runs (data/runs/*.json, evidence.py) -- and so are the
tables of data/results.md between the markers

    <!-- begin generated: NAME -->  ...  <!-- end generated: NAME -->

    python -m tinyadv.lab.claims --write     rewrite those blocks from the committed data
    python -m tinyadv.lab.claims --check     exit 1 naming every block that differs
    python -m tinyadv.lab.claims collect NAME [--results DIR]
                                             rebuild data/runs/NAME.json from the saved runs
                                             of its command (RECIPES says which folders)

tests/test_claims.py runs --check, and checks that every p-value and interval printed in
data/results.md or the README's Findings outside those blocks sits in a sentence naming its
claim ([C3]) and equals that claim's.
"""
import argparse
import json
import os
import re
import sys

import numpy as np

from . import evidence, logs, paper, stats
from .evidence import Family

__all__ = ["CLAIMS", "RECIPES", "BLOCKS", "claim_rows", "generate", "check", "write", "main",
           "RESULTS_MD", "README"]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS_MD = os.path.join(ROOT, "data", "results.md")
README = os.path.join(ROOT, "README.md")
BEGIN = "<!-- begin generated: {} (python -m tinyadv.lab.claims --write) -->"
END = "<!-- end generated: {} -->"


# ---- where each evidence file comes from ------------------------------------------------

def _mlp_values(params, config, sets):
    from . import perimage
    return perimage.fgsm_scatter_ratio(params, config, sets)


AUTHORS_CODE_COLUMNS = ("clean", "fgsm", "pgd", "invariance_authors_raw", "invariance_authors",
                        "human")
CNN_COLUMNS = ("clean", "fgsm", "invariance_source", "invariance_flipped", "invariance_authors",
               "human", "human_kept", "human_changed", *("human_" + s for s in (
                   "linf_eps03", "linf_eps04", "linf_manual_eps04", "l0")))
CHOICES = {"fgsm_clamp=pixels": ("nll-sensitivity", "nll-ml-invariance"),
           "leak_clean_grad=false": ("nll-sensitivity", "nll-ml-invariance"),
           "triplet=paper": ("nll-ml-invariance",),
           "invariance_input=pixels": ("nll-ml-invariance",),
           "lambda_norm=0": ("nll-ml-invariance",)}
THEIR_CODE = "their code: "


def _choices_family():
    comparisons = []
    for switch, rows in CHOICES.items():
        for row in rows:
            for column in ("clean", "fgsm", "invariance_authors_raw", "invariance_authors"):
                if switch == "fgsm_clamp=pixels" and column == "fgsm":
                    continue  # with the pixel clamp, "their FGSM" is another attack
                comparisons.append((f"{switch}: {row}", THEIR_CODE + row, column))
    return [Family("choices", "Does switching one of the authors' choices to the paper's way "
                   "change a column against their code's run of the same row?",
                   comparisons=comparisons)]


def _cnn_families():
    pair = [("baseline+mls+mli", "baseline")]
    return [Family("cnn: invariance", "On the authors' CNN, does + MLS + MLI change the paper's "
                   "metric (on tinyadv's and on the paper's attack) or agreement with people "
                   "-- all 350 images, those whose label people kept, those they changed -- "
                   "against the Baseline?", pair,
                   ("invariance_source", "invariance_authors", "human", "human_kept",
                    "human_changed")),
            Family("cnn: accuracy", "On the authors' CNN, does + MLS + MLI change clean or "
                   "FGSM accuracy against the Baseline?", pair, ("clean", "fgsm"))]


AC = "python -m tinyadv.reproduce --preset authors-code --set arch=mlp --epochs 30"
RECIPES = {
    "default": dict(parts=[("default-6seeds", None, "")], values=_mlp_values,
                    command="python -m tinyadv.reproduce --seeds 0 1 2 3 4 5"),
    "paper-4d": dict(parts=[("paper-4d", None, "")], values=_mlp_values,
                     command="python -m tinyadv.reproduce --preset paper-4d"),
    "paper-4d-eps0031": dict(parts=[("paper-4d-eps0031", None, "")], values=_mlp_values,
                             command="python -m tinyadv.reproduce --preset paper-4d --set "
                                     "fgsm_eps=0.0031 --seeds 0 1 2 3 4 5"),
    "paper-4d-authorsgen": dict(parts=[("paper-4d-authorsgen", None, "")],
                                command="python -m tinyadv.reproduce --preset paper-4d --set "
                                        "invariance_generator=authors"),
    "paper-4d-inputnorm": dict(parts=[("paper-4d-inputnorm", None, "")],
                               command="python -m tinyadv.reproduce --preset paper-4d --set "
                                       "input_norm=authors"),
    "authors-code-mlp": dict(parts=[("authors-code-mlp", None, "")], families=[],
                             columns=AUTHORS_CODE_COLUMNS, command=AC),
    "choices": dict(parts=[("authors-code-mlp", ["nll-sensitivity", "nll-ml-invariance"],
                            THEIR_CODE)]
                    + [(f"choice-{switch.split('=')[0]}", list(rows), f"{switch}: ")
                       for switch, rows in CHOICES.items()],
                    families=_choices_family(), columns=("clean", "fgsm",
                                                          "invariance_authors_raw",
                                                          "invariance_authors"),
                    command=f"{AC} --set FIELD=VALUE --rows ROW ..."),
    "authors-code": dict(parts=[("authors-code", None, "")], families=[],
                         columns=AUTHORS_CODE_COLUMNS,
                         command="python -m tinyadv.reproduce --preset authors-code --rows "
                                 "nll-sensitivity nll-ml-sensitivity nll-ml-invariance"),
    "cnn10": dict(parts=[("cnn10", None, "")], families=_cnn_families(), columns=CNN_COLUMNS,
                  values=_mlp_values,
                  command="python -m tinyadv.reproduce --preset paper-4d --set arch=cnn --rows "
                          "baseline baseline+mls+mli --seeds 0 1 2 3 4 5 6 7 8 9"),
}
# Made by their own commands (evidence.json beside their tables): copied, not collected.
OWN_EVIDENCE = {"sweep": "python -m tinyadv.sweep",
                "sweep-init": "python -m tinyadv.sweep --grid init=he,uniform "
                              "ce_on=clean+fgsm,fgsm embed_dim=0,4 lambda_sens=0 lambda_inv=0",
                "sweep-norm": "python -m tinyadv.sweep --grid embed_dim=0,4 margin=0.05 "
                              "lambda_norm=0,0.001 lambda_inv=0",
                "pgd-check": "python -m tinyadv.lab.pgdcheck results/default-6seeds --rows "
                             "baseline baseline+mls --images 5000 --attacks 10x1 50x3 100x1 "
                             "--evidence pgd-check"}


def collect(name, results_root):
    """Rebuild data/runs/NAME.json from the saved runs RECIPES[name] names."""
    recipe = RECIPES[name]
    parts = [(os.path.join(results_root, folder), rows, prefix)
             for folder, rows, prefix in recipe["parts"]]
    found = evidence.collect_folders(parts, name, recipe["command"], recipe.get("families"),
                                     recipe.get("columns", evidence.DEFAULT_COLUMNS),
                                     values=recipe.get("values"))
    path = os.path.join(evidence.EVIDENCE_DIR, f"{name}.json")
    evidence.save(found, path)
    return path


def _load(name):
    """The committed evidence NAME, or None when it has not been collected yet."""
    if name == "authors-logs":
        return paper.logs_evidence(_raw_logs())
    path = os.path.join(evidence.EVIDENCE_DIR, f"{name}.json")
    return evidence.load(name) if os.path.exists(path) else None


_RAW = {}


def _raw_logs():
    if "logs" not in _RAW:
        _RAW["logs"] = logs.load_raw()
    return _RAW["logs"]


# ---- tables -----------------------------------------------------------------------------

def _missing(name):
    recipe = RECIPES.get(name)
    command = recipe["command"] if recipe else OWN_EVIDENCE.get(name, "?")
    how = (f"then `python -m tinyadv.lab.claims collect {name}`" if recipe else
           f"then copy its evidence.json to data/runs/{name}.json")
    return f"*Not collected yet: run `{command}`, {how}.*\n"


def _cell(values):
    if len(values) < 2:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def _gap(ev, row):
    """FGSM − PGD in points, per seed."""
    fgsm = evidence.per_seed_percent(ev, row, "fgsm")
    pgd = evidence.per_seed_percent(ev, row, "pgd")
    return [f - p for f, p in zip(fgsm, pgd)]


def rows_table(ev, columns, rows=None, labels=None, first="row"):
    """Markdown: mean ± sample std over seeds of each row's columns (accuracy in %)."""
    rows = list(ev["correct"] if rows is None else rows)
    labels = labels or {}
    head = [labels.get(c, c) for c in columns]
    lines = [f"| {first} | " + " | ".join(head) + " |", "|---|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for c in columns:
            if c == "fgsm_pgd_gap":
                cells.append(_cell(_gap(ev, row)))
            elif c in ev["correct"].get(row, {}) or c in ev["values"].get(row, {}):
                cells.append(_cell(evidence.per_seed_percent(ev, row, c)))
            else:
                cells.append("")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _seeds(ev):
    return ", ".join(str(s) for s in ev["seeds"])


FULL_COLUMNS = ("clean", "fgsm", "pgd", "invariance_source", "invariance_flipped",
                "human_linf_eps03", "human_linf_eps04", "human_linf_manual_eps04", "human_l0",
                "human", "invariance_authors", "fgsm_pgd_gap")
COLUMN_LABELS = {"invariance_source": "invariance (source)",
                 "invariance_flipped": "invariance (flipped)",
                 "human_linf_eps03": "human l∞ ε=0.3", "human_linf_eps04": "human l∞ ε=0.4",
                 "human_linf_manual_eps04": "human l∞ manual", "human_l0": "human l0",
                 "human": "human (350)", "human_kept": "human, label kept (193)",
                 "human_changed": "human, label changed (157)",
                 "invariance_authors": "the authors' attack (source)",
                 "invariance_authors_raw": "the authors' attack, fed 0..255",
                 "fgsm_pgd_gap": "FGSM − PGD (points)", "scatter_ratio": "scatter ratio"}


def block_table1():
    out = []
    for name, title in (("default", "`default`"), ("paper-4d", "`paper-4d`"),
                        ("paper-4d-authorsgen", "`paper-4d --set invariance_generator=authors`"),
                        ("paper-4d-inputnorm", "`paper-4d --set input_norm=authors`")):
        ev = _load(name)
        if ev is None:
            out.append(f"{title}: " + _missing(name))
            continue
        out.append(f"{title} (`{ev['command']}`), seeds {_seeds(ev)}, mean ± sample std, in %:\n")
        out.append(rows_table(ev, FULL_COLUMNS, labels=COLUMN_LABELS, first="model"))
        for fam in ev["families"]:
            if name in ("default", "paper-4d") or fam["name"] == "invariance":
                out.append(evidence.format_family(ev, fam["name"]))
    return "\n".join(out)


def block_eps0031():
    ev = _load("paper-4d-eps0031")
    if ev is None:
        return _missing("paper-4d-eps0031")
    out = [f"`{ev['command']}`, seeds {_seeds(ev)}, mean ± sample std, in %:\n",
           rows_table(ev, ("clean", "fgsm", "pgd", "invariance_source", "invariance_flipped",
                           "human", "human_kept", "human_changed", "invariance_authors"),
                      labels=COLUMN_LABELS, first="model")]
    out += [evidence.format_family(ev, fam["name"]) for fam in ev["families"]]
    return "\n".join(out)


def block_scatter():
    """Figure 1's scatter ratio, without and with the invariance term, per preset."""
    lines = ["Figure 1's within/between-class scatter ratio of the embeddings of each model's "
             "own FGSM test images (smaller = tighter; `plots.scatter_ratio`), mean ± sample "
             "std over seeds; + MLS + MLI against + MLS (Figure 1's two panels), Welch over the "
             "seeds, family `figure 1` (one comparison a preset, Holm-corrected):", "",
             "| preset | seeds | + MLS | + MLS + MLI | Δ | 95% CI | p (Holm) | beyond the noise |",
             "|---|---|---|---|---|---|---|---|"]
    for name, b_row, a, b, w in scatter_comparisons():
        without = _cell3(b) + ("" if b_row == "baseline+mls" else " (Baseline: no + MLS row)")
        lines.append(f"| {name} | {len(a)} | {without} | {_cell3(a)} | {w['diff']:+.3f} | "
                     f"[{w['ci'][0]:+.3f}, {w['ci'][1]:+.3f}] | {stats.format_p(w['p_family'])} "
                     f"| {'**yes**' if stats.beyond_noise(w) else 'no'} |")
    return "\n".join(lines) + "\n"


SCATTER_PRESETS = ("default", "paper-4d", "cnn10")


def scatter_comparisons():
    """[(preset, the row without MLI, with, without, Welch)], family `figure 1`, Holm."""
    comps = []
    for name in SCATTER_PRESETS:
        ev = _load(name)
        if ev is None or "scatter_ratio" not in ev["values"].get("baseline+mls+mli", {}):
            continue
        a = ev["values"]["baseline+mls+mli"]["scatter_ratio"]
        b_row = "baseline+mls" if "baseline+mls" in ev["values"] else "baseline"
        b = ev["values"][b_row]["scatter_ratio"]
        comps.append((name, b_row, a, b, stats.welch(a, b)))
    stats.correct_family([c[-1] for c in comps])
    return comps


def _scatter_claim(preset):
    def compute():
        for name, b_row, a, b, w in scatter_comparisons():
            if name == preset:
                return {"n": f"{len(a)} + {len(b)} seeds",
                        "effect": f"{np.mean(a):.3f} vs {np.mean(b):.3f} ({b_row}): "
                                  f"{w['diff']:+.3f}".replace("-", "−"),
                        "ci": f"[{w['ci'][0]:+.3f}, {w['ci'][1]:+.3f}]".replace("-", "−"),
                        "p": stats.format_p(w["p_family"]),
                        "test": f"Welch over seeds, `figure 1` (Holm, {len(SCATTER_PRESETS)})",
                        "images": "--", "beyond": "**yes**" if stats.beyond_noise(w) else "no"}
        return None
    return compute


def _sweep_fact():
    ev = _load("sweep")
    if ev is None:
        return None
    results = evidence.evaluate(ev, "sweep")
    base_of = {c["a"]: c["b"] for c in results}
    return f"{len(base_of)} settings x {len(ev['seeds'])} seeds", sweep_summary(
        ev, results, base_of).split(". Over all")[0]


def _cell3(values):
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def block_sweep():
    ev = _load("sweep")
    if ev is None:
        return _missing("sweep")
    results = evidence.evaluate(ev, "sweep")
    by = {(c["a"], c["column"]): c for c in results}
    settings = list(ev["correct"])
    base_of = {c["a"]: c["b"] for c in results}
    lines = [f"`{ev['command']}`, seeds {_seeds(ev)}: each setting's mean ± sample std and, in "
             "brackets, its change against the baseline of its embedding with the 95% CI over "
             "seeds (Welch); **bold** where beyond the noise (p < 0.05 over the seeds and in the "
             "paired per-image test; family `sweep`, **exploratory**: no correction for its "
             f"{len(results)} comparisons):", "",
             "| setting | clean | PGD-10 | invariance (source): the paper's metric | human "
             "agreement (350 images) | MLI hinges active, last epoch |",
             "|---|---|---|---|---|---|"]
    for setting in settings:
        cells = []
        for column in ("clean", "pgd", "invariance_source", "human"):
            text = _cell(evidence.per_seed_percent(ev, setting, column))
            c = by.get((setting, column))
            if c is not None:
                change = (f"{stats.format_diff(c['seeds']['diff'])} "
                          f"{stats.format_ci(c['seeds']['ci'])}")
                if stats.beyond_noise(c["seeds"], c["images"]):
                    change = f"**{change}**"
                text += f" ({change})"
            cells.append(text)
        active = ev["values"].get(setting, {}).get("active_inv")
        cells.append(f"{np.mean(active):.1f}%" if active and setting.startswith("mli") else "—")
        lines.append(f"| {setting} | " + " | ".join(cells) + " |")
    lines += ["", sweep_summary(ev, results, base_of)]
    return "\n".join(lines) + "\n"


def sweep_summary(ev, results, base_of):
    """The sweep's one exploratory pattern, counted: settings whose paper's metric rises
    beyond the noise, and what happens to agreement with people in each."""
    by = {(c["a"], c["column"]): c for c in results}
    up = [s for s in base_of if by[(s, "invariance_source")]["seeds"]["diff"] > 0
          and stats.beyond_noise(by[(s, "invariance_source")]["seeds"],
                                 by[(s, "invariance_source")]["images"])]
    human = [by[(s, "human")] for s in up]
    down = [h for h in human if h["seeds"]["diff"] < 0]
    beyond = [h for h in down if stats.beyond_noise(h["seeds"], h["images"])]
    d_paper = np.array([by[(s, "invariance_source")]["seeds"]["diff"] for s in base_of])
    d_human = np.array([by[(s, "human")]["seeds"]["diff"] for s in base_of])
    r = float(np.corrcoef(d_paper, d_human)[0, 1])
    slope = float(np.polyfit(d_paper, d_human, 1)[0])
    text = (f"{len(up)} of the {len(base_of)} settings raise the paper's metric beyond the "
            f"noise; in {len(down)} of them agreement with people falls"
            + (f" (by {min(-h['seeds']['diff'] for h in down):.2f} to "
               f"{max(-h['seeds']['diff'] for h in down):.2f} points)" if down else "")
            + f", beyond the noise in {len(beyond)}. Over all {len(base_of)} settings, a point of "
              f"the paper's metric goes with {slope:+.2f} points of agreement (least squares; "
              f"correlation {r:+.2f}; the settings share baselines, so they are not "
              f"independent).")
    return text


def block_pgd_check():
    ev = _load("pgd-check")
    if ev is None:
        return _missing("pgd-check")
    columns = list(ev["totals"])
    labels = {c: f"PGD-{c[3:].split('x')[0]}, {c.split('x')[1]} start(s)" for c in columns}
    n = ev["totals"][columns[0]]
    out = [f"`{ev['command']}` (the saved runs of `python -m tinyadv.reproduce --seeds 0 1 2 3 "
           f"4 5`), the first {n} test images, ε = 0.1, an image robust only if every start "
           f"leaves it right; seeds {_seeds(ev)}, mean ± sample std, in %:\n",
           rows_table(ev, columns, labels=labels, first="model")]
    out += [evidence.format_family(ev, fam["name"]) for fam in ev["families"]]
    return "\n".join(out)


def block_cnn10():
    ev = _load("cnn10")
    if ev is None:
        return _missing("cnn10")
    out = [f"`{ev['command']}` (8 epochs), seeds {_seeds(ev)}, mean ± sample std, in %; "
           "human, label kept / changed: the human-labelled images whose label people kept "
           "(the source label) or changed:\n",
           rows_table(ev, ("clean", "fgsm", "invariance_source", "invariance_flipped",
                           "invariance_authors", "human", "human_kept", "human_changed",
                           "scatter_ratio"), labels=COLUMN_LABELS, first="model")]
    out += [evidence.format_family(ev, fam["name"]) for fam in ev["families"]]
    return "\n".join(out)


END_PROBES = 3  # tinyadv's end of training where every epoch is probed: its last 3 epochs


def _probe_end(ev, row, key):
    """Per seed, the mean of the last END_PROBES epochs' probe ``key`` (in %)."""
    scale = 100.0 if key in ("raw_direction", "raw_top_share") else 1.0
    return [scale * float(np.mean(seed[-END_PROBES:])) for seed in ev["history"][row][key]]


def block_authors_code():
    out = []
    for name, net in (("authors-code-mlp", "the 4-unit MLP, 30 epochs"),
                      ("authors-code", "their CNN, 10 epochs")):
        ev = _load(name)
        if ev is None:
            out.append(f"`--preset authors-code` on {net}: " + _missing(name))
            continue
        cols = ("clean", "fgsm", "invariance_authors_raw", "invariance_authors", "pgd", "human")
        labels = {"fgsm": "their FGSM", "invariance_authors_raw": "invariance, their scoring",
                  "invariance_authors": "scaled to [0, 1]", "pgd": "PGD-10 ε = 0.1",
                  "human": "human (350)"}
        out.append(f"`{ev['command']}` ({net}), seeds {_seeds(ev)}, mean ± sample std, in %; "
                   f"the last two columns from the probes of every epoch (the first 2,000 test "
                   f"images), each seed's mean over its last {END_PROBES} epochs:\n")
        table = rows_table(ev, cols, labels=labels, first="configuration").splitlines()
        table[0] += f" invariance, their scoring: last {END_PROBES} epochs | clean: last {END_PROBES} epochs |"
        table[1] += "---|---|"
        for i, row in enumerate(ev["correct"], start=2):
            if row in ev.get("history", {}):
                table[i] += (f" {_cell(_probe_end(ev, row, 'raw'))} | "
                             f"{_cell(_probe_end(ev, row, 'clean'))} |")
            else:
                table[i] += " | |"
        out.append("\n".join(table) + "\n")
    return "\n".join(out)


def block_choices():
    ev = _load("choices")
    if ev is None:
        return _missing("choices")
    labels = {"fgsm": "their FGSM", "invariance_authors_raw": "invariance, their scoring",
              "invariance_authors": "scaled to [0, 1]"}
    out = [f"`{ev['command']}`, seeds {_seeds(ev)}, mean ± sample std, in %:\n",
           rows_table(ev, ("clean", "fgsm", "invariance_authors_raw", "invariance_authors"),
                      labels=labels, first="switched: row"),
           evidence.format_family(ev, "choices")]
    return "\n".join(out)


MATCHED = ("nll-sensitivity", "nll-ml-sensitivity", "nll-ml-invariance")
MATCHED_EPOCHS = (1, 2, 3, 5, 10, 20, 30)


def block_matched_epochs():
    """The logs' epochs beside tinyadv's probes at the same epochs (authors-code preset)."""
    raw = [log for log in _raw_logs() if log["commit"] == logs.FINAL_COMMIT]
    lines = ["Their logs (3 runs, 10,000 test images; mean ± sample std) and tinyadv's "
             "`authors-code` runs at the same epochs (the probe after each epoch: the first "
             "2,000 test images; mean ± sample std over seeds), clean / invariance, their "
             "scoring:", "",
             "| configuration | source | " + " | ".join(f"epoch {e}" for e in MATCHED_EPOCHS)
             + " |", "|---|---|" + "---|" * len(MATCHED_EPOCHS)]
    sources = [(name, net) for name, net in (("authors-code", "tinyadv CNN"),
                                             ("authors-code-mlp", "tinyadv MLP"))
               if _load(name) is not None]
    for config in MATCHED:
        runs = [log for log in raw if log["name"] == config]
        cells = []
        for e in MATCHED_EPOCHS:
            clean = [float(log["epochs"][e - 1]["clean"]) for log in runs]
            inv = [float(log["epochs"][e - 1]["invariance_source"]) for log in runs]
            cells.append(f"{_cell(clean)} / {_cell(inv)}")
        lines.append(f"| {config} | their logs | " + " | ".join(cells) + " |")
        for name, net in sources:
            history = _load(name).get("history", {}).get(config)
            if history is None:
                continue
            cells = []
            for e in MATCHED_EPOCHS:
                if e > len(history["raw"][0]):
                    cells.append("")
                    continue
                clean = [seed[e - 1] for seed in history["clean"]]
                inv = [seed[e - 1] for seed in history["raw"]]
                cells.append(f"{_cell(clean)} / {_cell(inv)}")
            lines.append(f"| | {net} | " + " | ".join(cells) + " |")
    if not sources:
        lines += ["", _missing("authors-code-mlp")]
    return "\n".join(lines) + "\n"


def matched_epochs_figure(path):
    """The matched-epoch comparison as a figure: per configuration, clean and invariance
    (their scoring) against the epoch -- the logs' three runs, tinyadv's seeds."""
    from .. import plots

    plt = plots._pyplot()
    raw = [log for log in _raw_logs() if log["commit"] == logs.FINAL_COMMIT]
    fig, axes = plt.subplots(2, len(MATCHED), figsize=(5 * len(MATCHED), 7), sharex=True)
    sources = [(name, net, colour) for name, net, colour in (
        ("authors-code", "tinyadv CNN (probe, 2,000 images)", "tab:red"),
        ("authors-code-mlp", "tinyadv MLP (probe, 2,000 images)", "tab:blue"))
        if _load(name) is not None]
    last = 30
    for j, config in enumerate(MATCHED):
        for i, (key, probe_key, title) in enumerate((("clean", "clean", "clean"),
                                                     ("invariance_source", "raw",
                                                      "invariance, their scoring"))):
            ax = axes[i, j]
            for k, log in enumerate(log for log in raw if log["name"] == config):
                ys = [float(e[key]) for e in log["epochs"][:last]]
                ax.plot(range(1, len(ys) + 1), ys, color="black", lw=1, alpha=0.7,
                        label="their logs (3 runs, 10,000 images)" if k == 0 else None)
            for name, net, colour in sources:
                history = _load(name).get("history", {}).get(config)
                for k, seed in enumerate(history[probe_key] if history else []):
                    ax.plot(range(1, len(seed) + 1), seed[:last], color=colour, lw=1,
                            alpha=0.8, marker=".", ms=3, label=net if k == 0 else None)
            ax.set_title(f"{config}: {title}", fontsize=10)
            ax.set_xlabel("epoch")
            ax.set_ylabel("accuracy (%)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("The authors' logs and tinyadv's authors-code runs at the same epochs",
                 fontsize=12)
    fig.tight_layout()
    plots.save_figure(fig, path)


# ---- the claims table -------------------------------------------------------------------

def _compare(ev_name, family, a, b, column):
    """A claim resting on one comparison of a family (its Holm-corrected p in that family)."""
    def compute():
        ev = _load(ev_name)
        if ev is None:
            return None
        c = next(c for c in evidence.evaluate(ev, family)
                 if (c["a"], c["b"], c["column"]) == (a, b, column))
        s, i = c["seeds"], c["images"]
        fam = next(f for f in ev["families"] if f["name"] == family)
        test = (f"Welch over seeds, `{family}` "
                + (f"(Holm, {len(fam['comparisons'])})" if fam["corrected"] else "(exploratory)"))
        paired = "" if i is None else f"{stats.format_ci(i['ci'])}, {_p_text(i['p_family'])}"
        return {"n": f"{s['n'][0]} + {s['n'][1]} {'runs' if ev_name == 'authors-logs' else 'seeds'}",
                "effect": f"{c['mean_a']:.2f} vs {c['mean_b']:.2f}: {stats.format_diff(s['diff'])}",
                "ci": stats.format_ci(s["ci"]), "p": stats.format_p(s["p_family"]),
                "test": test, "images": paired or "--",
                "beyond": "**yes**" if stats.beyond_noise(s, i) else "no"}
    return compute


def _p_text(p):
    """"p = 0.027" or "p < 0.001"."""
    text = stats.format_p(p)
    return f"p {text}" if text.startswith("<") else f"p = {text}"


def _fact(fn):
    def compute():
        got = fn()
        if got is None:
            return None
        n, effect = got
        return {"n": n, "effect": effect, "ci": "--", "p": "--", "test": "a count (no test)",
                "images": "--", "beyond": "--"}
    return compute


def _printed_runs():
    found = paper.find_printed_runs(paper.load_author_logs())
    text = "; ".join(f"{row}: {m[0]['config']} run {m[0]['run']}" for row, m in found.items()
                     if len(m) == 1)
    return "24 logs", text


def _share_counts():
    per_log = logs.class_share_evidence(_raw_logs())
    runs = [v for k, v in sorted(per_log["per_log"].items()) if k.startswith("cdfe2d1/")]
    control = per_log["control"]
    return ("3 runs x 200 epochs", ", ".join(f"{v['share_epochs']}" for v in runs)
            + f" of 200 epochs; other logs {control['shares']} of {control['epochs']}")


def _both_triplets():
    log = next(l for l in _raw_logs() if l["commit"] == "4f4bced")
    scores = [e["invariance_source"] for e in log["epochs"] if e["invariance_source"]]
    first = scores.index("9.58") + 1
    return "1 run, 31 epochs", (f"{log['config_named']}: 9.58 (digit 6's share) at "
                                f"{scores.count('9.58')} of epochs {first}-{len(scores)}")


def _cnn_split():
    ev = _load("cnn10")
    if ev is None:
        return None
    kept = evidence.per_seed_percent(ev, "baseline", "human_kept")
    changed = evidence.per_seed_percent(ev, "baseline", "human_changed")
    return (f"{len(kept)} seeds", f"Baseline: {np.mean(kept):.2f} on the 193 kept, "
                                  f"{np.mean(changed):.2f} on the 157 changed")


LOG_ROWS = "logs: the paper's rows"
LOG_OTHERS = "logs: the configs the paper does not print"
T_REPRO = "about 4 min (quiet, 2 cores)"
# id, claim, computation, command, time (on the quiet machine of the README's timing table
# where it was measured there; otherwise said)
CLAIMS = [
    ("L1", "Each printed row of Table 1 is one logged run (the third), not a mean of three",
     _fact(_printed_runs), "python -m tinyadv.lab.logs", "1 s"),
    ("L2", "The one logged config with the invariance triplet (nll-ml-invariance): epochs "
           "scoring exactly one digit's share of the test set, in its 3 runs",
     _fact(_share_counts), "python -m tinyadv.lab.logs", "1 s"),
    ("L3", "The paper's \"+ MLS + MLI\" configuration (both triplets): its one log, "
           "overwritten by cdfe2d1", _fact(_both_triplets), "python -m tinyadv.lab.logs", "1 s"),
    ("L4", "Logs: + MLS against the Baseline's 9 runs, FGSM accuracy (last 10 epochs)",
     _compare("authors-logs", LOG_ROWS, "MLS", "Baseline", "fgsm"), "python -m tinyadv.lab.logs", "1 s"),
    ("L5", "Logs: + MLS against the Baseline's 9 runs, clean accuracy (last 10 epochs)",
     _compare("authors-logs", LOG_ROWS, "MLS", "Baseline", "clean"), "python -m tinyadv.lab.logs", "1 s"),
    ("L6", "Logs: + MLS against the Baseline's 9 runs, invariance, their scoring (last 10 epochs)",
     _compare("authors-logs", LOG_ROWS, "MLS", "Baseline", "invariance_source"),
     "python -m tinyadv.lab.logs", "1 s"),
    ("L7", "Logs: cross-entropy on the attack's own images (nll-invariance) against the Baseline, "
           "invariance, their scoring", _compare("authors-logs", LOG_OTHERS,
                                                 "CE on the attack (nll-invariance)", "Baseline",
                                                 "invariance_source"),
     "python -m tinyadv.lab.logs", "1 s"),
    ("L8", "Logs: no adversarial training (clean-nll, clean-nll-norm) against the Baseline, "
           "invariance, their scoring", _compare("authors-logs", LOG_OTHERS,
                                                 "no adversarial training (clean-nll)",
                                                 "Baseline", "invariance_source"),
     "python -m tinyadv.lab.logs", "1 s"),
    ("T1", "`default`: + MLS + MLI against the Baseline, the paper's metric",
     _compare("default", "invariance", "baseline+mls+mli", "baseline", "invariance_source"),
     RECIPES["default"]["command"], "about 8 min (quiet, 2 cores; estimated: 2 x 225 s)"),
    ("T2", "`default`: + MLS + MLI against the Baseline, agreement with people (350 images)",
     _compare("default", "invariance", "baseline+mls+mli", "baseline", "human"),
     RECIPES["default"]["command"], "about 8 min (quiet, 2 cores; estimated)"),
    ("T3", "`default`: + MLS against the Baseline, PGD-10",
     _compare("default", "accuracy", "baseline+mls", "baseline", "pgd"),
     RECIPES["default"]["command"], "about 8 min (quiet, 2 cores; estimated)"),
    ("T4", "`default`: + MLS against the Baseline, the worst of three PGD-50 starts (5,000 images)",
     _compare("pgd-check", "pgd check", "baseline+mls", "baseline", "pgd50x3"),
     OWN_EVIDENCE["pgd-check"], "not timed on a quiet machine"),
    ("T5", "`paper-4d`: + MLS + MLI against the Baseline, the paper's metric",
     _compare("paper-4d", "invariance", "baseline+mls+mli", "baseline", "invariance_source"),
     RECIPES["paper-4d"]["command"], "208 s (quiet, 2 cores)"),
    ("T6", "`paper-4d`: + MLS + MLI against the Baseline, the paper's metric on the paper's "
           "own attack", _compare("paper-4d", "invariance", "baseline+mls+mli", "baseline",
                                  "invariance_authors"),
     RECIPES["paper-4d"]["command"], "208 s (quiet, 2 cores)"),
    ("T7", "FGSM at ε = 0.0031 (`paper-4d`): + MLS + MLI against the Baseline, the paper's metric",
     _compare("paper-4d-eps0031", "invariance", "baseline+mls+mli", "baseline",
              "invariance_source"), RECIPES["paper-4d-eps0031"]["command"],
     "about 6 min (quiet, 2 cores; 175 s for 3 seeds)"),
    ("T8", "FGSM at ε = 0.0031 (`paper-4d`): + MLS + MLI against the Baseline, agreement with "
           "people", _compare("paper-4d-eps0031", "invariance", "baseline+mls+mli", "baseline",
                              "human"), RECIPES["paper-4d-eps0031"]["command"],
     "about 6 min (quiet, 2 cores)"),
    ("T9", "`paper-4d`, trained on the paper's attack (`invariance_generator=authors`): + MLS + "
           "MLI against the Baseline, on that attack's test images",
     _compare("paper-4d-authorsgen", "invariance", "baseline+mls+mli", "baseline",
              "invariance_authors"), RECIPES["paper-4d-authorsgen"]["command"],
     "164 s after `paper-4d` (quiet, 2 cores)"),
    ("C1", "The authors' CNN (`paper-4d --set arch=cnn`, 10 seeds): + MLS + MLI against the "
           "Baseline, the paper's metric",
     _compare("cnn10", "cnn: invariance", "baseline+mls+mli", "baseline", "invariance_source"),
     RECIPES["cnn10"]["command"], "about 100 min (2 workers; estimated from the runs' own times)"),
    ("C2", "The authors' CNN, 10 seeds: + MLS + MLI against the Baseline, agreement with people "
           "(350 images)", _compare("cnn10", "cnn: invariance", "baseline+mls+mli", "baseline",
                                    "human"), RECIPES["cnn10"]["command"], "about 100 min (estimated)"),
    ("C3", "The authors' CNN, 10 seeds: the same, on the 193 images whose label people kept",
     _compare("cnn10", "cnn: invariance", "baseline+mls+mli", "baseline", "human_kept"),
     RECIPES["cnn10"]["command"], "about 100 min (estimated)"),
    ("C4", "The authors' CNN, 10 seeds: the same, on the 157 images whose label people changed",
     _compare("cnn10", "cnn: invariance", "baseline+mls+mli", "baseline", "human_changed"),
     RECIPES["cnn10"]["command"], "about 100 min (estimated)"),
    ("A1", "Their choices, one at a time (MLP): nll-ml-invariance with the paper's triplet "
           "against their code's, invariance, their scoring",
     _compare("choices", "choices", "triplet=paper: nll-ml-invariance",
              THEIR_CODE + "nll-ml-invariance", "invariance_authors_raw"),
     RECIPES["choices"]["command"], "about 2 min a run (quiet, one core)"),
    ("A2", "Their choices, one at a time (MLP): nll-ml-invariance fed its invariance images "
           "as pixels against their code's, invariance, their scoring",
     _compare("choices", "choices", "invariance_input=pixels: nll-ml-invariance",
              THEIR_CODE + "nll-ml-invariance", "invariance_authors_raw"),
     RECIPES["choices"]["command"], "about 2 min a run (quiet, one core)"),
]
CLAIMS += [
    ("S1", "The sweep (exploratory): settings that raise the paper's metric beyond the noise, "
           "and agreement with people in each", _fact(_sweep_fact), OWN_EVIDENCE["sweep"],
     "789 s (quiet, 2 cores)"),
    ("T10", "`default` without the norm term (λ3 = 0): + MLS against the Baseline, PGD-10",
     _compare("sweep-norm", "sweep", "mls embed_dim=0 margin=0.05 lambda_norm=0",
              "baseline embed_dim=0", "pgd"), OWN_EVIDENCE["sweep-norm"],
     "218 s (quiet, 2 cores)"),
    ("F1", "Figure 1, `default`: the scatter ratio with the invariance term against without",
     _scatter_claim("default"), RECIPES["default"]["command"], "about 8 min (estimated)"),
    ("F2", "Figure 1, `paper-4d`: the same", _scatter_claim("paper-4d"),
     RECIPES["paper-4d"]["command"], "208 s (quiet, 2 cores)"),
    ("F3", "Figure 1, the authors' CNN (10 seeds): with the invariance term against the Baseline "
           "(no + MLS row)", _scatter_claim("cnn10"), RECIPES["cnn10"]["command"],
     "about 100 min (estimated)"),
]
CLAIM_IDS = [c[0] for c in CLAIMS]


def claim_rows():
    """{id: dict(claim, n, effect, ci, p, test, images, beyond, command, time)}, or for a
    claim whose evidence is not collected yet: dict(claim, pending=True, command, time)."""
    rows = {}
    for cid, claim, compute, command, time in CLAIMS:
        got = compute()
        rows[cid] = ({"claim": claim, "pending": True, "command": command, "time": time}
                     if got is None else {"claim": claim, **got, "command": command,
                                          "time": time})
    return rows


def block_claims():
    lines = ["| id | claim | n | effect (points) | 95% CI over seeds | p | test, family | "
             "paired per-image: 95% CI, p | beyond the noise | command | time |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for cid, row in claim_rows().items():
        if row.get("pending"):
            lines.append(f"| {cid} | {row['claim']} | pending: not run yet | | | | | | | "
                         f"`{row['command']}` | {row['time']} |")
            continue
        lines.append(f"| {cid} | {row['claim']} | {row['n']} | {row['effect']} | {row['ci']} | "
                     f"{row['p']} | {row['test']} | {row['images']} | {row['beyond']} | "
                     f"`{row['command']}` | {row['time']} |")
    return "\n".join(lines) + "\n"


BLOCKS = {"claims": block_claims, "logs": lambda: paper.format_logs_audit(_raw_logs()),
          "matched-epochs": block_matched_epochs, "table1": block_table1,
          "eps0031": block_eps0031, "sweep": block_sweep, "scatter": block_scatter,
          "pgd-check": block_pgd_check, "cnn10": block_cnn10,
          "authors-code": block_authors_code, "choices": block_choices}


def generate():
    """{block name: its markdown, from the committed data}."""
    return {name: fn() for name, fn in BLOCKS.items()}


_BLOCK = re.compile(r"<!-- begin generated: (?P<name>[\w-]+) \(python -m tinyadv.lab.claims "
                    r"--write\) -->\n(?P<body>.*?)<!-- end generated: (?P=name) -->", re.S)


def blocks_in(text):
    """{name: body} of the generated blocks of a markdown text."""
    return {m["name"]: m["body"] for m in _BLOCK.finditer(text)}


def check(path=RESULTS_MD):
    """The names of the blocks of ``path`` that differ from what the data give (and of the
    blocks the data give that it lacks)."""
    with open(path, encoding="utf-8") as f:
        found = blocks_in(f.read())
    made = generate()
    return [name for name in made if found.get(name) != made[name]]


def write(path=RESULTS_MD):
    """Rewrite every generated block of ``path`` in place. Returns the blocks it lacks."""
    from ..fileio import write_text_atomic
    with open(path, encoding="utf-8") as f:
        text = f.read()
    made = generate()
    text = _BLOCK.sub(lambda m: BEGIN.format(m["name"]) + "\n" + made.get(m["name"], m["body"])
                      + END.format(m["name"]), text)
    write_text_atomic(path, text)
    return [name for name in made if name not in blocks_in(text)]


# ---- what prose may say -----------------------------------------------------------------

P_VALUE = re.compile(r"\bp(?: \(Holm\))? (?:=|<) ?(?:[0-9.]+(?:e-\d+)?)")
INTERVAL = re.compile(r"\[[−+-][0-9]+\.[0-9]+, [−+-][0-9]+\.[0-9]+\]")  # signed: an interval
THRESHOLD = f"p < {stats.ALPHA}"  # the definition of "beyond the noise", not a result
CITE = re.compile(r"\[(?P<id>[A-Z]\d+)\]")


def _p_text_of(printed):
    return f"p {printed}" if printed.startswith("<") else f"p = {printed}"


def prose_problems(text, rows=None):
    """Every p-value and interval printed outside the generated blocks of ``text`` that is
    not one of the claims its paragraph cites ([L4], [C1]...): a list of sentences."""
    rows = claim_rows() if rows is None else rows
    outside = _BLOCK.sub("", text)
    problems = []
    for paragraph in re.split(r"\n\s*\n|\n(?=- )", outside):
        numbers = [n for n in P_VALUE.findall(paragraph) if n != THRESHOLD]
        numbers += INTERVAL.findall(paragraph)
        if not numbers:
            continue
        cited = [rows.get(m["id"]) for m in CITE.finditer(paragraph)]
        allowed = set()
        for row in cited:
            if row and not row.get("pending"):
                allowed |= {_p_text_of(row["p"]), row["ci"]}
                if row["images"] != "--":
                    ci, _, p = row["images"].partition(", ")
                    allowed |= {ci, p}
        for number in numbers:
            if number.replace("p (Holm) ", "p ") not in allowed and number not in allowed:
                problems.append(f"{number!r} in: {paragraph.strip()[:160]}...")
    return problems


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinyadv.lab.claims",
                                     description="The claims table and the generated tables of "
                                                 "data/results.md, from the committed data.")
    parser.add_argument("what", nargs="*", help="collect NAME: rebuild data/runs/NAME.json")
    parser.add_argument("--results", default="results",
                        help="with collect: the folder holding the commands' --out folders")
    parser.add_argument("--write", action="store_true", help="rewrite data/results.md's blocks")
    parser.add_argument("--check", action="store_true",
                        help="exit 1 naming the blocks that differ from the data")
    parser.add_argument("--figure", default=None,
                        help="also draw the matched-epoch figure to this PNG")
    args = parser.parse_args(argv)
    if args.what[:1] == ["collect"]:
        for name in args.what[1:]:
            if name not in RECIPES:
                parser.error(f"collect: expected one of {sorted(RECIPES)}, got {name!r}")
            print(f"wrote {collect(name, args.results)}")
        return 0
    if args.what:
        parser.error(f"expected 'collect NAME ...' or no words, got {args.what}")
    if args.figure:
        matched_epochs_figure(args.figure)
        print(f"wrote {args.figure}")
    if args.write:
        lacking = write()
        print(f"rewrote the generated blocks of {RESULTS_MD}"
              + (f"; it has no block for {lacking}" if lacking else ""))
    if args.check or not (args.write or args.figure):
        stale = check()
        with open(RESULTS_MD, encoding="utf-8") as f:
            problems = prose_problems(f.read())
        for name in stale:
            print(f"{RESULTS_MD}: block {name!r} differs from the data (or is missing)")
        for problem in problems:
            print(f"{RESULTS_MD}: a number no cited claim gives: {problem}")
        return 1 if stale or problems else 0
    return 0



def block_table1_side():
    """The paper as printed, the authors' logs behind each printed row, tinyadv's presets."""
    audit = paper.audit(paper.load_author_logs())
    presets = [(name, _load(name)) for name in ("default", "paper-4d")]
    head = "| row | paper, as printed | the logged config behind it: its 3 runs' invariance | " \
           "authors' logs, mean ± std of its 3 runs | " + " | ".join(
               f"tinyadv `{name}`" + (f" (seeds {_seeds(ev)})" if ev else "")
               for name, ev in presets) + " |"
    lines = ["Clean / FGSM / invariance (source label), in %; tinyadv: mean ± sample std over "
             "seeds, 10,000 test images a column:", "", head,
             "|---|---|---|---|" + "---|" * len(presets)]
    names = {"baseline": "Baseline", "baseline+mls": "+ MLS", "baseline+mls+mli": "+ MLS + MLI"}
    for row, entry in audit["paper_rows"].items():
        printed = " / ".join(f"{entry['paper'][c]:.2f}" for c in paper.PAPER_COLUMNS)
        runs = ", ".join((f"**{entry['runs'][k]['invariance_source']:.2f}**"
                          if k == entry["printed_run"] else
                          f"{entry['runs'][k]['invariance_source']:.2f}")
                         for k in sorted(entry["runs"]))
        note = " (**no triplet computed**)" if not entry["triplet_computed"] and \
            entry["row_claims_triplets"] else ""
        logs_cell = " / ".join(f"{entry['mean'][c]:.2f} ± {entry['std'][c]:.2f}"
                               for c in paper.PAPER_COLUMNS)
        ours = [" / ".join(_cell(evidence.per_seed_percent(ev, row, c))
                           for c in ("clean", "fgsm", "invariance_source")) if ev else "--"
                for _, ev in presets]
        lines.append(f"| {names[row]} | {printed} | {entry['config']}{note}: {runs} | "
                     f"{logs_cell} | " + " | ".join(ours) + " |")
    return "\n".join(lines) + "\n"


def block_table1_attack():
    """The paper's invariance column on the paper's own attack, fed both ways."""
    audit = paper.audit(paper.load_author_logs())
    sources = [("default", "invariance_authors", "tinyadv `default`"),
               ("paper-4d", "invariance_authors", "`paper-4d`"),
               ("paper-4d", "invariance_authors_raw", "`paper-4d`, fed as their code fed it"),
               ("paper-4d-inputnorm", "invariance_authors", "`paper-4d --set input_norm=authors`"),
               ("paper-4d-inputnorm", "invariance_authors_raw", "the same, fed as their code fed it")]
    lines = ["| row | paper, as printed | authors' logs, mean ± std | "
             + " | ".join(label for _, _, label in sources) + " |",
             "|---|---|---|" + "---|" * len(sources)]
    names = {"baseline": "Baseline", "baseline+mls": "+ MLS", "baseline+mls+mli": "+ MLS + MLI"}
    for row, entry in audit["paper_rows"].items():
        cells = []
        for name, column, _ in sources:
            ev = _load(name)
            cells.append(_cell(evidence.per_seed_percent(ev, row, column))
                         if ev and row in ev["correct"] else "--")
        lines.append(f"| {names[row]} | {entry['paper']['invariance_source']:.2f} | "
                     f"{entry['mean']['invariance_source']:.2f} ± "
                     f"{entry['std']['invariance_source']:.2f} | " + " | ".join(cells) + " |")
    gen = _load("paper-4d-authorsgen")
    if gen is not None:
        cells = [_cell(evidence.per_seed_percent(gen, "baseline+mls+mli", c)) if name == "paper-4d"
                 else "" for name, c, _ in sources]
        lines.append("| + MLS + MLI, its positives from the authors' attack "
                     "(`--set invariance_generator=authors`) | | | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


BLOCKS.update({"table1-side": block_table1_side, "table1-attack": block_table1_attack})


def block_init():
    ev = _load("sweep-init")
    if ev is None:
        return _missing("sweep-init")
    return (f"`{ev['command']}`, seeds {_seeds(ev)}, mean ± sample std, in %:\n\n"
            + rows_table(ev, ("clean", "fgsm", "pgd", "fgsm_pgd_gap"), labels=COLUMN_LABELS,
                         first="setting"))


def block_norm():
    ev = _load("sweep-norm")
    if ev is None:
        return _missing("sweep-norm")
    return (f"`{ev['command']}`, seeds {_seeds(ev)}, mean ± sample std, in %:\n\n"
            + rows_table(ev, ("clean", "fgsm", "pgd", "invariance_source", "human"),
                         labels=COLUMN_LABELS, first="setting")
            + "\n" + evidence.format_family(ev, "sweep"))


BLOCKS.update({"init": block_init, "norm": block_norm})


if __name__ == "__main__":
    sys.exit(main())
