"""python -m tinyadv.sweep -- where does the invariance term act, and what does it do?

The paper claims that the invariance triplet (MLI) makes a model more robust to invariance
attacks. One table cannot settle that when the term barely acts, so this command trains a
grid of settings over several seeds and reports, for each, every column of reproduce (the
paper's invariance metric *and* agreement with human labels), how often each triplet hinge
was active in the last epoch, and the change against the baseline of the same embedding.

    python -m tinyadv.sweep [--quick] [--seeds 0 1 2] [--grid FIELD=v1,v2,... ...]
                            [--set FIELD=VALUE ...] [--protocols source oracle]
                            [--preset default] [--out DIR] [--jobs N]

The grid. For each combination of the *context* axes (fields that are not loss weights, by
default ``embed_dim`` 0 and 4), the sweep trains
  - the baseline (FGSM adversarial training, no triplet term);
  - + MLS alone (lambda_sens 0.5, lambda_norm 1e-3, as in Table 1) at each *triplet* setting
    (by default ``margin`` 0.05 and 0.5);
  - + MLS + MLI at each triplet setting, each ``lambda_inv`` (default 0.5, 2, 8) and each
    MLI protocol (``--protocols``, default the paper's ``source``).
That is 2 x (1 + 2 + 2 x 3) = 18 settings, 54 runs over three seeds. ``--grid FIELD=...``
replaces the values of an axis or adds an axis, for any config field.

Outputs in --out (default results/sweep/): sweep.json (every run, and mean ± std of every
setting with its change against the baseline: Welch's 95% CI and p over the seeds, the paired
per-image test, whether beyond the noise), sweep.md, sweep.png, and evidence.json (the per-seed
numbers behind the changes: evidence.py). The changes form one family, **exploratory**: no
correction for their number. The runs are trained,
saved, reused and resumed after Ctrl-C exactly as in reproduce (experiments.py).
"""
import argparse
import itertools
import json
import os
import sys
import time
from dataclasses import dataclass

import numpy as np

from .. import evaluate, plots
from ..fileio import write_text_atomic
from ..train import MODELS
from . import evidence, experiments, perimage
from . import stats as lab_stats
from .configs import RunConfig, preset_config
from .experiments import COLUMNS, FULL_TEST, FULL_TRAIN, Evaluation, Run, cell_text, mean_std, seeds_text

__all__ = ["main", "run_sweep", "parse_args", "parse_grid", "grid_settings", "run_values",
           "change", "summarise", "DEFAULT_AXES", "QUICK_AXES", "QUICK", "SETTING_COLUMNS"]

DEFAULT_AXES = {"embed_dim": [0, 4], "margin": [0.05, 0.5], "lambda_inv": [0.5, 2.0, 8.0]}
QUICK_AXES = {"embed_dim": [0, 4], "margin": [0.5], "lambda_inv": [2.0]}
QUICK = dict(train_size=5000, test_size=1000, epochs=2)
# Fields that only matter when a triplet term is on: those that set a term of Eq. 2 other
# than the cross-entropy (objective.eq2_terms; the norm term acts only with a triplet). Of
# them, lambda_inv is an axis of its own and the protocol comes from --protocols. All other
# grid fields are "context".
TRIPLET_FIELDS = ("lambda_sens", "margin", "negatives", "lambda_inv", "protocol", "lambda_norm")
MLS_WEIGHTS = {k: MODELS["baseline+mls"][k] for k in ("lambda_sens", "lambda_norm")}
PAPER_METRIC = "invariance_source"
HUMAN = "human_pooled"  # agreement with human labels over all four Tramer et al. sets
HUMAN_COLUMNS = [c for c in COLUMNS if c.startswith("human_")]
ACTIVE = ("active_sens", "active_inv")  # fraction of active hinges in the last epoch
SETTING_COLUMNS = COLUMNS + [HUMAN, "fgsm_pgd_gap", *ACTIVE]


@dataclass(frozen=True)
class Setting:
    """One point of the grid: a config without its seed, and what it is."""

    kind: str  # "baseline", "mls" or "mli"
    fields: tuple  # ((field, value), ...): where it differs from the preset, in axis order
    context: tuple  # ((field, value), ...) of the context axes: the baseline it is compared to

    @property
    def name(self):
        return " ".join([self.kind] + [f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                                       for k, v in self.fields])

    def stem(self, seed):
        return self.name.replace(" ", "_") + f"__seed{seed}"


