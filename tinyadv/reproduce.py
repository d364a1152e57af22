"""python -m tinyadv.reproduce -- the paper's Table 1 and Figure 1 in one command.

Trains every Table 1 row (train.MODELS) for each seed, evaluates it under every attack and
protocol (evaluate.py), and writes into --out (default results/):

  table1.md, table1.json   one row per model: mean, std and per-seed value of every column,
                           next to the paper's own Table 1
  figure1.png              PCA of penultimate embeddings of FGSM test images, without (a) and
                           with (b) the invariance regulariser, with a tightness number
  config.json              everything that determines the numbers
  runs/                    one result (.json) and one set of weights (.npz) per (model, seed),
                           saved as each finishes: a rerun with the same config reuses them, so
                           an interrupted reproduction resumes and loses nothing.

Columns: clean, fgsm and pgd accuracy; invariance_source (the paper's invariance column:
agreement with the *source* label of label-flipped test images -- by the paper's Definition 2
that is the attack's failure rate, not robustness); invariance_flipped (agreement with the
flipped label the generator assumes is the oracle's); human_* (agreement with the labels
*humans* gave the invariance examples of Tramer et al. 2020 -- the arbiter).
"""
import argparse
import json
import multiprocessing
import os
import signal
import sys
import time

import numpy as np

from . import data, evaluate, invariance, mlp, plots
from .fileio import save_npz_atomic, write_text_atomic
from .attacks import fgsm
from .train import MODELS, TrainConfig, model_config, train

# The paper's Table 1 (Ovalle et al. 2022, arXiv 2211.02468): clean / FGSM / invariance, %.
PAPER_TABLE1 = {
    "baseline": {"clean": 99.02, "fgsm": 98.95, "invariance_source": 85.67},
    "baseline+mls": {"clean": 99.38, "fgsm": 99.17, "invariance_source": 82.49},
    "baseline+mls+mli": {"clean": 99.09, "fgsm": 98.98, "invariance_source": 87.80},
}
COLUMNS = ["clean", "fgsm", "pgd", "invariance_source", "invariance_flipped",
           "human_linf_eps03", "human_linf_eps04", "human_linf_manual_eps04", "human_l0"]
SHORT = {"clean": "clean", "fgsm": "FGSM", "pgd": "PGD", "invariance_source": "inv(src)",
         "invariance_flipped": "inv(flip)", "human_linf_eps03": "hum.03",
         "human_linf_eps04": "hum.04", "human_linf_manual_eps04": "hum.man",
         "human_l0": "hum.l0"}
QUICK = dict(train_size=10000, test_size=2000, epochs=3)  # --quick: every row and column, fast
FULL_TRAIN, FULL_TEST = 60000, 10000
PGD_STEPS = 10


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m tinyadv.reproduce",
        description="Reproduce Table 1 and Figure 1 of Ovalle et al. (arXiv 2211.02468).")
    parser.add_argument("--quick", action="store_true",
                        help=f"small and fast: {QUICK['train_size']} training and "
                             f"{QUICK['test_size']} test images, {QUICK['epochs']} epochs, one seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds to average over (default 0 1 2; --quick: 0)")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epochs per model (default {TrainConfig().epochs}; "
                             f"--quick: {QUICK['epochs']})")
    parser.add_argument("--train-size", type=int, default=None,
                        help="use the first N training images (default all 60000)")
    parser.add_argument("--test-size", type=int, default=None,
                        help="evaluate on the first N test images (default all 10000)")
    parser.add_argument("--out", default="results", help="output folder (default results/)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes, each training one run at a time with one "
                             "BLAS thread (default: 2, or 1 on a one-core machine)")
    args = parser.parse_args(argv)  # unknown flags: usage + exit 2 (argparse)
    for name, lo, hi in (("epochs", 1, None), ("jobs", 1, 64), ("train_size", 200, FULL_TRAIN),
                         ("test_size", 10, FULL_TEST)):
        value = getattr(args, name)
        if value is not None and (value < lo or (hi is not None and value > hi)):
            parser.error(f"--{name.replace('_', '-')}: expected an integer in "
                         f"[{lo}, {hi if hi is not None else 'inf'}], got {value}")
    if args.seeds is not None and min(args.seeds) < 0:
        parser.error(f"--seeds: expected integers >= 0, got {args.seeds}")
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds: each seed once, got {args.seeds}")
    return args


