"""python -m tinyadv.reproduce -- the paper's Table 1 and Figure 1 in one command, audited.

Trains every row of one preset (configs.PRESETS, configs.PRESET_ROWS) for each seed: Table 1's
rows (train.MODELS) under ``default`` or ``paper-4d`` (the paper's equations on a 4-d signed
embedding, CE on FGSM images, uniform init), or the authors' logged configurations under
``authors-code`` (what their code did: authors_code.py); evaluates it under every attack and
protocol (evaluate.py), and writes into --out (default results/<preset>/):

  table1.md, table1.json   three things side by side, each labelled: the paper's Table 1 as
                           printed; the authors' own logged runs behind each printed row
                           (paper.py: which run was printed, the mean and spread of the three,
                           whether a triplet was computed at all); and tinyadv's rows, mean,
                           std and per-seed value of every column; with two seeds or more,
                           Table 1's rows against the Baseline in two named families, each
                           difference with its 95% CI and Holm-corrected p over the seeds and
                           over the same test images (evidence.py, stats.py); and the authors'
                           logs read to the epoch (paper.format_logs_audit)
  evidence.json            the per-seed numbers behind those comparisons (data/runs/ keeps
                           the committed ones: lab/recipes.py)
  figure1.png              PCA of the embeddings of FGSM test images, without (a) and with (b)
                           the invariance term, with the within/between-class scatter ratio
  config.json              the preset, every config field and the evaluation settings
  runs/                    one record (.json) and one set of weights (.npz) per (row, seed),
                           saved as each finishes (experiments.py): Ctrl-C at any time, run the
                           same command again, and it resumes with the same numbers

Columns: clean, fgsm and pgd accuracy; invariance_source (the paper's invariance column:
agreement with the *source* label of label-flipped test images -- by the paper's Definition 2
that is the attack's failure rate, not robustness); invariance_flipped (agreement with the
flipped label the generator assumes is the oracle's); human_* (agreement with the labels
*humans* gave the invariance examples of Tramer et al. 2020 -- the arbiter);
invariance_authors (the paper's invariance column on the paper's own attack: the authors'
variant of Tramer et al.'s rotation-and-shift search on the test images, tramer.py, scored
against the source label); and, in the printed tables of presets other than ``default``,
invariance_authors_raw (the same images fed as the authors' code fed them: 0..255, without
the input normalisation the clean images get; evaluate.py). table1.json has both in both
presets.

``--set invariance_generator=authors`` (or ``tramer``) trains the + MLS + MLI rows on that
attack's examples of the training images; the rows without the invariance term do not use
them and keep the generator ``nearest``, so their saved runs are shared with a plain
reproduction, while the MLI rows' run names say the generator.
"""
import argparse
import json
import os
import sys
import time

from .. import authors_code, data, evaluate, plots
from ..attacks import fgsm
from ..evaluate import AUTHORS_KEYS
from ..fast.network import FAST
from ..fileio import write_text_atomic
from ..train import MODELS
from . import evidence, experiments, logs, paper
from .configs import PRESET_ROWS, PRESETS, RunConfig, model_config, preset_config
from .experiments import (COLUMNS, FULL_TEST, FULL_TRAIN, Evaluation, Run, cell_text,
                          mean_std, seeds_text)

__all__ = ["main", "reproduce", "parse_args", "run_name", "table1_runs", "summarise", "figure1",
           "with_authors_attack", "QUICK"]

QUICK = dict(train_size=10000, test_size=2000, epochs=3)  # --quick: every row and column, fast
# Fields a row sets itself; --set changes them only in rows named with --rows (python -m
# tinyadv.sweep varies them over a grid).
ROW_FIELDS = sorted({name for rows in PRESET_ROWS.values() for row in rows.values()
                     for name in row})
# Evaluation settings of a preset beyond the defaults: the authors' code's FGSM is not an
# attack of 0.1 (README), so its PGD column keeps tinyadv's budget; and every epoch is probed.
PRESET_EVALUATION = {"authors-code": dict(pgd_eps=0.1, probes=True)}
# Figure 1's two models -- without and with the invariance term -- among a preset's rows.
FIGURE1_ROWS = {"authors-code": ("nll-ml-sensitivity", "nll-ml-sens-invar")}
# tinyadv's column set beside the paper's invariance column, when not its own generator's
# (invariance_source): under authors-code, the paper's attack fed 0..255, as their code scored it.
PAPER_INVARIANCE_COLUMN = {"authors-code": ("invariance_authors_raw",
                                            "invariance: their attack, fed as their code fed it")}
