"""Lesson 09 -- reading a results table: three runs, their spread, and what a test can say.

The paper's Table 1 prints one number per cell and says "Values are averaged over three
randomly seeded runs". This lesson trains nothing. It reads numbers -- the paper's table, the
authors' own training logs behind it (data/ovalle2022_logs/), and tinyadv's reproduction and
sweep if you have made them -- and asks of each what it can and cannot tell.

What you will see (about 4 s on an idle 2-core machine, 7 s on a busy one; sections 1-6 read
the committed logs, so their numbers are fixed; the simulations use seeded generators)
-----------------------------------------------------------------------------------------
1. The paper's Table 1 as printed: + MLS + MLI beats the Baseline on invariance by +2.13
   points (85.67 -> 87.80), and + MLS is lowest (82.49).
2. The authors' 24 logged runs (8 configurations x 3), mean ± sample std computed by hand and
   checked against ``paper.audit``: every printed row is run 3 of one configuration, not an
   average. On invariance: Baseline 86.06 ± 0.69, + MLS 85.28 ± 4.54, + MLS + MLI 85.09 ± 3.25.
   The + MLS + MLI row is nll-sensitivity-norm-invar, which computed no triplet at all (its
   extra term, the norm of the input images, has no gradient); the one configuration that
   applies the invariance triplet, nll-ml-invariance, scores 9.90 ± 1.28. Three configurations
   train with the Baseline's gradients: nine runs of one recipe span 81.48-89.29 (7.81 points).
3. Which run is printed moves a row (09_runs_behind_table1.png): the Baseline could have
   printed 85.65-86.85, + MLS 82.49-90.52, + MLS + MLI 81.48-87.80. Of the 27 tables that one
   run per row can make, + MLS + MLI beats the Baseline in 15 and the printed order holds in
   10; the "gain" ranges from -5.37 to +2.15, and the printed pair has the second-largest of
   the nine. Averaged, the invariance column falls: 86.06, 85.28, 85.09.
4. What mean ± std of three runs can tell: a 95% interval for the mean is mean ± 2.48 s
   (Student's t with 2 degrees of freedom is 4.30, not 1.96), and the true std lies between
   0.52 s and 6.28 s. + MLS's std of 4.54 is one run (without it, 0.24). In 20,000 simulated
   triples with true std 1, the sample std is below 0.5 in 22% and above 1.5 in 11%.
5. Two points against spreads of 0.7 and 3.3: Welch's t-test, written out and with
   ``scipy.stats.ttest_ind(..., equal_var=False)``, Baseline vs + MLS + MLI, three runs each:
   difference -0.97, standard error 1.92, t = -0.51 on 2.18 degrees of freedom, p = 0.66; had
   the means differed by the printed +2.13, p = 0.37. What p means and what it does not. With
   these spreads a difference must exceed 7.6 points to reach p < 0.05; a permutation test of
   3 + 3 runs can never go below p = 0.10 (here 0.90). Only nll-ml-invariance's -76.16 points
   stands out (Welch p = 2.4e-06); the two pairs that differ only by name give p = 0.72, 0.54.
6. How weak three runs are (09_three_runs_are_few.png; the spreads 0.69 and 3.25 taken as
   true, 20,000 simulated experiments per point): a true 2-point gain reaches p < 0.05 in 12%
   of experiments with 3 runs per side (19%, 41%, 72% with 5, 10, 20), and 80% power needs a
   10.5-point difference (5.5, 3.5, 2.5). False alarms at no difference: 4.8-5.8%.
7. tinyadv's own table, from --results DIR (default: the repository's results/), every
   DIR/<preset>/table1.json. With none, it says which command makes one. Measured here with
   ``python -m tinyadv.reproduce`` (preset default, seeds 0-2, 10,000 test images; about 4 min
   on a 2-core machine, the README's timing table): invariance spreads over
   seeds 0.14-0.40 (the authors': 0.69-4.54); each triplet row moves the paper's metric by
   -0.76, -0.52, -0.47 (Welch p 0.069, 0.17, 0.2) and human agreement (350 images, sampling
   error up to ±2.7 points) by +0.10 to +0.29 (p >= 0.63), but PGD accuracy by +2.77 to +3.14
   (p 0.0098-0.015). Picking one seed per row, the Baseline tops the invariance column in 66
   of 81 tables. From ``--quick`` (one seed) it says: no spread, no test.
8. The sweep, from DIR/sweep/sweep.json, or the command that makes it. Measured here with
   ``python -m tinyadv.sweep`` (18 settings x 3 seeds; about 13 min on the same machine): 11 of
   16 settings raise the paper's metric (+0.35 to +4.20), and every one of them lowers
   agreement with people (-1.05 to -4.19 points) while PGD accuracy moves by -29.57 to +2.95;
   across settings, a point of the paper's metric goes with -0.80 points of human agreement
   (correlation -0.86). 27 of 64 tests give p < 0.05, where chance alone would give about 3.

``--fast`` runs the same code with 2,000 instead of 20,000 simulated experiments per point
(sections 4 and 6 then differ a little: 80% power with 3 runs at 10.0 points, not 10.5).
Figures: 09_runs_behind_table1.png, 09_three_runs_are_few.png.

Run:  python lessons/09_reading_a_results_table.py [--fast] [--out DIR] [--results DIR]
"""

# %% Setup
import argparse
import glob
import itertools
import json
import os
import sys