def load_params(path):
    with np.load(path, allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def prepare_data(train_size, test_size, inv_eps, inv_shifts, log):
    """Training/test images, their invariance examples and flipped labels.

    The full sets use the cached invariance examples (built once, ~1 minute); a subset gets
    its own, searched against the training subset only, which takes seconds.
    """
    X_train, y_train = data.load_mnist("train")
    X_test, y_test = data.load_mnist("test")
    if train_size == FULL_TRAIN and test_size == FULL_TEST:
        sets = invariance.invariance_sets(inv_eps, shifts=inv_shifts, log=log,
                                          mnist=(X_train, y_train, X_test, y_test))
        inv_train, inv_test = sets["train"], sets["test"]
    else:
        X_train, y_train = X_train[:train_size].copy(), y_train[:train_size].copy()
        X_test, y_test = X_test[:test_size].copy(), y_test[:test_size].copy()
        t0 = time.perf_counter()
        inv_train = invariance.label_flip(X_train, y_train, X_train, y_train, inv_eps,
                                          shifts=inv_shifts, exclude_self=True)
        inv_test = invariance.label_flip(X_test, y_test, X_train, y_train, inv_eps,
                                         shifts=inv_shifts)
        log(f"invariance examples for {train_size} training and {test_size} test images "
            f"built in {time.perf_counter() - t0:.1f}s")
    return (X_train, y_train, inv_train[0], inv_train[1],
            X_test, y_test, inv_test[0], inv_test[1])


def prepare_parent(train_size, test_size, inv_shifts, log):
    """What the parent process needs: the test images for Figure 1, and -- before any worker
    starts -- the cached neighbour search of the full sets, so two workers never both build
    it. The workers load their own data (prepare_data); the parent holds no training set."""
    if train_size == FULL_TRAIN and test_size == FULL_TEST:
        invariance.invariance_neighbours(inv_shifts, log=log)
    X_test, y_test = data.load_mnist("test")
    return X_test[:test_size].copy(), y_test[:test_size].copy()


def run_stem(runs_dir, model, seed):
    return os.path.join(runs_dir, f"{model}__seed{seed}")


def run_key(model, seed, base, eval_key):
    """Everything that determines a run's numbers; a saved run is reused only if it matches."""
    return {"config": model_config(model, base).replace(seed=seed).to_dict(), "eval": eval_key,
            "blas_threads": 1}


def load_saved_run(stem, key):
    """The saved record of a run if it exists, is readable and has the same key; else None."""
    try:
        with open(stem + ".json") as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return None  # missing or unreadable: train again
    if saved.get("key") != key or not os.path.exists(stem + ".npz"):
        return None
    return saved


def run_one(model, seed, base, datasets, runs_dir, eval_key, log):
    """Train and evaluate one (model, seed); save weights and results as soon as it is done."""
    X_train, y_train, xi_train, yf_train, X_test, y_test, xi_test, yf_test = datasets
    config = model_config(model, base).replace(seed=seed)
    stem = run_stem(runs_dir, model, seed)
    log(f"training: {MODELS[model] or 'FGSM adversarial training only'}")
    t0 = time.perf_counter()
    params, history = train(config, X_train, y_train, xi_train, yf_train, log=log)
    train_s = time.perf_counter() - t0
    results = evaluate.evaluate_model(params, X_test, y_test, xi_test, yf_test,
                                      fgsm_eps=config.fgsm_eps, pgd_steps=PGD_STEPS,
                                      rng=np.random.default_rng(seed))
    record = {"model": model, "seed": seed, "key": run_key(model, seed, base, eval_key),
              "results": results, "history": history, "train_seconds": train_s,
              "eval_seconds": time.perf_counter() - t0 - train_s}
    log("done: " + "  ".join(f"{SHORT[c]} {results[c]['percent']:.2f}" for c in COLUMNS)
        + f"  ({train_s:.0f}s train)")
    save_npz_atomic(stem + ".npz", params)  # weights first: a .json always has its .npz
    write_text_atomic(stem + ".json", json.dumps(record, indent=1))
    return record


# Each worker process trains runs one after another with a single BLAS thread. On two cores,
# two single-threaded runs side by side do more work per second than one run whose small
# matrix products are split over both cores -- and every run's arithmetic is the same
# whatever the number of workers, so the table does not depend on --jobs.
_WORKER = {}
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


def _init_worker(train_size, test_size, inv_eps, inv_shifts):
    # Ctrl-C is the parent's to handle: it stops the workers itself (see run_all).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _WORKER["datasets"] = prepare_data(train_size, test_size, inv_eps, inv_shifts,
                                       log=lambda msg: None)