def parse_grid(items, parser, flag="--grid"):
    """--grid FIELD=v1,v2 ... -> {field: [values]}; exit 2 naming a bad field or value."""
    axes = {}
    for item in items:
        field, sep, text = item.partition("=")
        if not sep or not text:
            parser.error(f"{flag}: expected FIELD=v1,v2,..., got {item!r}")
        if field in ("seed", "protocol"):
            parser.error(f"{flag} {field}: use --{field}s instead")
        if field in axes:
            parser.error(f"{flag} {field}: given twice; list all its values once, "
                         f"{field}=v1,v2,...")
        try:
            values = [RunConfig.parse_field(field, part) for part in text.split(",")]
            for value in values:  # the value must also be allowed, not only well typed
                RunConfig().replace(**{field: value})
        except ValueError as err:
            parser.error(f"{flag}: {err}")
        if field == "epochs" and min(values) < 1:  # as --epochs: a run must train
            parser.error(f"{flag} epochs: expected integers >= 1, got {text!r}")
        axes[field] = list(dict.fromkeys(values))  # each value once, in the order given
    return axes


def grid_settings(axes, protocols, base):
    """Every Setting of the grid (module docstring), each distinct config once."""
    axes = dict(axes)
    inv_values = [v for v in axes.pop("lambda_inv", [0.5]) if v > 0]
    triplet_axes = {k: v for k, v in axes.items() if k in TRIPLET_FIELDS}
    context_axes = {k: v for k, v in axes.items() if k not in TRIPLET_FIELDS}
    settings, seen = [], set()

    def add(kind, context, extra):
        config = base.replace(**dict(context), **extra)
        normal = _normalised(config, base)
        if normal in seen:
            return
        seen.add(normal)
        order = list(context_axes) + list(triplet_axes) + ["lambda_inv", "protocol"]
        fields = tuple((k, extra[k] if k in extra else dict(context)[k])
                       for k in order if k in extra or k in dict(context))
        # The paper's protocol goes unsaid, so a source run has one name (and one saved file)
        # whether or not --protocols also asks for oracle runs.
        fields = tuple(f for f in fields if f != ("protocol", "source"))
        settings.append((Setting(kind, fields, tuple(context)), config))

    for values in itertools.product(*context_axes.values()):
        context = tuple(zip(context_axes, values))
        add("baseline", context, {})
        for t_values in itertools.product(*triplet_axes.values()):
            triplet = dict(zip(triplet_axes, t_values))
            weights = {**MLS_WEIGHTS, **{k: v for k, v in triplet.items() if k in MLS_WEIGHTS}}
            if weights["lambda_sens"] > 0:
                add("mls", context, {**triplet, **weights})
            for lambda_inv, protocol in itertools.product(inv_values, protocols):
                add("mli", context, {**triplet, **weights, "lambda_inv": lambda_inv,
                                     "protocol": protocol})
    return settings


def _normalised(config, base):
    """The config with fields that cannot matter set to the preset's (to find duplicates)."""
    changes = {}
    if config.lambda_inv == 0:
        changes["protocol"] = base.protocol
    if config.lambda_sens == 0 and config.lambda_inv == 0:
        changes.update(margin=base.margin, negatives=base.negatives, lambda_norm=base.lambda_norm)
    return json.dumps(config.replace(**changes).to_dict(), sort_keys=True)


def run_values(record):
    """Every column of one run: accuracies in %, the gap in points, active fractions in %."""
    results = record["results"]
    values = {c: results[c]["percent"] for c in COLUMNS}
    values[HUMAN] = 100.0 * (sum(results[c]["correct"] for c in HUMAN_COLUMNS)
                             / sum(results[c]["total"] for c in HUMAN_COLUMNS))
    values["fgsm_pgd_gap"] = values["fgsm"] - values["pgd"]
    for key in ACTIVE:
        values[key] = 100.0 * record["history"][-1][key] if record["history"] else 0.0
    return values


