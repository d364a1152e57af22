"""Where each of data/runs/*.json comes from: the command, the saved runs' folders, the rows,
the comparisons (evidence.py) -- and how to rebuild it.

    python -m tinyadv.lab.claims collect NAME [--results DIR]

reads the saved runs of NAME's command under DIR (default results/: each command's --out
folder, named in RECIPES) and writes data/runs/NAME.json. Evidence that a command writes
itself (the sweeps' and pgdcheck's evidence.json) is copied: OWN_EVIDENCE names those.
``load`` reads a committed evidence file, or the authors' logs' (computed from the raw logs).
"""
import json
import os

from . import evidence, experiments, logs, paper, perimage, reproduce
from .configs import RunConfig
from .evidence import Family

__all__ = ["RECIPES", "OWN_EVIDENCE", "collect", "collect_folders", "folder_runs", "load",
           "raw_logs", "THEIR_CODE", "CE_INV", "CHOICES"]


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
            Family("cnn: accuracy", "On the authors' CNN, does + MLS + MLI change clean, "
                   "FGSM or PGD-10 accuracy against the Baseline (PGD-10 as each run's record "
                   "measured it: over the seeds only)?", pair, ("clean", "fgsm", "pgd"))]


CE_INV = "cross-entropy on the attack: "


def _ce_invariance_family():
    pair = [(CE_INV + "baseline", "baseline")]
    return [Family("training on the attack", "Does cross-entropy on clean images and on their "
                   "invariance examples with the source label, instead of on the FGSM images, "
                   "change the paper's metric, agreement with people or accuracy against the "
                   "Baseline?", pair,
                   ("invariance_source", "invariance_authors", "human", "human_kept",
                    "human_changed", "clean", "fgsm", "pgd"))]


AC = "python -m tinyadv.reproduce --preset authors-code --set arch=mlp --epochs 30"
RECIPES = {
    "default": dict(parts=[("default", None, "")], values=perimage.fgsm_scatter_ratio,
                    command="python -m tinyadv.reproduce"),
    "paper-4d": dict(parts=[("paper-4d", None, "")], values=perimage.fgsm_scatter_ratio,
                     command="python -m tinyadv.reproduce --preset paper-4d"),
    "paper-4d-eps0031": dict(parts=[("paper-4d-eps0031", None, "")],
                             values=perimage.fgsm_scatter_ratio,
                             command="python -m tinyadv.reproduce --preset paper-4d --set "
                                     "fgsm_eps=0.0031 --seeds 0 1 2 3 4 5"),
    "paper-4d-authorsgen": dict(parts=[("paper-4d-authorsgen", None, "")],
                                command="python -m tinyadv.reproduce --preset paper-4d --set "
                                        "invariance_generator=authors"),
    "paper-4d-inputnorm": dict(parts=[("paper-4d-inputnorm", None, "")],
                               command="python -m tinyadv.reproduce --preset paper-4d --set "
                                       "input_norm=authors"),
    "authors-code-mlp": dict(parts=[("authors-code-mlp", None, "")], families=[],
                             columns=AUTHORS_CODE_COLUMNS,
                             command=f"{AC} --rows nll-sensitivity nll-ml-sensitivity "
                                     "nll-ml-invariance nll-ml-sens-invar"),
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
    "ce-invariance": dict(parts=[("paper-4d", ["baseline"], ""),
                                 ("paper-4d-ce-invariance", ["baseline"], CE_INV)],
                          families=_ce_invariance_family(),
                          command="python -m tinyadv.reproduce --preset paper-4d --rows baseline "
                                  "--set ce_on=clean+invariance --set adversarial=false"),
    "cnn10": dict(parts=[("cnn10", None, "")], families=_cnn_families(), columns=CNN_COLUMNS,
                  values=perimage.fgsm_scatter_ratio, recorded=("pgd",),
                  command="python -m tinyadv.reproduce --preset paper-4d --set arch=cnn --rows "
                          "baseline baseline+mls+mli --seeds 0 1 2 3 4 5 6 7 8 9"),
}
# Made by their own commands (evidence.json beside their tables): copied, not collected.
OWN_EVIDENCE = {"sweep": "python -m tinyadv.sweep",
                "sweep-init": "python -m tinyadv.sweep --grid init=he,uniform "
                              "ce_on=clean+fgsm,fgsm embed_dim=0,4 lambda_sens=0 lambda_inv=0",
                "sweep-norm": "python -m tinyadv.sweep --grid embed_dim=0,4 margin=0.05 "
                              "lambda_norm=0,0.001 lambda_inv=0",
                "pgd-check": "python -m tinyadv.lab.pgdcheck results/default --rows "
                             "baseline baseline+mls --images 5000 --attacks 10x1 50x3 100x1 "
                             "--evidence pgd-check"}


