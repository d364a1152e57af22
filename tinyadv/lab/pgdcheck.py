"""python -m tinyadv.lab.pgdcheck -- is a PGD-10 column's robustness real? Stronger attacks on
the saved weights of a reproduction.

PGD-10 with one random start can overstate robustness when gradients mislead (masking).
This command attacks each saved run of a reproduce folder again, on the first --images test
images, with PGD at more steps and with several random starts: an image counts as robust
under "PGD-k, r starts" only if every start leaves it classified right (the worst case per
image). Steps of 2.5 * eps / k (Madry et al.), eps the run's fgsm_eps.

    python -m tinyadv.lab.pgdcheck results/default --rows baseline baseline+mls
        [--images 5000] [--attacks 10x1 50x3 100x1] [--out DIR] [--evidence NAME]

Writes pgdcheck.md beside the folder's table (or into --out) with each row's mean ± std over
seeds under each attack, and the rows against the Baseline (evidence.py: Welch over seeds,
paired per-image, Holm inside the family); --evidence NAME also writes data/runs/NAME.json.
Each (run, attack) draws its random starts from np.random.default_rng((seed, steps, start)):
the same command gives the same numbers.
"""
import argparse
import os
import sys

import numpy as np

from .. import attacks, data
from ..fast.network import FAST
from ..fileio import write_text_atomic
from . import evidence, recipes

__all__ = ["main", "worst_case_correct", "parse_attack"]


def parse_attack(text):
    """'50x3' -> (50, 3): PGD steps and random starts."""
    steps, sep, starts = text.partition("x")
    try:
        steps, starts = int(steps), int(starts)
    except ValueError:
        steps = starts = 0
    if not sep or steps < 1 or starts < 1:
        raise argparse.ArgumentTypeError(f"expected STEPSxSTARTS with both >= 1 (e.g. 50x3), "
                                         f"got {text!r}")
    return steps, starts


def worst_case_correct(params, x, y, eps, steps, starts, seed):
    """(N,) bool: right under every one of ``starts`` PGD-``steps`` attacks (random starts
    from default_rng((seed, steps, start)))."""
    right = np.ones(len(y), dtype=bool)
    for start in range(starts):
        rng = np.random.default_rng((seed, steps, start))
        x_adv = attacks.pgd(params, x, y, eps, steps,
                            attacks.default_pgd_step_size(eps, steps), rng, net=FAST)
        right &= FAST.predict(params, x_adv) == y
    return right


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m tinyadv.lab.pgdcheck",
        description="PGD with more steps and random starts on a reproduce folder's saved runs.")
    parser.add_argument("results_dir", help="a folder written by python -m tinyadv.reproduce")
    parser.add_argument("--rows", nargs="+", default=None, help="rows to attack (default all)")
    parser.add_argument("--images", type=int, default=5000,
                        help="the first N test images (default 5000)")
    parser.add_argument("--attacks", nargs="+", type=parse_attack,
                        default=[(10, 1), (50, 3), (100, 1)], metavar="STEPSxSTARTS",
                        help="PGD steps x random starts (default 10x1 50x3 100x1)")
    parser.add_argument("--out", default=None, help="where pgdcheck.md goes (default the folder)")
    parser.add_argument("--evidence", default=None, metavar="NAME",
                        help="also write the per-seed evidence to data/runs/NAME.json")
    args = parser.parse_args(argv)
    runs, _, runs_dir, _, base = recipes.folder_runs(args.results_dir, args.rows)
    if not 1 <= args.images <= 10000:
        parser.error(f"--images: expected an integer in [1, 10000], got {args.images}")
    X, y = data.load_mnist("test")
    X, y = X[:args.images], y[:args.images]
    columns = [f"pgd{steps}x{starts}" for steps, starts in args.attacks]
    by_run, runs_of_row, seeds = {}, {}, []
    for run in runs:
        params = evidence._experiments().load_params(runs_dir, run.name)
        row, seed = run.labels["model"], run.labels["seed"]
        key = f"{row}__seed{seed}"
        by_run[key] = {c: worst_case_correct(params, X, y, run.config.fgsm_eps, steps, starts,
                                             seed)
                       for c, (steps, starts) in zip(columns, args.attacks)}
        runs_of_row.setdefault(row, []).append(key)
        seeds += [seed] if seed not in seeds else []
        print(f"{key}: " + ", ".join(f"{c} {100 * by_run[key][c].mean():.2f}%" for c in columns),
              flush=True)
    rows = list(runs_of_row)
    pairs = [(row, "baseline") for row in rows if row != "baseline"] if "baseline" in rows else []
    families = [evidence.Family("pgd check", "Does a row change accuracy under stronger PGD "
                                "against the Baseline?", pairs, columns)] if pairs and len(seeds) > 1 else []
    command = evidence.command_text("python -m tinyadv.lab.pgdcheck",
                                    sys.argv[1:] if argv is None else argv)
    found = evidence.build(args.evidence or "pgdcheck", command, seeds, by_run,
                           {c: args.images for c in columns}, families, runs_of_row)
    lines = [f"PGD on the first {args.images} test images of {args.results_dir}'s saved runs, "
             f"eps = {base.fgsm_eps}; worst case over the random starts; mean ± sample std over "
             f"seeds {seeds}, in %:", "", "| row | " + " | ".join(columns) + " |",
             "|---|" + "---|" * len(columns)]
    for row in rows:
        cells = []
        for c in columns:
            values = evidence.per_seed_percent(found, row, c)
            spread = f" ± {np.std(values, ddof=1):.2f}" if len(values) > 1 else ""
            cells.append(f"{np.mean(values):.2f}{spread}")
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    for family in found["families"]:
        text += "\n" + evidence.format_family(found, family["name"])
    out = args.out or args.results_dir
    write_text_atomic(os.path.join(out, "pgdcheck.md"), text)
    if args.evidence:
        evidence.save(found, os.path.join(evidence.EVIDENCE_DIR, f"{args.evidence}.json"))
    print("\n" + text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