def _run_in_worker(task):
    model, seed, base, runs_dir, eval_key = task
    prefix = f"[{model} seed {seed}]"
    log = lambda msg: print(f"{prefix} {msg.strip()}", flush=True)  # noqa: E731
    return run_one(model, seed, base, _WORKER["datasets"], runs_dir, eval_key, log)


def run_all(pending, jobs, base, runs_dir, eval_key, sizes):
    """Run the pending (model, seed) pairs in ``jobs`` single-BLAS-thread worker processes.

    Yields each finished record as it arrives. BLAS reads its thread count when a worker
    imports numpy, so the variables are set while the workers start (spawned fresh, not
    forked) and restored afterwards. On Ctrl-C (or any error) the workers are stopped at
    once; what they had saved stays, what they were writing is only ever a temporary file.
    """
    saved_env = {k: os.environ.get(k) for k in BLAS_THREAD_VARIABLES}
    os.environ.update({k: "1" for k in BLAS_THREAD_VARIABLES})
    try:
        pool = multiprocessing.get_context("spawn").Pool(
            jobs, initializer=_init_worker, initargs=(*sizes, base.inv_eps, base.inv_shifts))
    finally:
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    tasks = [(model, seed, base, runs_dir, eval_key) for model, seed in pending]
    try:
        yield from pool.imap_unordered(_run_in_worker, tasks)
        pool.close()
    except BaseException:
        pool.terminate()
        raise
    finally:
        pool.join()


def remove_temporary_files(runs_dir):
    """Delete leftovers of writes that a stopped worker never finished (never real results)."""
    for name in os.listdir(runs_dir):
        if ".tmp" in name:
            os.remove(os.path.join(runs_dir, name))


def summarise(records, seeds):
    """table[model][column] = {mean, std, per_seed} (sample std over seeds; 0 for one seed)."""
    table = {}
    for model in MODELS:
        table[model] = {}
        for col in COLUMNS:
            values = [records[(model, s)]["results"][col]["percent"] for s in seeds]
            std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            table[model][col] = {"mean": float(np.mean(values)), "std": std, "per_seed": values,
                                 "total": records[(model, seeds[0])]["results"][col]["total"]}
    return table


