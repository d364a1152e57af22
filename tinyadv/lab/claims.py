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
import os
import re
import sys

import numpy as np

from . import evidence, logs, paper, recipes, stats, tables

__all__ = ["CLAIMS", "BLOCKS", "claim_rows", "generate", "check", "write", "prose_problems",
           "main", "RESULTS_MD", "README"]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RESULTS_MD = os.path.join(ROOT, "data", "results.md")
README = os.path.join(ROOT, "README.md")
BEGIN = "<!-- begin generated: {} (python -m tinyadv.lab.claims --write) -->"
END = "<!-- end generated: {} -->"


# ---- the claims table -------------------------------------------------------------------

def _compare(ev_name, family, a, b, column):
    """A claim resting on one comparison of a family (its Holm-corrected p in that family)."""
    def compute():
        ev = recipes.load(ev_name)
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
    per_log = logs.class_share_evidence(recipes.raw_logs())
    runs = [v for k, v in sorted(per_log["per_log"].items()) if k.startswith("cdfe2d1/")]
    control = per_log["control"]
    return ("3 runs x 200 epochs", ", ".join(f"{v['share_epochs']}" for v in runs)
            + f" of 200 epochs; other logs {control['shares']} of {control['epochs']}")


def _both_triplets():
    log = next(l for l in recipes.raw_logs() if l["commit"] == "4f4bced")
    scores = [e["invariance_source"] for e in log["epochs"] if e["invariance_source"]]
    first = scores.index("9.58") + 1
    return "1 run, 31 epochs", (f"{log['config_named']}: 9.58 (digit 6's share) at "
                                f"{scores.count('9.58')} of epochs {first}-{len(scores)}")


def _scatter_claim(preset):
    def compute():
        for name, b_row, a, b, w in tables.scatter_comparisons():
            if name == preset:
                return {"n": f"{len(a)} + {len(b)} seeds",
                        "effect": f"{np.mean(a):.3f} vs {np.mean(b):.3f} ({b_row}): "
                                  f"{w['diff']:+.3f}".replace("-", "−"),
                        "ci": f"[{w['ci'][0]:+.3f}, {w['ci'][1]:+.3f}]".replace("-", "−"),
                        "p": stats.format_p(w["p_family"]),
                        "test": f"Welch over seeds, `figure 1` (Holm, {len(tables.SCATTER_PRESETS)})",
                        "images": "--", "beyond": "**yes**" if stats.beyond_noise(w) else "no"}
        return None
    return compute


def _sweep_fact():
    ev = recipes.load("sweep")
    if ev is None:
        return None
    results = evidence.evaluate(ev, "sweep")
    base_of = {c["a"]: c["b"] for c in results}
    return f"{len(base_of)} settings x {len(ev['seeds'])} seeds", tables.sweep_summary(
        ev, results, base_of).split(". Over all")[0]


def _cnn_seeds():
    """The CNN's ten seeds one by one: how many + MLS + MLI seeds score above every Baseline
    seed on the paper's metric, and which lose clean or PGD-10 accuracy."""
    ev = recipes.load("cnn10")
    if ev is None or "pgd" not in ev["values"].get("baseline", {}):
        return None
    per = {(row, c): evidence.per_seed_percent(ev, row, c)
           for row in ("baseline", "baseline+mls+mli") for c in ("clean", "fgsm", "pgd",
                                                                 "invariance_source")}
    inv, base_inv = per["baseline+mls+mli", "invariance_source"], per["baseline",
                                                                      "invariance_source"]
    above = sum(v > max(base_inv) for v in inv)
    base_pgd = per["baseline", "pgd"]
    fell = [(seed, clean, fgsm, pgd) for seed, clean, fgsm, pgd in zip(
        ev["seeds"], *(per["baseline+mls+mli", c] for c in ("clean", "fgsm", "pgd")))
        if pgd < min(base_pgd) or clean < min(per["baseline", "clean"])]
    text = (f"{above} of {len(inv)} + MLS + MLI seeds above every Baseline seed on the paper's "
            f"metric (Baseline {min(base_inv):.2f}-{max(base_inv):.2f}); below every Baseline "
            f"seed on clean or PGD-10 accuracy (Baseline PGD-10 {min(base_pgd):.2f}-"
            f"{max(base_pgd):.2f}): " + ", ".join(
                f"seed {seed} (clean {clean:.2f}, FGSM {fgsm:.2f}, PGD-10 {pgd:.2f})"
                for seed, clean, fgsm, pgd in fell))
    return "10 + 10 seeds", text