DEFAULT_FIGURE1_ROWS = ("baseline+mls", "baseline+mls+mli")
# Fields with flags of their own.
FLAG_FIELDS = {"seed": "--seeds", "epochs": "--epochs", "train_size": "--train-size"}


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m tinyadv.reproduce",
        description="Reproduce Table 1 and Figure 1 of Ovalle et al. (arXiv 2211.02468), beside "
                    "the paper's numbers and the authors' own logs.")
    experiments.add_run_arguments(
        parser, quick_help=f"small and fast: {QUICK['train_size']} training and "
                           f"{QUICK['test_size']} test images, {QUICK['epochs']} epochs, one seed")
    parser.add_argument("--train-size", type=int, default=None,
                        help="use the first N training images (default all 60000)")
    parser.add_argument("--test-size", type=int, default=None,
                        help="evaluate on the first N test images (default all 10000)")
    parser.add_argument("--set", dest="overrides", metavar="FIELD=VALUE", action="append",
                        default=[], help="override one config field of the preset, e.g. "
                                         "--set init=he (repeatable)")
    parser.add_argument("--out", default=None, help="output folder (default results/<preset>)")
    parser.add_argument("--rows", nargs="+", default=None, metavar="ROW",
                        help="train and print only these rows of the preset (default: all)")
    args = parser.parse_args(argv)  # unknown flags: usage + exit 2 (argparse)
    args.command = evidence.command_text("python -m tinyadv.reproduce", argv)
    experiments.check_run_arguments(parser, args)
    for name, lo, hi in (("train_size", 200, FULL_TRAIN), ("test_size", 10, FULL_TEST)):
        value = getattr(args, name)
        if value is not None and not lo <= value <= hi:
            parser.error(f"--{name.replace('_', '-')}: expected an integer in [{lo}, {hi}], "
                         f"got {value}")
    args.fields, row_fields = {}, {}
    for item in args.overrides:
        name, sep, text = item.partition("=")
        if not sep:
            parser.error(f"--set: expected FIELD=VALUE, got {item!r}")
        if name in ROW_FIELDS and args.rows is None:
            parser.error(f"--set {name}: each row sets {name} itself; to change it in some rows, "
                         f"name them with --rows; to vary it, use python -m tinyadv.sweep "
                         f"--grid {name}=...")
        if name in FLAG_FIELDS:
            parser.error(f"--set {name}: use {FLAG_FIELDS[name]} instead")
        try:
            value = RunConfig.parse_field(name, text)
        except ValueError as err:
            parser.error(f"--set: {err}")
        (row_fields if name in ROW_FIELDS else args.fields)[name] = value
    try:  # a value of the right type can still be out of range (init=xavier, lr=-1)
        preset_config(args.preset, **args.fields)
    except ValueError as err:
        parser.error(f"--set: {err}")
    rows = PRESET_ROWS[args.preset]
    unknown = [row for row in args.rows or [] if row not in rows]
    if unknown:
        parser.error(f"--rows: {unknown} are not rows of preset {args.preset}; expected some of "
                     f"{list(rows)}")
    args.rows = {row: {**rows[row], **row_fields} for row in rows
                 if args.rows is None or row in args.rows}
    try:  # the rows' own fields, and those --set changed in them, with the preset's
        for row in args.rows:
            model_config(row, preset_config(args.preset, **args.fields), args.rows)
    except ValueError as err:
        parser.error(f"--set: {err}")
    return args


def run_name(model, seed, generator="nearest"):
    """The file stem of one Table 1 run under runs/ (the MLI generator when not the default)."""
    return f"{model}__seed{seed}" if generator == "nearest" else f"{model}__{generator}__seed{seed}"