def format_table(table, seeds):
    """Markdown: our numbers (mean ± std over seeds) beside the paper's."""
    head = "| model | " + " | ".join(COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for model, row in table.items():
        cells = [f"{row[c]['mean']:.2f} ± {row[c]['std']:.2f}" for c in COLUMNS]
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    for model, row in PAPER_TABLE1.items():
        cells = [f"{row[c]:.2f}" if c in row else "—" for c in COLUMNS]
        lines.append(f"| paper: {model} | " + " | ".join(cells) + " |")
    totals = ", ".join(f"{c} n={next(iter(table.values()))[c]['total']}" for c in COLUMNS)
    lines.append("")
    lines.append(f"Accuracy in %, mean ± std over seeds {seeds}; counts per column: {totals}.")
    return "\n".join(lines) + "\n"


def figure1(params_a, params_b, X_test, y_test, fgsm_eps, path):
    """Paper Figure 1: embeddings of FGSM test images, (a) without, (b) with the MLI term."""
    panels = []
    for title, params in (("(a) baseline+mls: no invariance term", params_a),
                          ("(b) baseline+mls+mli: with invariance term", params_b)):
        x_adv = fgsm(params, X_test, y_test, fgsm_eps)  # each model's own FGSM images
        panels.append((title, mlp.embed(params, x_adv), y_test))
    return plots.embedding_figure(panels, path, suptitle=f"PCA of penultimate embeddings, "
                                                         f"FGSM test images (eps={fgsm_eps})")


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    started = time.perf_counter()
    seeds = args.seeds if args.seeds is not None else ([0] if args.quick else [0, 1, 2])
    train_size = args.train_size or (QUICK["train_size"] if args.quick else FULL_TRAIN)
    test_size = args.test_size or (QUICK["test_size"] if args.quick else FULL_TEST)
    epochs = args.epochs or (QUICK["epochs"] if args.quick else TrainConfig().epochs)
    # train_size stays 0 ("all") in the config: the data handed to train() is already cut.
    base = TrainConfig(epochs=epochs)
    runs_dir = os.path.join(args.out, "runs")
    os.makedirs(runs_dir, exist_ok=True)
    remove_temporary_files(runs_dir)  # from a run that was killed outright (kill -9)
    log = lambda msg: print(msg, flush=True)  # noqa: E731

    eval_key = {"train_images": train_size, "test_images": test_size, "pgd_steps": PGD_STEPS}
    config_record = {"base_config": base.to_dict(), "models": MODELS, "seeds": seeds,
                     "evaluation": eval_key, "paper": "Ovalle, Czyzycki, Hsieh, AAAI-23 student "
                                                      "abstract, arXiv 2211.02468"}
    write_text_atomic(os.path.join(args.out, "config.json"), json.dumps(config_record, indent=1))
    X_test, y_test = prepare_parent(train_size, test_size, base.inv_shifts, log)

    records, pending = {}, []
    for model in MODELS:
        for seed in seeds:
            saved = load_saved_run(run_stem(runs_dir, model, seed),
                                   run_key(model, seed, base, eval_key))
            if saved is not None:
                log(f"[{model} seed {seed}] reusing {run_stem(runs_dir, model, seed)}.json")
                records[(model, seed)] = saved
            else:
                pending.append((model, seed))
    # Longest runs first, so the two workers finish at about the same time. A row's length
    # in MODELS (how many loss settings it adds) stands in for its cost: more terms, more
    # images in the concatenated batch.
    pending.sort(key=lambda run: -len(MODELS[run[0]]))
    jobs = max(1, min(args.jobs, len(pending)))
    if pending:
        log(f"{len(pending)} run(s) to train in {jobs} worker process(es), "
            f"{len(records)} reused")
    try:
        for record in run_all(pending, jobs, base, runs_dir, eval_key, (train_size, test_size)):
            records[(record["model"], record["seed"])] = record
            done = len(records)
            elapsed = time.perf_counter() - started
            log(f"-- {done}/{len(MODELS) * len(seeds)} runs done, {elapsed:.0f}s elapsed")
    except KeyboardInterrupt:
        remove_temporary_files(runs_dir)
        saved = sum(load_saved_run(run_stem(runs_dir, m, s), run_key(m, s, base, eval_key))
                    is not None for m in MODELS for s in seeds)
        log(f"\ninterrupted: {saved} of {len(MODELS) * len(seeds)} runs are saved under "
            f"{runs_dir}; run the same command again to resume.")
        return 130

    table = summarise(records, seeds)
    ratios = figure1(load_params(run_stem(runs_dir, "baseline+mls", seeds[0]) + ".npz"),
                     load_params(run_stem(runs_dir, "baseline+mls+mli", seeds[0]) + ".npz"),
                     X_test, y_test, base.fgsm_eps, os.path.join(args.out, "figure1.png"))
    wall = time.perf_counter() - started
    compute = sum(r["train_seconds"] + r["eval_seconds"] for r in records.values())
    result = {"table": table, "paper": PAPER_TABLE1, "config": config_record,
              "figure1": {"scatter_ratio_without_mli": ratios[0], "scatter_ratio_with_mli": ratios[1],
                          "seed": seeds[0], "meaning": "trace(S_within)/trace(S_between) of "
                          "embeddings of FGSM test images; smaller = more tightly grouped"},
              "wall_seconds": wall, "compute_seconds_of_all_runs": compute}
    markdown = format_table(table, seeds) + (
        f"\nFigure 1 (seed {seeds[0]}): within/between-class scatter of FGSM-image embeddings: "
        f"{ratios[0]:.3f} without the invariance term, {ratios[1]:.3f} with it "
        f"(smaller = tighter).\n\nWall time {wall:.0f}s (this invocation); "
        f"{compute:.0f}s of training+evaluation in all runs.\n")
    write_text_atomic(os.path.join(args.out, "table1.json"), json.dumps(result, indent=1))
    write_text_atomic(os.path.join(args.out, "table1.md"), markdown)
    log("\n" + markdown)
    log(f"wrote {args.out}/table1.md, table1.json, figure1.png, config.json")
    return 0


if __name__ == "__main__":
    sys.exit(main())