def change(values, baseline_values):
    """Difference of means against the baseline: Welch's test over the seeds (its 95% CI and
    p: stats.welch), and the seed spread (the larger sample std of the two, for the
    figure's bars and lesson 09; ``within_spread`` is kept for it, and means no more than
    |diff| <= spread -- not a test: stats.beyond_noise is the one that says "beyond the
    noise"). With a single seed there is no spread and no test: those are None."""
    diff = float(np.mean(values) - np.mean(baseline_values))
    if len(values) < 2 or len(baseline_values) < 2:
        return {"diff": diff, "spread": None, "within_spread": None, "welch_p": None,
                "ci": None}
    spread = max(float(np.std(values, ddof=1)), float(np.std(baseline_values, ddof=1)))
    test = lab_stats.welch(values, baseline_values)
    return {"diff": diff, "spread": spread, "within_spread": abs(diff) <= spread,
            "welch_p": test["p"], "ci": test["ci"]}


# The changes the sweep tests, and the per-image column each is paired on.
CHANGE_COLUMNS = {PAPER_METRIC: PAPER_METRIC, HUMAN: "human",
                  "human_linf_eps04": "human_linf_eps04", "pgd": "pgd", "clean": "clean"}
FAMILY = "sweep"


def sweep_evidence(settings, records, seeds, runs_dir, evaluation, command, log=print):
    """The sweep's evidence (evidence.py): every run's per-image correctness recomputed from
    its weights, and one **exploratory** family -- every setting against the baseline of its
    context, on CHANGE_COLUMNS -- uncorrected: the sweep looks for where an effect is."""
    runs_of_row = {}
    compared = list(dict.fromkeys(CHANGE_COLUMNS.values()))
    columns = compared + ["fgsm"]  # FGSM for the tables (FGSM - PGD), not compared
    sets = {}  # by the invariance budget and shifts the settings' test sets were made with
    for _, config in settings:
        key = f"{config.inv_eps} {config.inv_shifts}"
        if key not in sets:
            sets[key] = perimage.test_sets(evaluation, config.inv_eps, config.inv_shifts,
                                           authors=False)
    tasks = [(runs_dir, setting.stem(seed), config.replace(seed=seed), evaluation,
              f"{config.inv_eps} {config.inv_shifts}", records[setting.stem(seed)]["results"],
              columns) for setting, config in settings for seed in seeds]
    by_run = {name: correct for name, (correct, _) in
              perimage.correctness_in_workers(tasks, sets).items()}
    for setting, _ in settings:
        runs_of_row[setting.name] = [setting.stem(seed) for seed in seeds]
    log(f"per-image correctness of {len(by_run)} runs recomputed; every count matches its record")
    baselines = {s.context: s.name for s, _ in settings if s.kind == "baseline"}
    pairs = [(s.name, baselines[s.context]) for s, _ in settings if s.kind != "baseline"]
    family = evidence.Family(FAMILY, "Does a setting change the paper's metric, agreement with "
                             "people, PGD or clean accuracy against the baseline of its "
                             "context?", pairs, compared, corrected=False)
    totals = {c: int(len(next(iter(by_run.values()))[c])) for c in columns}
    values = {setting.name: {key: [run_values(records[setting.stem(seed)])[key] for seed in seeds]
                             for key in ACTIVE} for setting, _ in settings}
    return evidence.build(FAMILY, command, seeds, by_run, totals, [family], runs_of_row,
                          values=values)


def summarise(settings, records, seeds, found=None):
    """Per setting: mean ± std of every column and, except for baselines, the change of the
    paper's metric, human agreement, PGD and clean accuracy against its baseline; with the
    sweep's evidence (``found``), each change also gets its paired per-image test
    (``paired``: diff, ci, p) and ``beyond_noise`` (stats.beyond_noise, uncorrected)."""
    per_setting = {}
    for setting, _ in settings:
        values = [run_values(records[setting.stem(s)]) for s in seeds]
        per_setting[setting.name] = {
            "kind": setting.kind, "fields": dict(setting.fields), "context": dict(setting.context),
            "columns": {c: mean_std([v[c] for v in values]) for c in SETTING_COLUMNS}}
    baselines = {s.context: s.name for s, _ in settings if s.kind == "baseline"}
    for setting, _ in settings:
        entry = per_setting[setting.name]
        if setting.kind == "baseline":
            continue
        base_columns = per_setting[baselines[setting.context]]["columns"]
        entry["baseline"] = baselines[setting.context]
        entry["change"] = {c: change(entry["columns"][c]["per_seed"], base_columns[c]["per_seed"])
                           for c in CHANGE_COLUMNS}
    if found is not None and len(seeds) > 1:
        pooled = {v: k for k, v in CHANGE_COLUMNS.items()}
        for c in evidence.evaluate(found, FAMILY):
            ch = per_setting[c["a"]]["change"][pooled[c["column"]]]
            ch["paired"] = {k: c["images"][k] for k in ("diff", "ci", "p", "n")}
            ch["beyond_noise"] = lab_stats.beyond_noise(c["seeds"], c["images"])
    return per_setting