# One BLAS thread (NumPy's matrix products) unless you set OPENBLAS_NUM_THREADS yourself: on
# a busy machine a second thread mostly waits for a core (the lesson then takes several times
# longer), and the last digit of a sum can change with the thread count. Set before NumPy is
# imported, or it has no effect.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from scipy import stats  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__)) if "__file__" in globals() else os.getcwd()
if os.path.isdir(os.path.join(HERE, "lessons")):  # a notebook started at the repository root
    HERE = os.path.join(HERE, "lessons")
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # the repository root: `import tinyadv` without installing
from tinyadv.lesson import lesson_options  # noqa: E402
from tinyadv import data, plots  # noqa: E402
from tinyadv.lab import paper  # noqa: E402

OUT, FAST = lesson_options("Lesson 09: reading a results table",
                           default_out=os.path.join(HERE, "out"))
# lesson_options knows --out and --fast only; this lesson also reads --results. Unknown
# flags (those two, a notebook kernel's own) are left alone, as lesson_options does.
_parser = argparse.ArgumentParser(allow_abbrev=False)
_parser.add_argument("--results", default=os.path.join(ROOT, "results"),
                     help="folder holding reproduce's <preset>/table1.json and the sweep's "
                          "sweep/sweep.json (default: results/ of the repository)")
RESULTS = _parser.parse_known_args()[0].results

N_SIM = 2000 if FAST else 20000  # simulated experiments per point in sections 4 and 6
ALPHA = 0.05  # the conventional threshold, used here only to count how often p falls below it
COLS = paper.PAPER_COLUMNS  # clean, fgsm, invariance_source
COL_NAMES = {"clean": "clean", "fgsm": "FGSM", "invariance_source": "invariance"}


def mean_sd(values):
    """Mean and *sample* standard deviation (ddof=1: divide by n - 1), as papers report."""
    values = np.asarray(values, dtype=np.float64)
    return values.mean(), (values.std(ddof=1) if len(values) > 1 else float("nan"))