def table1_runs(base, seeds, preset, rows=None):
    """One Run per (row, seed); the rows are the preset's (PRESET_ROWS) unless given. A row
    without the invariance term cannot use the MLI generator: it keeps "nearest", so its run
    is the same whichever generator is asked for."""
    rows = PRESET_ROWS[preset] if rows is None else rows
    runs = []
    for model in rows:
        config = model_config(model, base, rows)
        if not config.uses_invariance:
            config = config.replace(invariance_generator="nearest")
        for seed in seeds:
            runs.append(Run(name=run_name(model, seed, config.invariance_generator),
                            config=config.replace(seed=seed),
                            labels={"model": model, "seed": seed}, preset=preset))
    return runs


def shown_columns(preset):
    """The printed table's columns: every shared one, the paper's column on the authors'
    attack, and in the other presets that column fed as their code fed it too."""
    return COLUMNS + list(AUTHORS_KEYS if preset != "default" else AUTHORS_KEYS[:1])


def summarise(records, seeds, names=None, rows=MODELS):
    """table[model][column] = {mean, std, per_seed, total}, in %, for every column the records
    have (COLUMNS, and the authors' attack's and tinyadv's FGSM at PGD's budget when
    evaluated); and table[model]["fgsm_pgd_gap"] = {mean, std, per_seed} in points.
    ``names``: {(model, seed): run name}, default run_name(model, seed)."""
    table = {}
    for model in rows:
        results = [records[names[model, s] if names else run_name(model, s)]["results"]
                   for s in seeds]
        columns = COLUMNS + [c for c in AUTHORS_KEYS + ("fgsm_at_pgd_eps",)
                             if all(c in r for r in results)]
        table[model] = {col: {**mean_std([r[col]["percent"] for r in results]),
                              "total": results[0][col]["total"]} for col in columns}
        table[model]["fgsm_pgd_gap"] = mean_std(  # FGSM at PGD's budget, less PGD
            [r.get("fgsm_at_pgd_eps", r["fgsm"])["percent"] - r["pgd"]["percent"]
             for r in results])
    return table


def format_table(table, seeds, preset):
    """Markdown: tinyadv's rows (mean ± std over seeds), every column."""
    columns = [c for c in shown_columns(preset) if c in next(iter(table.values()))]
    cells = seeds_text(seeds, f"mean ± sample std over seeds {seeds}")
    lines = [f"tinyadv, preset `{preset}` (accuracy in %, {cells}):",
             "", "| model | " + " | ".join(columns) + " | FGSM − PGD (points) |",
             "|" + "---|" * (len(columns) + 2)]
    for model, row in table.items():
        cells = [cell_text(row[c]) for c in columns + ["fgsm_pgd_gap"]]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    totals = ", ".join(f"{c} n={next(iter(table.values()))[c]['total']}" for c in columns)
    lines.append("")
    lines.append(f"Images per column: {totals}.")
    return "\n".join(lines) + "\n"


def format_side_by_side(table, audit, preset, seeds):
    """Markdown: the paper's three columns, three ways, each labelled."""
    lines = ["The paper's columns three ways: as printed; the authors' logged configuration "
             "behind each printed row (mean ± std of its 3 runs); tinyadv "
             f"(preset `{preset}`, {seeds_text(seeds, f'mean ± std over {len(seeds)} seed(s)')}):",
             "",
             "| row | source | clean | FGSM | invariance (source label) |", "|---|---|---|---|---|"]
    for model in paper.PAPER_TABLE1:
        printed = paper.PAPER_TABLE1[model]
        entry = audit["paper_rows"][model]
        ours = ours_for_paper_row(table, model, entry)
        if ours is None:
            continue
        lines.append(f"| {model} | paper, as printed | "
                     + " | ".join(f"{printed[c]:.2f}" for c in paper.PAPER_COLUMNS) + " |")
        if "config" in entry:
            note = "" if entry["triplet_computed"] or not entry["row_claims_triplets"] else \
                ", **no triplet computed**"
            lines.append(f"| | authors' logs: {entry['config']} (printed run "
                         f"{entry['printed_run']}{note}) | "
                         + " | ".join(f"{entry['mean'][c]:.2f} ± {entry['std'][c]:.2f}"
                                      for c in paper.PAPER_COLUMNS) + " |")
        label = f"tinyadv `{preset}`" + (f": {ours}" if ours != model else "")
        columns = list(paper.PAPER_COLUMNS)
        column, note = PAPER_INVARIANCE_COLUMN.get(preset, ("invariance_source", None))
        if column in table[ours] and note:
            columns[columns.index("invariance_source")] = column
            label += f" ({note})"
        lines.append(f"| | {label} | "
                     + " | ".join(cell_text(table[ours][c]) for c in columns) + " |")
    return "\n".join(lines) + "\n"