def _fmt_change(ch):
    """"+1.47 [+0.60, +2.34] p=0.011 | paired p<0.001", bold when beyond the noise."""
    if ch["welch_p"] is None:
        return f"{ch['diff']:+.2f} (one seed: no test)"
    text = (f"{lab_stats.format_diff(ch['diff'])} {lab_stats.format_ci(ch['ci'])}, "
            f"p={lab_stats.format_p(ch['welch_p'])}")
    if "paired" in ch:
        text += f"; images p={lab_stats.format_p(ch['paired']['p'])}"
    return f"**{text}**" if ch.get("beyond_noise") else text


def format_markdown(summary, seeds, preset):
    shown = ["clean", "fgsm", "pgd", PAPER_METRIC, "invariance_flipped", "human_linf_eps04",
             "human_linf_manual_eps04", HUMAN, *ACTIVE]
    cells = seeds_text(seeds, "mean ± sample std over seeds")
    lines = [f"Sweep, preset `{preset}`, seeds {seeds}: {cells}; accuracies "
             f"in %, {HUMAN} = agreement with the human labels of all four Tramèr et al. sets "
             f"(350 images), active_* = % of triplets with an active hinge in the last epoch.",
             "", "| setting | " + " | ".join(shown) + " |", "|---|" + "---|" * len(shown)]
    for name, entry in summary.items():
        lines.append(f"| {name} | " + " | ".join(cell_text(entry["columns"][c]) for c in shown) + " |")
    lines += ["", "Change against the baseline of the same context, **exploratory** (every "
                  "setting and column, no correction for the number of comparisons): the "
                  "difference of means in points, its 95% CI and p over the seeds (Welch), and "
                  "p of the paired per-image test on the same images; **bold** where beyond "
                  "the noise (both p < 0.05, uncorrected: lab/stats.py):", "",
              f"| setting | Δ {PAPER_METRIC} (paper's metric) | Δ {HUMAN} | Δ human_linf_eps04 "
              f"| Δ pgd | Δ clean |", "|---|---|---|---|---|---|"]
    for name, entry in summary.items():
        if "change" in entry:
            ch = entry["change"]
            lines.append(f"| {name} | " + " | ".join(_fmt_change(ch[c]) for c in CHANGE_COLUMNS)
                         + " |")
    return "\n".join(lines) + "\n"


def _half_ci(ch):
    """Half the width of a change's 95% CI (0 when there is none: one seed)."""
    return 0.0 if ch.get("ci") is None else (ch["ci"][1] - ch["ci"][0]) / 2


