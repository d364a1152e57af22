"""The generated tables of data/results.md, each from committed data only (recipes.load):
the authors' raw logs and the per-seed evidence of tinyadv's runs (data/runs/*.json).

Each ``block_*`` returns one block's markdown; TABLES names them as results.md's markers do
(``<!-- begin generated: NAME -->``). claims.py writes and checks them. A block whose evidence
is not collected yet says which command makes it.
"""
import numpy as np

from . import evidence, logs, paper, recipes, stats

__all__ = ["TABLES", "rows_table", "scatter_comparisons", "sweep_summary",
           "matched_epochs_figure", "END_PROBES", "SCATTER_PRESETS"]


def _missing(name):
    recipe = recipes.RECIPES.get(name)
    command = recipe["command"] if recipe else recipes.OWN_EVIDENCE.get(name, "?")
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
        ev = recipes.load(name)
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
    ev = recipes.load("paper-4d-eps0031")
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
        ev = recipes.load(name)
        if ev is None or "scatter_ratio" not in ev["values"].get("baseline+mls+mli", {}):
            continue
        a = ev["values"]["baseline+mls+mli"]["scatter_ratio"]
        b_row = "baseline+mls" if "baseline+mls" in ev["values"] else "baseline"
        b = ev["values"][b_row]["scatter_ratio"]
        comps.append((name, b_row, a, b, stats.welch(a, b)))
    stats.correct_family([c[-1] for c in comps])
    return comps


def _cell3(values):
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}"


def block_sweep():
    ev = recipes.load("sweep")
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
    ev = recipes.load("pgd-check")
    if ev is None:
        return _missing("pgd-check")
    columns = list(ev["totals"])
    labels = {c: f"PGD-{c[3:].split('x')[0]}, {c.split('x')[1]} start(s)" for c in columns}
    n = ev["totals"][columns[0]]
    out = [f"`{ev['command']}` (the saved runs of `python -m tinyadv.reproduce`), the first {n} "
           f"test images, ε = 0.1, an image robust only if every start leaves it right; seeds "
           f"{_seeds(ev)}, mean ± sample std, in %:\n",
           rows_table(ev, columns, labels=labels, first="model")]
    out += [evidence.format_family(ev, fam["name"]) for fam in ev["families"]]
    return "\n".join(out)


def block_cnn10():
    ev = recipes.load("cnn10")
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
        ev = recipes.load(name)
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
    ev = recipes.load("choices")
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
    raw = [log for log in recipes.raw_logs() if log["commit"] == logs.FINAL_COMMIT]
    lines = ["Their logs (3 runs, 10,000 test images; mean ± sample std) and tinyadv's "
             "`authors-code` runs at the same epochs (the probe after each epoch: the first "
             "2,000 test images; mean ± sample std over seeds), clean / invariance, their "
             "scoring:", "",
             "| configuration | source | " + " | ".join(f"epoch {e}" for e in MATCHED_EPOCHS)
             + " |", "|---|---|" + "---|" * len(MATCHED_EPOCHS)]
    sources = [(name, net) for name, net in (("authors-code", "tinyadv CNN"),
                                             ("authors-code-mlp", "tinyadv MLP"))
               if recipes.load(name) is not None]
    for config in MATCHED:
        runs = [log for log in raw if log["name"] == config]
        cells = []
        for e in MATCHED_EPOCHS:
            clean = [float(log["epochs"][e - 1]["clean"]) for log in runs]
            inv = [float(log["epochs"][e - 1]["invariance_source"]) for log in runs]
            cells.append(f"{_cell(clean)} / {_cell(inv)}")
        lines.append(f"| {config} | their logs | " + " | ".join(cells) + " |")
        for name, net in sources:
            history = recipes.load(name).get("history", {}).get(config)
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
    raw = [log for log in recipes.raw_logs() if log["commit"] == logs.FINAL_COMMIT]
    fig, axes = plt.subplots(2, len(MATCHED), figsize=(5 * len(MATCHED), 7), sharex=True)
    sources = [(name, net, colour) for name, net, colour in (
        ("authors-code", "tinyadv CNN (probe, 2,000 images)", "tab:red"),
        ("authors-code-mlp", "tinyadv MLP (probe, 2,000 images)", "tab:blue"))
        if recipes.load(name) is not None]
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
                history = recipes.load(name).get("history", {}).get(config)
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


def block_table1_side():
    """The paper as printed, the authors' logs behind each printed row, tinyadv's presets."""
    audit = paper.audit(paper.load_author_logs())
    presets = [(name, recipes.load(name)) for name in ("default", "paper-4d")]
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
            ev = recipes.load(name)
            cells.append(_cell(evidence.per_seed_percent(ev, row, column))
                         if ev and row in ev["correct"] else "--")
        lines.append(f"| {names[row]} | {entry['paper']['invariance_source']:.2f} | "
                     f"{entry['mean']['invariance_source']:.2f} ± "
                     f"{entry['std']['invariance_source']:.2f} | " + " | ".join(cells) + " |")
    gen = recipes.load("paper-4d-authorsgen")
    if gen is not None:
        cells = [_cell(evidence.per_seed_percent(gen, "baseline+mls+mli", c)) if name == "paper-4d"
                 else "" for name, c, _ in sources]
        lines.append("| + MLS + MLI, its positives from the authors' attack "
                     "(`--set invariance_generator=authors`) | | | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"




def block_ce_invariance():
    ev = recipes.load("ce-invariance")
    if ev is None:
        return _missing("ce-invariance")
    out = [f"`{ev['command']}` beside `paper-4d`'s Baseline, seeds {_seeds(ev)}, mean ± sample "
           "std, in %:\n",
           rows_table(ev, ("clean", "fgsm", "pgd", "invariance_source", "invariance_authors",
                           "human", "human_kept", "human_changed"), labels=COLUMN_LABELS,
                      first="model"),
           evidence.format_family(ev, "training on the attack")]
    return "\n".join(out)


def block_init():
    ev = recipes.load("sweep-init")
    if ev is None:
        return _missing("sweep-init")
    return (f"`{ev['command']}`, seeds {_seeds(ev)}, mean ± sample std, in %:\n\n"
            + rows_table(ev, ("clean", "fgsm", "pgd", "fgsm_pgd_gap"), labels=COLUMN_LABELS,
                         first="setting"))


def block_norm():
    ev = recipes.load("sweep-norm")
    if ev is None:
        return _missing("sweep-norm")
    return (f"`{ev['command']}`, seeds {_seeds(ev)}, mean ± sample std, in %:\n\n"
            + rows_table(ev, ("clean", "fgsm", "pgd", "invariance_source", "human"),
                         labels=COLUMN_LABELS, first="setting")
            + "\n" + evidence.format_family(ev, "sweep"))


TABLES = {"logs": lambda: paper.format_logs_audit(recipes.raw_logs()),
          "matched-epochs": block_matched_epochs, "table1-side": block_table1_side,
          "table1-attack": block_table1_attack, "table1": block_table1,
          "eps0031": block_eps0031, "ce-invariance": block_ce_invariance,
          "sweep": block_sweep, "init": block_init, "norm": block_norm,
          "pgd-check": block_pgd_check, "scatter": block_scatter, "cnn10": block_cnn10,
          "authors-code": block_authors_code, "choices": block_choices}