def ours_for_paper_row(table, model, entry):
    """The row of tinyadv's table that stands for a printed row of the paper: the row of the
    same name, or (the authors-code preset) the logged configuration it was printed from;
    None when that row was not trained."""
    if model in table:
        return model
    return entry.get("config") if entry.get("config") in table else None


def format_authors_attack(table, audit, preset, seeds):
    """Markdown: the paper's invariance column beside tinyadv's on the paper's own attack."""
    raw = preset != "default"
    head = "| row | paper, as printed | authors' logs (mean ± std of 3 runs) | tinyadv, fed as pixels in [0, 1] |"
    head += " tinyadv, fed as the authors' code fed it (0..255, not normalised) |" if raw else ""
    lines = ["The paper's invariance column on the paper's own attack (the authors' variant of "
             "Tramèr et al.'s search on the test images, scored against the source label; "
             f"tinyadv preset `{preset}`, "
             f"{seeds_text(seeds, f'mean ± std over {len(seeds)} seed(s)')}):", "", head,
             "|---|---|---|---|" + ("---|" if raw else "")]
    for model in paper.PAPER_TABLE1:
        entry = audit["paper_rows"][model]
        ours = ours_for_paper_row(table, model, entry)
        if ours is None:
            continue
        logs = (f"{entry['mean']['invariance_source']:.2f} ± {entry['std']['invariance_source']:.2f}"
                if "config" in entry else "--")
        cells = [f"{paper.PAPER_TABLE1[model]['invariance_source']:.2f}", logs,
                 cell_text(table[ours]["invariance_authors"])]
        if raw:
            cells.append(cell_text(table[ours]["invariance_authors_raw"]))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure1(runs_dir, seeds, preset, base, X_test, y_test, path, names=None,
            rows=DEFAULT_FIGURE1_ROWS):
    """Paper Figure 1 for the first seed, and the scatter ratio of every seed.

    Each model's embeddings of its own FGSM test images (the config's FGSM: the authors'
    in the authors-code preset); (a) without the invariance term (``rows[0]``, by default
    baseline+mls), (b) with it (``rows[1]``, baseline+mls+mli).
    """
    ratios = {"without_mli": [], "with_mli": []}
    panels = []
    for key, model, title in (("without_mli", rows[0], f"(a) {rows[0]}: no invariance term"),
                              ("with_mli", rows[1], f"(b) {rows[1]}: with invariance term")):
        for seed in seeds:
            params = experiments.load_params(
                runs_dir, names[model, seed] if names else run_name(model, seed))
            if base.fgsm_clamp == "pixels":
                x_adv = fgsm(params, X_test, y_test, base.fgsm_eps, net=FAST)
            else:  # the authors' FGSM: eps and clamp in normalised units
                x_adv = authors_code.fgsm(params, X_test, y_test,
                                          eps=base.fgsm_eps / params["input_std"],
                                          clamp=base.fgsm_clamp, net=FAST)
            h = FAST.embed(params, x_adv)
            ratios[key].append(plots.scatter_ratio(h, y_test))
            if seed == seeds[0]:
                panels.append((title, h, y_test))
    plots.embedding_figure(panels, path, suptitle=f"PCA of the embeddings h, FGSM test images "
                                                  f"(eps={base.fgsm_eps}), preset {preset}, "
                                                  f"seed {seeds[0]}")
    return ratios


def figure1_text(ratios, seeds):
    """The sentence under Figure 1: the scatter ratio over seeds, without and with MLI."""
    text = {k: ("{mean:.3f} ± {std:.3f}" if len(v) > 1 else "{mean:.3f} (1 seed)").format(
        **mean_std(v)) for k, v in ratios.items()}
    return (f"Figure 1 (`figure1.png`, seed {seeds[0]}): within/between-class scatter ratio of "
            f"the embeddings of FGSM test images over seeds {seeds}: {text['without_mli']} "
            f"without the invariance term, {text['with_mli']} with it (smaller = tighter).\n")