def welch(a, b):
    """Welch's t-test of mean(a) - mean(b), written out: t, degrees of freedom, two-sided p."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)  # squared standard errors
    t = (a.mean() - b.mean()) / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))  # Welch-Satterthwaite
    return t, df, 2 * stats.t.sf(abs(t), df)


def permutation_p(a, b):
    """Exact permutation test of |mean(a) - mean(b)|: every way to split the runs in two."""
    pooled = np.concatenate([a, b]).astype(np.float64)
    observed = abs(np.mean(a) - np.mean(b))
    splits = list(itertools.combinations(range(len(pooled)), len(a)))
    extreme = 0
    for idx in splits:
        rest = np.delete(pooled, idx)
        extreme += abs(pooled[list(idx)].mean() - rest.mean()) >= observed - 1e-9
    return extreme / len(splits), len(splits)


# %% 1. The paper's Table 1, as printed
# Three rows, three columns, one number per cell, and the caption: "Values are averaged over
# three randomly seeded runs". Read as printed, + MLS + MLI is the most robust to invariance
# attacks, by 2.1 points over the Baseline, and + MLS the least.
print("1. The paper's Table 1 as printed (accuracy %; the caption: 'averaged over three "
      "randomly seeded runs'):")
print(f"   {'row':<18}" + "".join(f"{COL_NAMES[c]:>12}" for c in COLS))
for row, cells in paper.PAPER_TABLE1.items():
    print(f"   {row:<18}" + "".join(f"{cells[c]:>12.2f}" for c in COLS))
printed_gain = (paper.PAPER_TABLE1["baseline+mls+mli"]["invariance_source"]
                - paper.PAPER_TABLE1["baseline"]["invariance_source"])
print(f"   what it seems to say: + MLS + MLI beats the Baseline on invariance by "
      f"{printed_gain:+.2f} points.")

# %% 2. The authors' logs: three runs per configuration
# The authors' public repository logged every run: 8 configurations x 3 runs, the final test
# accuracies of each (data/ovalle2022_logs/README.md). The mean and the *sample* standard
# deviation (divide by n - 1 = 2) of each configuration, computed here by hand; paper.audit
# finds, by searching the logs, which run each printed row is.
logs = paper.load_author_logs()
runs = {}  # config -> column -> the three runs, in run order
for r in sorted(logs, key=lambda r: (r["config"], r["run"])):
    for c in COLS:
        runs.setdefault(r["config"], {}).setdefault(c, []).append(r[c])
triplet = {r["config"]: False for r in logs}
for r in logs:
    triplet[r["config"]] |= r["triplet_in_log"]
audit = paper.audit(logs)
row_of = {entry["config"]: row for row, entry in audit["paper_rows"].items() if "config" in entry}
printed_run = {row: entry["printed_run"] for row, entry in audit["paper_rows"].items()
               if "config" in entry}
config_of = {row: config for config, row in row_of.items()}

print(f"\n2. The authors' logs: {len(logs)} runs, {len(runs)} configurations x "
      f"{len(logs) // len(runs)} runs (mean ± sample std; invariance runs 1, 2, 3):")
print(f"   {'config':<28}{'triplet?':>9}{'clean':>15}{'FGSM':>15}{'invariance':>15}"
      f"   {'runs':<20} printed as")
for config, cols in runs.items():
    cells = "".join(f"{'%.2f ± %.2f' % mean_sd(cols[c]):>15}" for c in COLS)
    each = ", ".join(f"{v:.2f}" for v in cols["invariance_source"])
    shown = (f"{row_of[config]} (run {printed_run[row_of[config]]})" if config in row_of else "")
    print(f"   {config:<28}{'yes' if triplet[config] else 'no':>9}{cells}   {each:<20} {shown}")
for row, entry in audit["paper_rows"].items():  # the same numbers, from the library
    assert np.isclose(entry["mean"]["invariance_source"],
                      mean_sd(runs[entry["config"]]["invariance_source"])[0])
    assert np.isclose(entry["std"]["invariance_source"],
                      mean_sd(runs[entry["config"]]["invariance_source"])[1])
print("   Every printed row is ONE run, run "
      + " / ".join(str(printed_run[row]) for row in paper.PAPER_TABLE1)
      + " of its configuration -- not an average of three.")
mli_config = config_of["baseline+mls+mli"]
print(f"   The '+ MLS + MLI' row is {mli_config}: {paper.LOGGED_CONFIG_CONTENTS[mli_config]}. "
      f"It computed no triplet at all.")
ml_inv = "nll-ml-invariance"
print(f"   The one configuration that does apply the invariance triplet, {ml_inv}, scores "
      "%.2f ± %.2f on the invariance set." % mean_sd(runs[ml_inv]["invariance_source"]))
# Three configurations train with the same gradients: CE on FGSM images, plus (in two of
# them) the norm of the *input images*, which does not depend on the weights. As far as the
# config files show they are one recipe under three names; what separates their runs is the
# randomness of training. Nine runs of one recipe: the spread seeds alone produce.
SAME_RECIPE = ["nll-sensitivity", "nll-sensitivity-norm", "nll-sensitivity-norm-invar"]
null_runs = np.concatenate([runs[c]["invariance_source"] for c in SAME_RECIPE])
print(f"   {', '.join(SAME_RECIPE)}: the same gradients (the extra norm term has none), so nine "
      f"runs of one recipe. Their invariance accuracy: {null_runs.min():.2f} to "
      f"{null_runs.max():.2f} (a range of {np.ptp(null_runs):.2f} points), "
      "%.2f ± %.2f." % mean_sd(null_runs))

# %% 3. Which run was printed, and how much that choice moves a row
# If a table shows one run out of three, each cell could have shown any of three numbers.
# Below: the range each row could have printed, and all 3 x 3 x 3 = 27 tables one could have
# made by picking one run per row -- in how many does the invariance column tell the paper's
# story?
print("\n3. One run per row: what each row could have printed on invariance")
choices = {row: runs[config_of[row]]["invariance_source"] for row in paper.PAPER_TABLE1}
for row, values in choices.items():
    mean, sd = mean_sd(values)
    printed = paper.PAPER_TABLE1[row]["invariance_source"]
    print(f"   {row:<18} runs {', '.join(f'{v:.2f}' for v in values)}: any of "
          f"{min(values):.2f}..{max(values):.2f}; printed {printed:.2f}, mean {mean:.2f}")
tables = list(itertools.product(*choices.values()))  # (baseline, +mls, +mls+mli)
mli_wins = sum(t[2] > t[0] for t in tables)
as_printed = sum(t[2] > t[0] > t[1] for t in tables)
gains = [t[2] - t[0] for t in tables]
pair_gains = sorted([m - b for b in choices["baseline"] for m in choices["baseline+mls+mli"]],
                    reverse=True)
printed_rank = 1 + sum(g > printed_gain + 1e-9 for g in pair_gains)
rank_words = {1: "largest", 2: "second-largest", 3: "third-largest"}
print(f"   Of the {len(tables)} tables one run per row can make, + MLS + MLI beats the Baseline in "
      f"{mli_wins}, and the printed order (+ MLS + MLI > Baseline > + MLS) holds in {as_printed}.")
print(f"   The gain of + MLS + MLI over the Baseline ranges from {min(gains):+.2f} to "
      f"{max(gains):+.2f} points depending on the runs picked; printed {printed_gain:+.2f}; "
      f"the means give "
      f"{np.mean(choices['baseline+mls+mli']) - np.mean(choices['baseline']):+.2f}.")
print(f"   Of the {len(pair_gains)} pairs (a Baseline run, a + MLS + MLI run), the printed pair "
      f"has the {rank_words.get(printed_rank, f'{printed_rank}th largest')} "
      f"gain; {sum(g > 0 for g in pair_gains)} of the {len(pair_gains)} pairs show any gain.")
print("   Averaged, as the caption says, the invariance column FALLS from Baseline "
      f"({np.mean(choices['baseline']):.2f}) to + MLS ({np.mean(choices['baseline+mls']):.2f}) "
      f"to + MLS + MLI ({np.mean(choices['baseline+mls+mli']):.2f}).")

import matplotlib  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402

# Colour = the paper's row a configuration was printed as (the colours of those rows in every
# lesson), dark grey for the others; filled: a triplet was computed, hollow: none was.
fig, axes = plots.figure(1, 3, figsize=(16, 5.8))
configs = list(runs)
config_colour = {cfg: plots.model_colour(row_of[cfg]) if cfg in row_of else plots.model_colour("standard")
                 for cfg in configs}
for ax, c in zip(axes, COLS):
    for i, config in enumerate(configs):
        values = np.array(runs[config][c])
        mean, sd = mean_sd(values)
        ax.errorbar(i, mean, yerr=sd, color=plots.REFERENCE_COLOUR, capsize=4, marker="_", ms=14,
                    zorder=1)
        colour = config_colour[config]
        ax.scatter(np.full(3, i) + np.array([-0.12, 0, 0.12]), values, s=24, zorder=2,
                   edgecolor=colour, lw=1.2, facecolor=colour if triplet[config] else "white")
        if config in row_of:
            k = printed_run[row_of[config]] - 1
            ax.scatter(i + [-0.12, 0, 0.12][k], values[k], marker="*", s=220, facecolor="none",
                       edgecolor="black", zorder=3)
    ax.set_xticks(range(len(configs)))
    ax.set_xticklabels([f"{cfg}\n= paper's {row_of[cfg]}" if cfg in row_of else cfg
                        for cfg in configs], rotation=60, ha="right", fontsize=7)
    for label, cfg in zip(ax.get_xticklabels(), configs):
        label.set_color(config_colour[cfg])
    ax.set_title(f"{COL_NAMES[c]} accuracy (%)", fontsize=10)
    ax.set_ylabel("final test accuracy of a run (%, 10,000 images)", fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    if c == "invariance_source":
        low = 70  # nll-ml-invariance (~10%) is far below: say so instead of squashing the rest
        ax.set_ylim(low, 100)
        i = configs.index(ml_inv)
        ax.annotate("%s:\n%.2f ± %.2f\n(below the axis)" % ((ml_inv,) + mean_sd(runs[ml_inv][c])),
                    (i, low), xytext=(i, low + 6), ha="center", fontsize=7,
                    arrowprops=dict(arrowstyle="->"))
fig.suptitle("Lesson 09: the paper's authors' logs, three runs of each of their eight "
             "configurations, and the run behind each row of the paper's Table 1 (accuracy in %)",
             fontsize=10)
key = [Line2D([], [], ls="", marker="o", color=plots.model_colour(row), label=f"printed as the "
              f"paper's {row}") for row in paper.PAPER_TABLE1]
key += [Line2D([], [], ls="", marker="o", color=plots.model_colour("standard"),
               label="not printed in the paper"),
        Line2D([], [], ls="", marker="o", color="black", label="a run that computed a triplet"),
        Line2D([], [], ls="", marker="o", color="black", mfc="white", label="a run that did not"),
        Line2D([], [], ls="", marker="*", ms=14, color="black", mfc="none",
               label="the run the paper printed"),
        Line2D([], [], color=plots.REFERENCE_COLOUR, marker="_", ms=14,
               label="mean ± sample std of the 3 runs")]
plots.legend_beside(axes[-1], handles=key)
plots.save_figure(fig, os.path.join(OUT, "09_runs_behind_table1.png"))

# %% 4. What a mean ± sample std over three runs can and cannot tell
# It CAN tell roughly where runs of a recipe land, and whether a difference is far larger
# than run-to-run scatter. It CANNOT pin down the mean to better than a few standard errors,
# nor the spread itself: from three runs the sample std is a rough guess of the true one.
#  - standard error of the mean: s / sqrt(3); a 95% interval for the mean: mean ± t * s/sqrt(3)
#    with t the 97.5% point of Student's t with 2 degrees of freedom (4.30, not 1.96);
#  - a 95% interval for the true std sigma from s (n runs, normal scatter):
#    s * sqrt((n-1) / chi2_{0.975, n-1}) .. s * sqrt((n-1) / chi2_{0.025, n-1}).
print("\n4. What mean ± sample std over three runs can and cannot tell")
n = 3
t975 = stats.t.ppf(0.975, n - 1)
sigma_lo, sigma_hi = (np.sqrt((n - 1) / stats.chi2.ppf(q, n - 1)) for q in (0.975, 0.025))
print(f"   With n = {n}: the 95% interval of the mean is mean ± {t975:.2f} x s/sqrt(3) = mean ± "
      f"{t975 / np.sqrt(n):.2f} s; the true std lies between {sigma_lo:.2f} s and "
      f"{sigma_hi:.2f} s (95%; both if runs scatter normally, which three runs cannot show).")
for row in paper.PAPER_TABLE1:
    values = choices[row]
    mean, sd = mean_sd(values)
    half = t975 * sd / np.sqrt(n)
    print(f"   {row:<18} invariance {mean:.2f} ± {sd:.2f}: mean somewhere in {mean - half:.2f}.."
          f"{mean + half:.2f}; true std in {sigma_lo * sd:.2f}..{sigma_hi * sd:.2f}")
mls = choices["baseline+mls"]
far = int(np.argmax(np.abs(np.array(mls) - np.mean(mls))))
print(f"   One run can make the spread: + MLS's runs are {', '.join(f'{v:.2f}' for v in mls)}; "
      f"without run {far + 1} its std would be {np.std(np.delete(mls, far), ddof=1):.2f}, not "
      f"{np.std(mls, ddof=1):.2f}. With three runs you cannot tell an outlier from a wide spread.")
# How rough is s from three runs? Draw three runs from a normal with sigma = 1, many times.
sim_rng = np.random.default_rng(0)
s_over_sigma = sim_rng.normal(size=(N_SIM, n)).std(axis=1, ddof=1)
print(f"   Simulated ({N_SIM} experiments of 3 normal runs, true std 1): the sample std is below "
      f"0.5 in {100 * np.mean(s_over_sigma < 0.5):.0f}% of them and above 1.5 in "
      f"{100 * np.mean(s_over_sigma > 1.5):.0f}%; its median is {np.median(s_over_sigma):.2f}. "
      f"So '0.69 vs 3.25' may be a real difference of spreads -- or not.")

# %% 5. A difference of two points against spreads of 0.7 and 3.3: Welch's t-test
# Two configurations, three runs each. Welch's t-test asks: if both had the same mean
# accuracy, and their runs scattered normally (each with its own spread), how surprising
# would a difference of means at least this large be? t = difference / its standard error;
# p = the probability, under that "no difference" assumption, of a |t| at least this large.
#  p is NOT the probability that the configurations are equal, nor that the result is a
#  fluke; a large p does NOT show they are equal -- only that these runs cannot tell.
# scipy.stats.ttest_ind(a, b, equal_var=False) is Welch's test; we also write it out.
print("\n5. A difference of two points against spreads of 0.7 and 3.3")
base_runs = choices["baseline"]
mli_runs = choices["baseline+mls+mli"]
t, df, p = welch(mli_runs, base_runs)
scipy_result = stats.ttest_ind(mli_runs, base_runs, equal_var=False)
assert np.isclose(t, scipy_result.statistic) and np.isclose(p, scipy_result.pvalue)
b_mean, b_sd = mean_sd(base_runs)
m_mean, m_sd = mean_sd(mli_runs)
se = np.sqrt(b_sd ** 2 / n + m_sd ** 2 / n)
print(f"   Printed: {paper.PAPER_TABLE1['baseline']['invariance_source']:.2f} -> "
      f"{paper.PAPER_TABLE1['baseline+mls+mli']['invariance_source']:.2f} ({printed_gain:+.2f}): "
      f"one run against one run, no spread on either side -- no test is possible.")
print(f"   Three runs each: Baseline {b_mean:.2f} ± {b_sd:.2f}, + MLS + MLI {m_mean:.2f} ± "
      f"{m_sd:.2f}; difference {m_mean - b_mean:+.2f}, its standard error "
      f"sqrt({m_sd:.2f}²/3 + {b_sd:.2f}²/3) = {se:.2f}")
print(f"   Welch: t = {t:.2f} on {df:.2f} degrees of freedom, p = {p:.2f} "
      f"(scipy.stats.ttest_ind(..., equal_var=False): t = {scipy_result.statistic:.2f}, "
      f"p = {scipy_result.pvalue:.2f})")
t_crit = stats.t.ppf(0.975, df)
p_printed = 2 * stats.t.sf(printed_gain / se, df)
print(f"   With these spreads, a difference of means must exceed {t_crit:.2f} x {se:.2f} = "
      f"{t_crit * se:.1f} points before p < {ALPHA}. Had the means differed by the printed "
      f"{printed_gain:+.2f}: t = {printed_gain / se:.2f}, p = {p_printed:.2f}.")
perm_p, n_splits = permutation_p(mli_runs, base_runs)
print(f"   A test without the normal assumption: the permutation test over all {n_splits} ways "
      f"to split the six runs 3 + 3 gives p = {perm_p:.2f}; the smallest p it can EVER give "
      f"with 3 + 3 runs is {2 / n_splits:.2f} (the two most extreme splits).")
print("   The same test for other pairs (invariance column):")
print(f"   {'comparison':<58}{'diff':>8}{'t':>8}{'df':>6}{'Welch p':>9}{'perm. p':>9}")
PAIRS = [("nll-ml-sensitivity", "nll-sensitivity", "+ MLS vs Baseline"),
         ("nll-sensitivity-norm-invar", "nll-sensitivity", "+ MLS + MLI vs Baseline (above)"),
         ("nll-sensitivity-norm", "nll-sensitivity", "same gradients, different name"),
         ("nll-sensitivity-norm-invar", "nll-sensitivity-norm", "same gradients, different name"),
         (ml_inv, "nll-sensitivity", "the real invariance triplet vs Baseline")]
for a, b, what in PAIRS:
    ra, rb = runs[a]["invariance_source"], runs[b]["invariance_source"]
    ta, dfa, pa = welch(ra, rb)
    print(f"   {a + ' - ' + b:<58}{np.mean(ra) - np.mean(rb):>+8.2f}{ta:>8.2f}{dfa:>6.1f}"
          f"{pa:>9.2g}{permutation_p(ra, rb)[0]:>9.2f}   {what}")
real_gap = np.mean(runs[ml_inv]["invariance_source"]) - b_mean
print(f"   Three runs per side do make a difference of {real_gap:+.1f} points (the real invariance "
      f"triplet) clear -- though even it cannot take the permutation test below "
      f"{2 / n_splits:.2f}; they cannot make {m_mean - b_mean:+.2f} or {printed_gain:+.2f} clear.")

# %% 6. How few runs make the test weak: a simulation
# Suppose the truth were: Baseline runs scatter with std 0.69 around some mean, + MLS + MLI
# runs with std 3.25 around a mean d points higher (the spreads the logs show -- themselves
# rough, section 4). Run the experiment many times with n runs per side and count how often
# Welch's test gives p < 0.05: its *power* to see a true difference d. At d = 0 the count is
# the false-alarm rate, which should be about 5%.
print("\n6. How few runs make the test weak (simulated; spreads 0.69 and 3.25 taken as the truth)")
SD_A, SD_B = b_sd, m_sd
DIFFS = np.arange(0.0, 12.01, 0.5)
N_RUNS = [3, 5, 10, 20]
power_rng = np.random.default_rng(1)
power = {}
for k in N_RUNS:
    power[k] = []
    for d in DIFFS:
        a = power_rng.normal(0.0, SD_A, size=(N_SIM, k))
        b = power_rng.normal(d, SD_B, size=(N_SIM, k))
        power[k].append(np.mean(stats.ttest_ind(b, a, axis=1, equal_var=False).pvalue < ALPHA))
    power[k] = np.array(power[k])
i2 = int(np.flatnonzero(DIFFS == 2.0)[0])
print(f"   {'runs per side':>14}{'false alarms (d=0)':>20}{'power at d=2':>14}"
      f"{'d for 80% power':>17}")
for k in N_RUNS:
    reach = DIFFS[power[k] >= 0.8]
    print(f"   {k:>14}{100 * power[k][0]:>19.1f}%{100 * power[k][i2]:>13.0f}%"
          f"{(f'{reach[0]:.1f} points' if len(reach) else f'> {DIFFS[-1]:.0f} points'):>17}")
print(f"   With three runs per side a true 2-point gain is seen (p < {ALPHA}) in "
      f"{100 * power[3][i2]:.0f}% of experiments; a p > {ALPHA} from three runs is what you "
      f"would expect whether or not the gain is real.")

fig, axes = plots.figure(1, 2, figsize=(14, 4.5))
ax = axes[0]
ax.hist(s_over_sigma, bins=60, color="tab:cyan", alpha=0.8)
ax.axvline(1.0, color=plots.REFERENCE_COLOUR, ls="--", label="the true std")
ax.set_xlabel("sample std of 3 runs / true std")
ax.set_ylabel(f"experiments (of {N_SIM})")
ax.set_title("(a) the spread from three runs is a rough guess", fontsize=10)
ax.legend(fontsize=8)
ax = axes[1]
# The number of runs on one colour scale (viridis: more runs, from purple to yellow-green) --
# no model's colour, since no model is drawn here. Guides are grey; the printed gain, the one
# number here taken from the paper, is black.
run_colours = matplotlib.colormaps["viridis"](np.linspace(0.0, 0.85, len(N_RUNS)))
for k, colour in zip(N_RUNS, run_colours):
    ax.plot(DIFFS, 100 * power[k], marker=".", color=colour, label=f"{k} runs per side")
ax.axhline(100 * ALPHA, color=plots.REFERENCE_COLOUR, ls=":", lw=0.8,
           label=f"{100 * ALPHA:.0f}%: false alarms")
ax.axhline(80, color=plots.REFERENCE_COLOUR, ls="--", lw=0.8, label="80%: the usual target")
ax.axvline(abs(printed_gain), color="black", ls="-.", lw=1.0,
           label=f"the printed gain, {printed_gain:.2f}")
ax.set_xlabel("true difference of means (points)")
ax.set_ylabel(f"experiments with Welch p < {ALPHA} (%)")
ax.set_title(f"(b) power of Welch's test, run spreads {SD_A:.2f} and {SD_B:.2f}", fontsize=10)
plots.legend_beside(ax)
ax.grid(alpha=0.3)
fig.suptitle(f"Lesson 09: three runs are few (simulated normal runs, {N_SIM} experiments per "
             f"point, seeded)", fontsize=10)
plots.save_figure(fig, os.path.join(OUT, "09_three_runs_are_few.png"))


# %% 7. tinyadv's own table in the same light
# python -m tinyadv.reproduce writes results/<preset>/table1.json: every Table 1 row, every
# column, mean ± std over seeds and each seed's number (seeds 0, 1, 2; --quick: one seed).
# The same questions: how wide is the spread, which differences outrun it, and what would
# a table of single seeds have printed? One more source of noise shows here, because the
# number of test images is known: every seed is scored on the same test images, so the seed
# spread leaves out how much the score would move on another sample of images -- about
# sqrt(p (1 - p) / N) for an accuracy p measured on N images.
def load_json(path, required):
    """A results file, or None with a message saying why it cannot be used."""
    try:
        with open(path) as f:
            result = json.load(f)
    except (OSError, ValueError) as err:
        print(f"   cannot read {path}: {err}")
        return None
    missing = [key for key in required if key not in result]
    if missing:
        print(f"   {path}: no {missing} key(s); written by another version of tinyadv? "
              f"Make it again (command below).")
        return None
    return result


def pooled_human(row):
    """Per seed: agreement (%) with the human labels of all four Tramer et al. sets together."""
    human = [c for c in row if c.startswith("human_")]
    totals = np.array([row[c]["total"] for c in human], dtype=np.float64)  # (sets,)
    per_seed = np.array([row[c]["per_seed"] for c in human], dtype=np.float64)  # (sets, seeds)
    return list((per_seed * totals[:, None]).sum(axis=0) / totals.sum()), int(totals.sum())


def compare(a, b):
    """'diff (p=...)', or 'diff (one seed: no test)' -- honest about what the seeds allow."""
    diff = np.mean(a) - np.mean(b)
    if min(len(a), len(b)) < 2:
        return f"{diff:+.2f} (one seed: no test)"
    if max(np.std(a, ddof=1), np.std(b, ddof=1)) == 0:
        return f"{diff:+.2f} (no spread)"
    return f"{diff:+.2f} (p={stats.ttest_ind(a, b, equal_var=False).pvalue:.2g})"


print(f"\n7. tinyadv's own table (looking in {RESULTS})")
PRESET_ORDER = ["default", "paper-4d"]  # reproduce's presets first, then any other folder
table_files = (glob.glob(os.path.join(RESULTS, "table1.json"))
               + sorted(glob.glob(os.path.join(RESULTS, "*", "table1.json")), key=lambda path: (
                   PRESET_ORDER.index(os.path.basename(os.path.dirname(path)))
                   if os.path.basename(os.path.dirname(path)) in PRESET_ORDER else 2, path)))
tables_read = 0
for path in table_files:
    result = load_json(path, ["table", "preset"])
    if result is None:
        continue
    tables_read += 1
    table = result["table"]
    models = list(table)
    n_seeds = len(table[models[0]]["clean"]["per_seed"])
    seeds = result.get("config", {}).get("seeds", list(range(n_seeds)))
    show = ["clean", "fgsm", "pgd", "invariance_source"]
    human = {m: pooled_human({c: v for c, v in table[m].items() if c.startswith("human_")})
             for m in models}
    print(f"   {path}: preset '{result['preset']}', seeds {seeds}")
    print(f"   {'row':<26}" + "".join(f"{c:>20}" for c in show) + f"{'human (pooled)':>20}")
    for m in models:
        cells = [table[m][c]["per_seed"] for c in show] + [human[m][0]]
        text = ["%.2f ± %.2f" % mean_sd(v) if n_seeds > 1 else "%.2f" % v[0] for v in cells]
        print(f"   {m:<26}" + "".join(f"{t:>20}" for t in text))
    sizes = {c: table[models[0]][c]["total"] for c in ("clean", "invariance_source")}
    sizes["human (pooled)"] = human[models[0]][1]
    noise = {c: 100 * np.sqrt(0.25 / size) for c, size in sizes.items()}  # at most, p = 50%
    print("   test images: " + ", ".join(f"{c} {size}" for c, size in sizes.items())
          + "; sampling error of one accuracy on them (at most, p = 50%): "
          + ", ".join(f"{c} ±{noise[c]:.1f}" for c in sizes) + " points")
    if n_seeds < 2:
        print("   ONE seed: no spread, no test. Every difference between rows below is one draw "
              "against another -- what the paper's table is. Run three seeds (the default) "
              "before reading anything into it.")
    print("   each row minus the baseline (Welch p over seeds where there are two or more):")
    for m in models[1:]:
        seeds_of = {c: (table[m][c]["per_seed"], table["baseline"][c]["per_seed"])
                    for c in ("invariance_source", "pgd")}
        print(f"     {m:<26} invariance {compare(*seeds_of['invariance_source'])}; "
              f"PGD {compare(*seeds_of['pgd'])}; human {compare(human[m][0], human['baseline'][0])}")
    if n_seeds > 1:
        per_row = {m: table[m]["invariance_source"]["per_seed"] for m in models}
        widest = max(models, key=lambda m: np.ptp(per_row[m]))
        picks = list(itertools.product(*per_row.values()))
        first_place = {m: sum(int(np.argmax(pick)) == i for pick in picks)
                       for i, m in enumerate(models)}
        print(f"   one seed per row, as the paper printed: the invariance column's best row could "
              f"be " + ", ".join(f"{m} ({k} of {len(picks)} tables)"
                                 for m, k in first_place.items() if k)
              + f"; widest row: {widest}, seeds {np.min(per_row[widest]):.2f}.."
                f"{np.max(per_row[widest]):.2f}.")
        authors_spread = ", ".join(f"{s:.2f}" for s in (b_sd, mean_sd(mls)[1], m_sd))
        ours = ", ".join(f"{np.std(per_row[m], ddof=1):.2f}" for m in models)
        print(f"   invariance spread over seeds: tinyadv {ours} (rows in order); the authors' "
              f"logs {authors_spread} (Baseline, + MLS, + MLS + MLI).")
if tables_read == 0:
    print(f"   No tinyadv table under {RESULTS} (no <preset>/table1.json). Make one from the "
          f"repository root with\n"
          f"       python -m tinyadv.reproduce                    # results/default/: 3 seeds, ~3-4 min on 2 idle cores\n"
          f"       python -m tinyadv.reproduce --preset paper-4d  # results/paper-4d/\n"
          f"       python -m tinyadv.reproduce --quick            # one seed, < 1 min: no spread, no test\n"
          f"   then run this lesson again (or point it at another folder: --results DIR).")


# %% 8. The sweep: what moving the paper's metric costs in agreement with human labels
# The paper's invariance metric counts agreement with the *source* label of images whose
# true label was changed (Definition 2); Tramer et al.'s images carry the labels *people*
# gave them. python -m tinyadv.sweep trains many settings of the invariance term and stores,
# for each, the change of both against the baseline of the same embedding, with the seed
# spread and Welch's p (sweep.json: settings -> name -> change -> column -> {diff, spread,
# within_spread, welch_p}). If a setting moves the paper's metric, what does it do to the
# agreement with people?
print(f"\n8. The sweep: the paper's metric against agreement with human labels "
      f"(looking in {RESULTS})")
sweep_files = sorted(glob.glob(os.path.join(RESULTS, "sweep.json"))
                     + glob.glob(os.path.join(RESULTS, "*", "sweep.json")))
sweeps_read = 0
for path in sweep_files:
    result = load_json(path, ["settings"])
    if result is None:
        continue
    sweeps_read += 1
    settings = {name: s for name, s in result["settings"].items() if "change" in s}
    seeds = result.get("config", {}).get("seeds", "?")
    one_seed = all(s["change"]["invariance_source"]["welch_p"] is None for s in settings.values())
    print(f"   {path}: {len(settings)} settings against their baselines, seeds {seeds}")
    shown = {"invariance_source": "Δ paper metric", "human_pooled": "Δ human (pooled)",
             "pgd": "Δ PGD", "clean": "Δ clean"}
    shown = {c: label for c, label in shown.items()
             if all(c in s["change"] for s in settings.values())}
    print(f"   {'setting':<46}" + "".join(f"{label:>20}" for label in shown.values()))

    def cell(ch):
        p = "" if ch["welch_p"] is None else f" p={ch['welch_p']:.2g}"
        return f"{ch['diff']:+.2f}{p}"

    by_paper_metric = sorted(settings.items(),
                             key=lambda kv: -kv[1]["change"]["invariance_source"]["diff"])
    for name, s in by_paper_metric:
        print(f"   {name:<46}" + "".join(f"{cell(s['change'][c]):>20}" for c in shown))
    delta = {c: np.array([s["change"][c]["diff"] for s in settings.values()]) for c in shown}
    d_paper, d_human = delta["invariance_source"], delta["human_pooled"]
    up = d_paper > 0
    if up.any():
        print(f"   {up.sum()} of {len(settings)} settings raise the paper's metric (by "
              f"{d_paper[up].min():+.2f} to {d_paper[up].max():+.2f}); with it, agreement with "
              f"people changes by {d_human[up].min():+.2f} to {d_human[up].max():+.2f} points"
              + (f", PGD accuracy by {delta['pgd'][up].min():+.2f} to {delta['pgd'][up].max():+.2f}"
                 if "pgd" in delta else "") + ".")
    else:
        print("   No setting raises the paper's metric above its baseline.")
    if len(settings) >= 3 and np.ptp(d_paper) > 0:
        slope = np.polyfit(d_paper, d_human, 1)[0]
        r = np.corrcoef(d_paper, d_human)[0, 1]
        print(f"   Across the settings, a point of the paper's metric goes with {slope:+.2f} "
              f"points of human agreement (least-squares slope; correlation {r:+.2f}; settings "
              f"share baselines, so they are not independent points). Δ clean and Δ PGD say "
              f"whether a setting changed invariance or just made the model worse (or better) "
              f"at everything.")
    run_setting = {run: r.get("setting", run) for run, r in result.get("runs", {}).items()}
    warned = sorted({run_setting.get(run, run) for run in result.get("overfitting_warnings", {})})
    if warned:
        print(f"   sweep.json also warns of catastrophic overfitting (lesson 08) in some runs of "
              f"{len(warned)} setting(s): {'; '.join(warned)}")
    if one_seed:
        print("   ONE seed: no spread, no p. Each change is one run against one run.")
    else:
        tests = len(shown) * len(settings)
        small = sum(s["change"][c]["welch_p"] is not None and s["change"][c]["welch_p"] < ALPHA
                    for s in settings.values() for c in shown)
        within = sum(bool(s["change"][c]["within_spread"])
                     for s in settings.values() for c in shown)
        print(f"   {tests} tests in this table: {small} with p < {ALPHA}, {within} changes within "
              f"the seed spread. With no effect anywhere, about {ALPHA * tests:.1f} of {tests} "
              f"would fall below {ALPHA} by chance alone.")
        # The library's p is the test of section 5: check one by hand.
        name, s = next(iter(settings.items()))
        base = result["settings"][s["baseline"]]["columns"]["invariance_source"]["per_seed"]
        mine = welch(s["columns"]["invariance_source"]["per_seed"], base)[2]
        print(f"   (check: '{name}', Welch p by hand {mine:.4g}, sweep.json "
              f"{s['change']['invariance_source']['welch_p']:.4g})")
    n_human = sum(len(data.load_tramer(name)[1]) for name in data.TRAMER_SETS)
    print(f"   Human agreement is measured on {n_human} images: one image is "
          f"{100 / n_human:.2f} points, and the sampling error of such an accuracy is up to "
          f"±{100 * np.sqrt(0.25 / n_human):.1f} points: how far it could move on another "
          f"{n_human} such images, which no seed spread includes (every seed sees these).")
    print(f"   The figure: {os.path.join(os.path.dirname(path), 'sweep.png')}, last panel.")
if sweeps_read == 0:
    print(f"   No sweep under {RESULTS} (no sweep/sweep.json). Make it from the repository root "
          f"with\n"
          f"       python -m tinyadv.sweep           # results/sweep/: 18 settings x 3 seeds, ~13 min on 2 idle cores\n"
          f"       python -m tinyadv.sweep --quick   # 6 settings, one seed, < 1 min: no spread, no p\n"
          f"   then run this lesson again (or --results DIR).")

print(f"\nfigures written to {OUT}")