def collect(name, results_root):
    """Rebuild data/runs/NAME.json from the saved runs RECIPES[name] names."""
    recipe = RECIPES[name]
    parts = [(os.path.join(results_root, folder), rows, prefix)
             for folder, rows, prefix in recipe["parts"]]
    found = collect_folders(parts, name, recipe["command"], recipe.get("families"),
                            recipe.get("columns", evidence.DEFAULT_COLUMNS),
                            values=recipe.get("values"), recorded=recipe.get("recorded", ()))
    path = os.path.join(evidence.EVIDENCE_DIR, f"{name}.json")
    evidence.save(found, path)
    return path


def load(name):
    """The committed evidence NAME, or None when it has not been collected yet."""
    if name == "authors-logs":
        return paper.logs_evidence(raw_logs())
    path = os.path.join(evidence.EVIDENCE_DIR, f"{name}.json")
    return evidence.load(name) if os.path.exists(path) else None


_RAW = {}


def raw_logs():
    if "logs" not in _RAW:
        _RAW["logs"] = logs.load_raw()
    return _RAW["logs"]


def folder_runs(results_dir, rows):
    """(runs, records, runs_dir, evaluation, base) of a reproduce folder's saved runs."""
    with open(os.path.join(results_dir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    base = RunConfig.from_dict(config["base_config"])
    evaluation = experiments.Evaluation(**config["evaluation"])
    all_rows = config["models"]
    rows = list(all_rows) if rows is None else rows
    runs = reproduce.table1_runs(base, config["seeds"], config["preset"],
                                 {r: all_rows[r] for r in rows})
    runs_dir = os.path.join(results_dir, "runs")
    return runs, experiments.saved_records(runs, evaluation, runs_dir), runs_dir, evaluation, base


def collect_folders(parts, name, command, families=None, columns=evidence.DEFAULT_COLUMNS,
                    log=print, values=None, recorded=()):
    """Evidence from one or more reproduce folders whose runs were scored on the same images.

    parts : [(results_dir, rows or None, prefix)]: each folder's rows (default all), named
        prefix + row
    families : [Family] over those names (default: table1_families of the rows)
    """
    merged, sets, scored_on = None, None, None
    for results_dir, rows, prefix in parts:
        runs, records, runs_dir, evaluation, base = folder_runs(results_dir, rows)
        images = (evaluation.test_images, base.inv_eps, base.inv_shifts)
        if sets is None:
            scored_on = images
            sets = perimage.test_sets(evaluation, base.inv_eps, base.inv_shifts, authors=any(
                c.startswith("invariance_authors") for c in columns))
        elif images != scored_on:
            raise ValueError(f"parts: {results_dir} was scored on other images {images} than "
                             f"the first folder {scored_on}")
        scored = evidence.scored_runs(runs, records, runs_dir, evaluation, sets, columns, prefix,
                                      log, values, recorded)
        if merged is None:
            merged = scored
        elif scored["seeds"] != merged["seeds"]:
            raise ValueError(f"parts: {results_dir} has seeds {scored['seeds']}, the first "
                             f"folder {merged['seeds']}")
        else:
            for key in ("by_run", "runs_of_row", "seconds", "history", "values"):
                merged[key].update(scored[key])
    if families is None:
        families = evidence.table1_families(list(merged["runs_of_row"]))
    return evidence._evidence(merged, name, command, families, columns)