LOG_ROWS = "logs: the paper's rows"
LOG_OTHERS = "logs: the configs the paper does not print"
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
     recipes.RECIPES["default"]["command"], "225 s (quiet, 2 cores)"),
    ("T2", "`default`: + MLS + MLI against the Baseline, agreement with people (350 images)",
     _compare("default", "invariance", "baseline+mls+mli", "baseline", "human"),
     recipes.RECIPES["default"]["command"], "225 s (quiet, 2 cores)"),
    ("T3", "`default`: + MLS against the Baseline, PGD-10",
     _compare("default", "accuracy", "baseline+mls", "baseline", "pgd"),
     recipes.RECIPES["default"]["command"], "225 s (quiet, 2 cores)"),
    ("T4", "`default`: + MLS against the Baseline, the worst of three PGD-50 starts (5,000 images)",
     _compare("pgd-check", "pgd check", "baseline+mls", "baseline", "pgd50x3"),
     recipes.OWN_EVIDENCE["pgd-check"], "173 s (2 cores, beside another job)"),
    ("T5", "`paper-4d`: + MLS + MLI against the Baseline, the paper's metric",
     _compare("paper-4d", "invariance", "baseline+mls+mli", "baseline", "invariance_source"),
     recipes.RECIPES["paper-4d"]["command"], "208 s (quiet, 2 cores)"),
    ("T6", "`paper-4d`: + MLS + MLI against the Baseline, the paper's metric on the paper's "
           "own attack", _compare("paper-4d", "invariance", "baseline+mls+mli", "baseline",
                                  "invariance_authors"),
     recipes.RECIPES["paper-4d"]["command"], "208 s (quiet, 2 cores)"),
    ("T7", "FGSM at ε = 0.0031 (`paper-4d`): + MLS + MLI against the Baseline, the paper's metric",
     _compare("paper-4d-eps0031", "invariance", "baseline+mls+mli", "baseline",
              "invariance_source"), recipes.RECIPES["paper-4d-eps0031"]["command"],
     "about 6 min (quiet, 2 cores; 175 s for 3 seeds)"),
    ("T8", "FGSM at ε = 0.0031 (`paper-4d`): + MLS + MLI against the Baseline, agreement with "
           "people", _compare("paper-4d-eps0031", "invariance", "baseline+mls+mli", "baseline",
                              "human"), recipes.RECIPES["paper-4d-eps0031"]["command"],
     "about 6 min (quiet, 2 cores)"),
    ("T9", "`paper-4d`, trained on the paper's attack (`invariance_generator=authors`): + MLS + "
           "MLI against the Baseline, on that attack's test images",
     _compare("paper-4d-authorsgen", "invariance", "baseline+mls+mli", "baseline",
              "invariance_authors"), recipes.RECIPES["paper-4d-authorsgen"]["command"],
     "164 s after `paper-4d` (quiet, 2 cores)"),
    ("C1", "The authors' CNN (`paper-4d --set arch=cnn`, 10 seeds): + MLS + MLI against the "
           "Baseline, the paper's metric",
     _compare("cnn10", "cnn: invariance", "baseline+mls+mli", "baseline", "invariance_source"),
     recipes.RECIPES["cnn10"]["command"], "about 100 min (2 workers; estimated from the runs' own times)"),
    ("C2", "The authors' CNN, 10 seeds: + MLS + MLI against the Baseline, agreement with people "
           "(350 images)", _compare("cnn10", "cnn: invariance", "baseline+mls+mli", "baseline",
                                    "human"), recipes.RECIPES["cnn10"]["command"], "about 100 min (estimated)"),
    ("C3", "The authors' CNN, 10 seeds: the same, on the 193 images whose label people kept",
     _compare("cnn10", "cnn: invariance", "baseline+mls+mli", "baseline", "human_kept"),
     recipes.RECIPES["cnn10"]["command"], "about 100 min (estimated)"),
    ("C4", "The authors' CNN, 10 seeds: the same, on the 157 images whose label people changed",
     _compare("cnn10", "cnn: invariance", "baseline+mls+mli", "baseline", "human_changed"),
     recipes.RECIPES["cnn10"]["command"], "about 100 min (estimated)"),
    ("C5", "The authors' CNN, 10 seeds: + MLS + MLI against the Baseline, PGD-10 (the runs' "
           "records)", _compare("cnn10", "cnn: accuracy", "baseline+mls+mli", "baseline", "pgd"),
     recipes.RECIPES["cnn10"]["command"], "about 100 min (estimated)"),
    ("C6", "The authors' CNN, 10 seeds, one by one: the paper's metric, and the seeds that lose "
           "clean or PGD-10 accuracy", _fact(_cnn_seeds), recipes.RECIPES["cnn10"]["command"],
     "about 100 min (estimated)"),
    ("A1", "Their choices, one at a time (MLP): nll-ml-invariance with the paper's triplet "
           "against their code's, invariance, their scoring",
     _compare("choices", "choices", "triplet=paper: nll-ml-invariance",
              recipes.THEIR_CODE + "nll-ml-invariance", "invariance_authors_raw"),
     recipes.RECIPES["choices"]["command"], "about 2 min a run (quiet, one core)"),
    ("A2", "Their choices, one at a time (MLP): nll-ml-invariance fed its invariance images "
           "as pixels against their code's, invariance, their scoring",
     _compare("choices", "choices", "invariance_input=pixels: nll-ml-invariance",
              recipes.THEIR_CODE + "nll-ml-invariance", "invariance_authors_raw"),
     recipes.RECIPES["choices"]["command"], "about 2 min a run (quiet, one core)"),
]
CLAIMS += [
    ("S1", "The sweep (exploratory): settings that raise the paper's metric beyond the noise, "
           "and agreement with people in each", _fact(_sweep_fact), recipes.OWN_EVIDENCE["sweep"],
     "789 s (quiet, 2 cores)"),
    ("T10", "`default` without the norm term (λ3 = 0): + MLS against the Baseline, PGD-10",
     _compare("sweep-norm", "sweep", "mls embed_dim=0 margin=0.05 lambda_norm=0",
              "baseline embed_dim=0", "pgd"), recipes.OWN_EVIDENCE["sweep-norm"],
     "218 s (quiet, 2 cores)"),
    ("T11", "`paper-4d`: cross-entropy on clean images and their invariance examples (source "
            "label) against the Baseline, the paper's metric",
     _compare("ce-invariance", "training on the attack", recipes.CE_INV + "baseline", "baseline",
              "invariance_source"), recipes.RECIPES["ce-invariance"]["command"],
     "93 s (2 cores, beside another job)"),
    ("T12", "`paper-4d`: cross-entropy on clean images and their invariance examples (source "
            "label) against the Baseline, agreement with people (350 images)",
     _compare("ce-invariance", "training on the attack", recipes.CE_INV + "baseline", "baseline",
              "human"), recipes.RECIPES["ce-invariance"]["command"], "93 s (2 cores, beside another job)"),
    ("F1", "Figure 1, `default`: the scatter ratio with the invariance term against without",
     _scatter_claim("default"), recipes.RECIPES["default"]["command"], "225 s (quiet, 2 cores)"),
    ("F2", "Figure 1, `paper-4d`: the same", _scatter_claim("paper-4d"),
     recipes.RECIPES["paper-4d"]["command"], "208 s (quiet, 2 cores)"),
    ("F3", "Figure 1, the authors' CNN (10 seeds): with the invariance term against the Baseline "
           "(no + MLS row)", _scatter_claim("cnn10"), recipes.RECIPES["cnn10"]["command"],
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


# ---- the blocks of results.md ----------------------------------------------------------

BLOCKS = {"claims": block_claims, **tables.TABLES}


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
                    ci, _, p = row["images"].rpartition(", ")  # "[lo, hi], p = x"
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
            if name not in recipes.RECIPES:
                parser.error(f"collect: expected one of {sorted(recipes.RECIPES)}, got {name!r}")
            print(f"wrote {recipes.collect(name, args.results)}")
        return 0
    if args.what:
        parser.error(f"expected 'collect NAME ...' or no words, got {args.what}")
    if args.figure:
        tables.matched_epochs_figure(args.figure)
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





if __name__ == "__main__":
    sys.exit(main())