AUTHORS_CODE_COLUMNS = (  # (column, heading) of the authors-code table
    ("clean", "clean"), ("fgsm", "their FGSM"),
    ("invariance_authors_raw", "invariance, their scoring (0..255)"),
    ("invariance_authors", "invariance, scaled to [0, 1]"),
    ("fgsm_at_pgd_eps", "FGSM eps 0.1"), ("pgd", "PGD-10 eps 0.1"))


def format_authors_code(table, audit, seeds):
    """Markdown: each of the authors' configurations -- the Table 1 row it was printed as, its
    logged runs (mean ± std), and tinyadv running their code, every column."""
    printed_as = {entry["config"]: row for row, entry in audit["paper_rows"].items()
                  if "config" in entry}
    columns = [(c, h) for c, h in AUTHORS_CODE_COLUMNS if c in next(iter(table.values()))]
    lines = ["The authors' code, their configurations as rows: their logs (mean ± std of their "
             "runs: clean / FGSM / invariance, their scoring) and tinyadv's `authors-code` "
             f"({seeds_text(seeds, f'mean ± std over seeds {seeds}')}):", "",
             "| configuration | printed in Table 1 as | their logs | "
             + " | ".join(h for _, h in columns) + " |", "|---|---|---|" + "---|" * len(columns)]
    for config, row in table.items():
        logged = audit["logged_configs"].get(config)
        logs = ("not logged" if logged is None else " / ".join(
            f"{logged['mean'][c]:.2f} ± {logged['std'][c]:.2f}" for c in paper.PAPER_COLUMNS))
        lines.append(f"| {config} | {printed_as.get(config, '--')} | {logs} | "
                     + " | ".join(cell_text(row[c]) for c, _ in columns) + " |")
    return "\n".join(lines) + "\n"


def with_authors_attack(records, runs, runs_dir, evaluation, log):
    """The records with each run's columns on the paper's authors' attack added to its
    results (evaluate.authors_invariance on its saved weights; the saved record is not
    changed). Scored here, after training, rather than in the workers: the attack set is
    loaded once, and a run's weights decide these columns whatever the attack set's
    history, so a saved run never has to be retrained for them."""
    x_inv_255, y_source = experiments.authors_test_set(evaluation, log)
    scored = {}
    for run in runs:
        params = experiments.load_params(runs_dir, run.name)
        record = records[run.name]
        scored[run.name] = {**record, "results": {
            **record["results"], **evaluate.authors_invariance(params, x_inv_255, y_source,
                                                               net=FAST)}}
    return scored


def main(argv=None, command_line=False):
    """Run the reproduction; return the exit status. ``command_line``: called as
    ``python -m tinyadv.reproduce`` (then a Ctrl-C after the end is ignored, see
    experiments.run_command)."""
    started = time.perf_counter()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
    train_size = args.train_size or (QUICK["train_size"] if args.quick else FULL_TRAIN)
    test_size = args.test_size or (QUICK["test_size"] if args.quick else FULL_TEST)
    epochs = args.epochs or (QUICK["epochs"] if args.quick else preset_config(args.preset).epochs)
    # train_size stays 0 ("all") in the config: the data handed to train() is already cut.
    base = preset_config(args.preset, epochs=epochs, **args.fields)
    out = args.out or os.path.join("results", args.preset)
    runs_dir = os.path.join(out, "runs")
    evaluation = Evaluation(train_images=train_size, test_images=test_size,
                            **PRESET_EVALUATION.get(args.preset, {}))
    runs = table1_runs(base, seeds, args.preset, args.rows)
    # Ctrl-C at any instant: the workers are stopped, finished runs stay saved, no temporary
    # file is left, and the exit status is 130 (experiments.run_command).
    return experiments.run_command(
        lambda: reproduce(args, seeds, base, out, runs_dir, evaluation, runs, started),
        out, runs_dir, runs, evaluation, command_line)