def sweep_figure(summary, path):
    """Each column against lambda_inv (0 = + MLS alone), one line per other setting, the
    baseline of each context as a band; and the change of the paper's metric against the
    change of human agreement, setting by setting."""
    plt = plots._pyplot()
    panels = COLUMNS + [HUMAN, "active_inv"]
    fig, axes = plt.subplots(3, 4, figsize=(18, 12.5))
    axes = axes.ravel()
    lines = {}  # (everything but lambda_inv) -> [(lambda_inv, entry)]
    for entry in summary.values():
        if entry["kind"] == "baseline":
            continue
        key = tuple((k, v) for k, v in entry["fields"].items() if k != "lambda_inv")
        lines.setdefault(key, []).append((entry["fields"].get("lambda_inv", 0.0), entry))
    contexts = sorted({tuple(e["context"].items()) for e in summary.values()}, key=str)
    colours = plt.get_cmap("tab10")
    x_values = sorted({x for points in lines.values() for x, _ in points})
    position = {x: i for i, x in enumerate(x_values)}  # evenly spaced: lambda 0, 0.5, 2, 8
    for ax, column in zip(axes, panels):
        for c, context in enumerate(contexts):
            base = next(e for e in summary.values()
                        if e["kind"] == "baseline" and tuple(e["context"].items()) == context)
            cell = base["columns"][column]
            ax.axhspan(cell["mean"] - cell["std"], cell["mean"] + cell["std"],
                       color=colours(c % 10), alpha=0.12)
            ax.axhline(cell["mean"], color=colours(c % 10), lw=0.8, ls=":")
        for i, (key, points) in enumerate(sorted(lines.items(), key=str)):
            points.sort(key=lambda p: p[0])
            context = tuple(points[0][1]["context"].items())
            style = ["-", "--", "-.", ":"][i % 4]
            ax.errorbar([position[x] for x, _ in points],
                        [e["columns"][column]["mean"] for _, e in points],
                        yerr=[e["columns"][column]["std"] for _, e in points],
                        color=colours(contexts.index(context) % 10), ls=style, marker="o", ms=3,
                        capsize=2, label=", ".join(f"{k}={v}" for k, v in key))
        ax.set_xticks(range(len(x_values)))
        ax.set_xticklabels(["MLS\nalone" if x == 0 else f"{x:g}" for x in x_values])
        ax.set_title(column, fontsize=10)
        ax.set_xlabel("lambda_inv (λ2)", fontsize=8)
    ax = axes[len(panels)]
    for entry in summary.values():
        if "change" not in entry:
            continue
        ch = entry["change"]
        context = tuple(entry["context"].items())
        marker = {"mls": "s", "mli": "o"}[entry["kind"]]
        ax.errorbar(ch[PAPER_METRIC]["diff"], ch[HUMAN]["diff"],
                    xerr=_half_ci(ch[PAPER_METRIC]), yerr=_half_ci(ch[HUMAN]),
                    color=colours(contexts.index(context) % 10),
                    marker=marker, ms=4, capsize=2, alpha=0.8, ls="none")
    ax.axhline(0, color="grey", lw=0.6)
    ax.axvline(0, color="grey", lw=0.6)
    ax.set_xlabel(f"Δ {PAPER_METRIC} vs baseline (paper's metric, points)", fontsize=8)
    ax.set_ylabel(f"Δ {HUMAN} vs baseline (points)", fontsize=8)
    ax.set_title("moving the paper's metric vs agreeing with people\n"
                 "(squares: + MLS alone; circles: + MLI; bars: 95% CI over seeds)", fontsize=9)
    for ax in axes[len(panels) + 1:]:
        ax.axis("off")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", fontsize=8, ncol=min(4, max(1, len(labels))),
               title="lines; dotted line and band: the baseline of the same colour (mean ± std)",
               title_fontsize=8)
    one_seed = all(len(e["columns"][PAPER_METRIC]["per_seed"]) == 1 for e in summary.values())
    fig.suptitle("Where does the invariance term act? Every column against λ2; "
                 + ("1 seed: one run per point, no error bars" if one_seed else
                    "error bars: sample std over seeds"), fontsize=12)
    fig.tight_layout(rect=(0, 0.07, 1, 0.97))
    plots.save_figure(fig, path)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m tinyadv.sweep",
        description="Where does the invariance term act? Train a grid of settings over seeds "
                    "and judge each by the paper's metric and by human labels.")
    experiments.add_run_arguments(
        parser, quick_help=f"small data ({QUICK['train_size']} training, {QUICK['test_size']} "
                           f"test images, {QUICK['epochs']} epochs), one seed, a small grid")
    parser.add_argument("--grid", nargs="+", action="extend", default=[], metavar="FIELD=v1,v2",
                        help="replace (or add) an axis of the grid, for any config field")
    parser.add_argument("--set", dest="overrides", metavar="FIELD=VALUE", action="append",
                        default=[], help="fix one config field for every run, e.g. --set "
                                         "invariance_generator=authors (repeatable): an axis "
                                         "with one value, so the runs' names say it")
    parser.add_argument("--protocols", nargs="+", choices=["source", "oracle"],
                        default=["source"], help="MLI protocols (default: the paper's, source)")
    parser.add_argument("--out", default=os.path.join("results", "sweep"),
                        help="output folder (default results/sweep)")
    args = parser.parse_args(argv)  # unknown flags: usage + exit 2 (argparse)
    args.command = evidence.command_text("python -m tinyadv.sweep", argv)
    experiments.check_run_arguments(parser, args)
    grid = parse_grid(args.grid, parser)
    fixed = parse_grid(args.overrides, parser, "--set")  # FIELD=VALUE: the same checks, one value
    for field, values in fixed.items():
        if len(values) != 1:
            parser.error(f"--set {field}: expected one value, got {values}; to vary it, use "
                         f"--grid {field}=...")
        if field in grid:
            parser.error(f"--set {field}: also given to --grid; give it once")
    args.axes = {**(QUICK_AXES if args.quick else DEFAULT_AXES), **grid, **fixed}
    # Each value was allowed alone; check the combinations with the preset, and the names.
    try:
        settings = grid_settings(args.axes, args.protocols, preset_config(args.preset))
    except ValueError as err:
        parser.error(f"--grid with --preset {args.preset}: {err}")
    names = [setting.name for setting, _ in settings]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        parser.error(f"--grid: values too close to tell apart in a run's name: {twice}")
    return args