def reproduce(args, seeds, base, out, runs_dir, evaluation, runs, started):
    """Train what is missing, then write the tables, Figure 1 and the JSON."""
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    config_record = {"preset": args.preset, "preset_fields": PRESETS[args.preset],
                     "overrides": args.fields, "base_config": base.to_dict(),
                     "models": args.rows, "seeds": seeds, "evaluation": evaluation.to_dict(),
                     "paper": paper.PAPER}
    write_text_atomic(os.path.join(out, "config.json"), json.dumps(config_record, indent=1))
    log(f"preset {args.preset}: " + ", ".join(f"{k}={v}" for k, v in base.to_dict().items()))
    records = experiments.obtain_records(runs, evaluation, runs_dir, args, log)
    if records is None:  # --shard: this shard's runs are trained; no table
        return
    records = with_authors_attack(records, runs, runs_dir, evaluation, log)

    names = {(run.labels["model"], run.labels["seed"]): run.name for run in runs}
    table = summarise(records, seeds, names, args.rows)
    audit = paper.audit(paper.load_author_logs())
    X_test, y_test = data.load_mnist("test")
    X_test, y_test = X_test[:evaluation.test_images], y_test[:evaluation.test_images]
    figure_rows = FIGURE1_ROWS.get(args.preset, DEFAULT_FIGURE1_ROWS)
    ratios = {"without_mli": [], "with_mli": []}
    if all(row in args.rows for row in figure_rows):
        ratios = figure1(runs_dir, seeds, args.preset, base, X_test, y_test,
                         os.path.join(out, "figure1.png"), names, figure_rows)
    # The comparisons of Table 1's rows against the Baseline, with intervals and paired
    # per-image tests (evidence.py); their per-seed numbers go to evidence.json.
    families = [] if args.preset == "authors-code" else evidence.table1_families(args.rows)
    found = None
    if families and len(seeds) > 1:
        found = evidence.collect(runs, records, runs_dir, evaluation, args.preset, args.command,
                                 families, log=log)
        found["values"] = {row: {"scatter_ratio": ratios[key]} for row, key in
                           zip(figure_rows, ("without_mli", "with_mli")) if ratios[key]}
        evidence.save(found, os.path.join(out, "evidence.json"))
    warnings = {name: evaluate.overfitting_warning(r["results"]) for name, r in records.items()}
    warnings = {name: w for name, w in warnings.items() if w}
    wall = time.perf_counter() - started
    compute = sum(records[run.name]["train_seconds"] + records[run.name]["eval_seconds"]
                  for run in runs)
    figure_text = (f"Figure 1: not drawn (it needs the rows {list(figure_rows)}).\n"
                   if not ratios["with_mli"] else figure1_text(ratios, seeds))
    result = {
        "preset": args.preset, "table": table,
        "paper": {"table1": paper.PAPER_TABLE1, "citation": paper.PAPER},
        "authors_logs": audit, "config": config_record, "overfitting_warnings": warnings,
        "figure1": {"scatter_ratio_without_mli": ratios["without_mli"],
                    "scatter_ratio_with_mli": ratios["with_mli"], "seeds": seeds,
                    "figure_seed": seeds[0],
                    "meaning": "trace(S_within)/trace(S_between) of the embeddings of FGSM test "
                               "images, one value per seed; smaller = more tightly grouped"},
        "wall_seconds": wall, "compute_seconds_of_all_runs": compute}
    markdown = "\n".join([
        format_side_by_side(table, audit, args.preset, seeds),
        format_table(table, seeds, args.preset),
        format_authors_attack(table, audit, args.preset, seeds),
        *([format_authors_code(table, audit, seeds)] if args.preset == "authors-code" else []),
        *([evidence.format_family(found, f["name"]) for f in found["families"]]
          if found else ["No comparisons: they need two seeds or more and the Baseline row.\n"]),
        paper.format_audit(audit),
        paper.format_logs_audit(logs.load_raw()),
        figure_text,
        ("No run's PGD accuracy is more than "
         f"{evaluate.OVERFITTING_GAP:.0f} points below its FGSM accuracy.\n" if not warnings else
         "**Warning -- catastrophic overfitting:**\n\n"
         + "\n".join(f"- {name}: {w}" for name, w in warnings.items()) + "\n"),
        f"Wall time {wall:.0f}s (this invocation); {compute:.0f}s of training+evaluation in "
        f"all runs.\n"])
    write_text_atomic(os.path.join(out, "table1.json"), json.dumps(result, indent=1))
    write_text_atomic(os.path.join(out, "table1.md"), markdown)
    log("\n" + markdown)
    log(f"wrote {out}/table1.md, table1.json, figure1.png, config.json"
        + (", evidence.json" if found else ""))


if __name__ == "__main__":
    sys.exit(main(command_line=True))