def main(argv=None, command_line=False):
    """Run the sweep; return the exit status (``command_line``: as in reproduce.main)."""
    started = time.perf_counter()
    args = parse_args(sys.argv[1:] if argv is None else argv)
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
    epochs = args.epochs or (QUICK["epochs"] if args.quick else RunConfig().epochs)
    evaluation = Evaluation(train_images=QUICK["train_size"] if args.quick else FULL_TRAIN,
                            test_images=QUICK["test_size"] if args.quick else FULL_TEST)
    base = preset_config(args.preset, epochs=epochs)
    settings = grid_settings(args.axes, args.protocols, base)
    runs = [Run(setting.stem(seed), config.replace(seed=seed),
                labels={"setting": setting.name, "seed": seed}, preset=args.preset)
            for setting, config in settings for seed in seeds]
    runs_dir = os.path.join(args.out, "runs")
    # Ctrl-C at any instant: as in reproduce (experiments.run_command), exit status 130.
    return experiments.run_command(
        lambda: run_sweep(args, seeds, base, settings, runs, runs_dir, evaluation, started),
        args.out, runs_dir, runs, evaluation, command_line)


def run_sweep(args, seeds, base, settings, runs, runs_dir, evaluation, started):
    """Train what is missing, then write sweep.json, sweep.md and sweep.png."""
    log = lambda msg: print(msg, flush=True)  # noqa: E731
    log(f"sweep: {len(settings)} settings x {len(seeds)} seed(s) = {len(runs)} runs; axes "
        + ", ".join(f"{k}={v}" for k, v in args.axes.items())
        + f"; protocols {args.protocols}; preset {args.preset}")
    config_record = {"preset": args.preset, "base_config": base.to_dict(), "axes": args.axes,
                     "protocols": args.protocols, "seeds": seeds,
                     "evaluation": evaluation.to_dict(),
                     "settings": {s.name: c.to_dict() for s, c in settings}}
    write_text_atomic(os.path.join(args.out, "config.json"), json.dumps(config_record, indent=1))
    records = experiments.obtain_records(runs, evaluation, runs_dir, args, log)
    if records is None:  # --shard: this shard's runs are trained; no table
        return
    found = None
    if len(seeds) > 1:
        found = sweep_evidence(settings, records, seeds, runs_dir, evaluation, args.command, log)
        evidence.save(found, os.path.join(args.out, "evidence.json"))
    summary = summarise(settings, records, seeds, found)
    sweep_figure(summary, os.path.join(args.out, "sweep.png"))
    wall = time.perf_counter() - started
    compute = sum(r["train_seconds"] + r["eval_seconds"] for r in records.values())
    warnings = {name: w for name, r in records.items()
                if (w := evaluate.overfitting_warning(r["results"]))}
    result = {"config": config_record, "settings": summary,
              "runs": {name: {"setting": r["setting"], "seed": r["seed"], "values": run_values(r)}
                       for name, r in records.items()},
              "overfitting_warnings": warnings, "wall_seconds": wall,
              "compute_seconds_of_all_runs": compute}
    markdown = format_markdown(summary, seeds, args.preset) + (
        "\n" + "".join(f"- WARNING {n}: {w}\n" for n, w in warnings.items()) if warnings else "") + (
        f"\nWall time {wall:.0f}s (this invocation); {compute:.0f}s of training+evaluation in "
        f"all runs.\n")
    write_text_atomic(os.path.join(args.out, "sweep.json"), json.dumps(result, indent=1))
    write_text_atomic(os.path.join(args.out, "sweep.md"), markdown)
    log("\n" + markdown)
    log(f"wrote {args.out}/sweep.md, sweep.json, sweep.png, config.json")


if __name__ == "__main__":
    sys.exit(main(command_line=True))
