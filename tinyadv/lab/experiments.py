"""Train and evaluate many runs, each saved as it finishes: what reproduce.py and sweep.py share.

A *run* is one RunConfig (configs.py; seed included) with a name. ``run_many`` trains the runs that
have no valid saved result in worker processes (runner.py), evaluates each under every
attack and protocol (evaluate.py), and saves it under ``runs_dir`` as soon as it is done:

    runs_dir/<name>.json   the record: key, results, per-epoch history, seconds
    runs_dir/<name>.npz    the weights

A saved run is reused only if its *key* -- every config field, the preset it came from and
the evaluation settings -- equals the one asked for, so changing anything retrains exactly
the runs it affects, and an interrupted command resumes where it stopped. It is also reused
only if both of its files read back whole: the record carries the SHA-256 of the weights file
and of its own contents, so a truncated or edited file is trained again, and the progress
output says which run and why (``check_saved_run``). Every file is
written under a temporary name and renamed (fileio.py): Ctrl-C at any instant leaves either
the old file, the new one, or a ``.tmp`` leftover that the next start deletes.

Why worker processes with one BLAS thread each: on two cores, two single-threaded runs side
by side do more work per second than one run whose small matrix products are split over
both cores -- and a run's arithmetic is the same whatever the number of workers, so the
numbers do not depend on ``jobs``.
"""
import argparse
import hashlib
import json
import os
import signal
import sys
import time
import zipfile
from dataclasses import dataclass, field

import numpy as np

from .. import data, evaluate, network, objective
from ..fast import nearest
from ..fast.memory import keep_freed_memory
from ..fast.network import FAST
from ..fileio import remove_temporary_files, save_npz_atomic, write_text_atomic
from ..train import train
from . import invariance_cache
from .configs import PRESETS, RunConfig, preset_name
from .runner import WorkerError, run_in_workers

__all__ = ["Evaluation", "Run", "run_many", "obtain_records", "saved_records", "shard_of",
           "MissingRuns", "parse_shard", "run_command", "run_key", "check_saved_run",
           "load_saved_run", "load_params", "prepare_data", "load_attack_set", "authors_test_set",
           "add_run_arguments", "check_run_arguments", "mean_std", "cell_text", "seeds_text",
           "estimated_cost", "epoch_probe", "file_sha256", "record_sha256", "parse_preset",
           "COLUMNS", "FULL_TRAIN", "FULL_TEST", "RECORD_FORMAT"]

FULL_TRAIN, FULL_TEST = 60000, 10000
# Workers run BLAS on one thread each: two runs at once use both cores, and a run's numbers
# do not depend on --jobs (a product's rounding can depend on how BLAS splits it).
WORKER_BLAS_THREADS = 1
# Part of every run's key: bump it when training, evaluation or a record's layout changes, so
# that runs saved by older code are trained again instead of reused.
# 2: the record carries the checksums of its files.
RECORD_FORMAT = 2


# The columns of every run's results, as reproduce and sweep print them.
COLUMNS = ["clean", "fgsm", "pgd", "invariance_source", "invariance_flipped",
           "human_linf_eps03", "human_linf_eps04", "human_linf_manual_eps04", "human_l0"]


def mean_std(values):
    """{mean, std, per_seed}: the sample std (ddof 1) over seeds, 0 for a single seed."""
    std = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return {"mean": float(np.mean(values)), "std": std, "per_seed": list(values)}


def cell_text(cell):
    """'98.66 ± 0.07' for a mean_std cell over several seeds; '90.45' for a single seed,
    which has no spread to print (the table's heading says "1 seed": see seeds_text)."""
    if len(cell["per_seed"]) == 1:
        return f"{cell['mean']:.2f}"
    return f"{cell['mean']:.2f} ± {cell['std']:.2f}"


def seeds_text(seeds, several):
    """What a table's cells are: ``several`` (e.g. "mean ± sample std over seeds [0, 1, 2]")
    for two seeds or more; for one, "1 seed (seed 0): one run per cell, no spread"."""
    if len(seeds) == 1:
        return f"1 seed (seed {seeds[0]}): one run per cell, no spread"
    return several


@dataclass(frozen=True)
class Evaluation:
    """How much data a run sees and how it is attacked; part of every run's key."""

    train_images: int = FULL_TRAIN  # the first N training images
    test_images: int = FULL_TEST  # the first N test images
    pgd_steps: int = 10  # PGD iterations (step 2.5 * eps / steps, one random start)
    pgd_eps: float = None  # PGD's budget in pixel units; None: the run's fgsm_eps
    # After every epoch, measure the run on the first PROBE_IMAGES of the paper's authors'
    # test examples (epoch_probe): how the invariance column and the 0..255 embeddings move.
    probes: bool = False

    def to_dict(self):
        """The settings as a dict (the newer ones only when set: saved runs keep their keys)."""
        d = {"train_images": self.train_images, "test_images": self.test_images,
             "pgd_steps": self.pgd_steps}
        if self.pgd_eps is not None:
            d["pgd_eps"] = self.pgd_eps
        if self.probes:
            d["probes"] = True
        return d


@dataclass(frozen=True)
class Run:
    """One training run: a name (the file stem), its full config, and labels for the tables."""

    name: str
    config: RunConfig
    labels: dict = field(default_factory=dict)  # e.g. {"model": "baseline", "seed": 0}
    preset: str = "default"


def run_key(run, evaluation):
    """Everything that determines a run's numbers; a saved run is reused only if it matches."""
    return {"preset": run.preset, "config": run.config.to_dict(), "eval": evaluation.to_dict(),
            "blas_threads": WORKER_BLAS_THREADS, "record_format": RECORD_FORMAT}


def file_sha256(path):
    """SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def record_sha256(record):
    """SHA-256 of a record's contents without its own checksum field (canonical JSON)."""
    body = {k: v for k, v in record.items() if k != "record_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def check_saved_run(runs_dir, run, evaluation):
    """(record, "") if the run's saved files can be reused, else (None, why not).

    Reused only if the record (.json) parses, its contents match their recorded SHA-256, its
    key equals this run's, and the weights (.npz) exist, match their recorded SHA-256 and
    read back as arrays. ``why`` is one of "missing ...", "unreadable ...", "checksum
    mismatch ..." or "different config ..." -- what the progress output says.
    """
    stem = os.path.join(runs_dir, run.name)
    if not os.path.exists(stem + ".json"):
        return None, "missing: no saved record"
    try:
        with open(stem + ".json") as f:
            saved = json.load(f)
        if not isinstance(saved, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as err:  # UnicodeDecodeError is a ValueError too
        return None, f"unreadable record {run.name}.json ({type(err).__name__})"
    if saved.get("key") != run_key(run, evaluation):
        return None, "different config (its key differs from this run's)"
    if saved.get("record_sha256") != record_sha256(saved):
        return None, f"checksum mismatch in {run.name}.json (edited or damaged)"
    if not os.path.exists(stem + ".npz"):
        return None, f"missing weights {run.name}.npz"
    try:
        if file_sha256(stem + ".npz") != saved.get("npz_sha256"):
            return None, f"checksum mismatch in {run.name}.npz (truncated, damaged or replaced)"
        load_params(runs_dir, run.name)  # every array reads back
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as err:
        return None, f"unreadable weights {run.name}.npz ({type(err).__name__})"
    return saved, ""


def load_saved_run(runs_dir, run, evaluation):
    """The saved record of a run if it can be reused (check_saved_run), else None."""
    return check_saved_run(runs_dir, run, evaluation)[0]


def load_params(runs_dir, name):
    """The saved weights of the run called ``name`` (its file stem)."""
    with np.load(os.path.join(runs_dir, name + ".npz"), allow_pickle=False) as f:
        return {k: f[k] for k in f.files}


def estimated_cost(config):
    """Relative cost of a run, for ordering: images through the network per anchor and step.

    A forward and a backward for every image group the objective stacks (objective.eq2_terms
    says which: the anchors, FGSM images, MLI positives and, in the oracle protocol, their
    negatives), FGSM's own backward, and half a group more for the negatives and triplets."""
    terms = config.terms()
    per_anchor = len(objective.stacked_groups(terms)) + (1 if config.adversarial else 0)
    if any(term.kind == "triplet" for term in terms):
        per_anchor += 0.5  # mining the hardest negatives, triplet backward
    return per_anchor * config.epochs * (config.train_size or FULL_TRAIN)


def load_attack_set(variant, split, n, log):
    """The examples of the first ``n`` images of an MNIST split made by Tramer et al.'s
    attack (``variant`` "tramer", or "authors": the paper's authors' variant), from
    tramer.load_attack_set (built and cached there the first time).

    Returns
    -------
    x_inv_255 : (n, 784) float32 examples on the 0..255 scale, exact
    y_target : (n,) their target labels
    Their source labels are checked against MNIST's labels of the same images.
    """
    from . import tramer  # imported here: only runs that use the attack need it

    full = FULL_TRAIN if split == "train" else FULL_TEST
    x, y_target, y_source = tramer.load_attack_set(variant, split,
                                                   limit=None if n == full else n, log=log)
    _, y_split = data.load_mnist(split)
    if x.shape != (n, 784) or len(y_target) != n or len(y_source) != n:
        raise ValueError(f"tramer.load_attack_set({variant!r}, {split!r}): expected {n} "
                         f"examples of shape (784,), got {x.shape}")
    if not np.array_equal(y_source, y_split[:n]):
        raise ValueError(f"tramer.load_attack_set({variant!r}, {split!r}): the source labels "
                         f"do not match MNIST's {split} labels in order "
                         f"({int(np.sum(y_source != y_split[:n]))} of {n} differ)")
    return np.asarray(x, dtype=np.float32), np.asarray(y_target, dtype=np.int64)


def authors_test_set(evaluation, log):
    """(x_inv_255, y_source): the paper's authors' invariance examples of the evaluated test
    images and their source labels -- the paper's own invariance column (evaluate.py,
    authors_invariance; reproduce.py scores every run's saved weights on them)."""
    x_inv_255, _ = load_attack_set("authors", "test", evaluation.test_images, log)
    _, y_test = data.load_mnist("test")
    return x_inv_255, y_test[:evaluation.test_images].copy()


PROBE_IMAGES = 2000  # test images an epoch's probe reads (a second or two on the CNN)


def epoch_probe(params, x_inv_255, y_source, x_test, y_test, n=PROBE_IMAGES):
    """Where a network stands after an epoch, on the paper's authors' invariance examples of
    the first ``n`` test images: accuracy against the source label fed as the authors' code
    fed them (0..255, unnormalised: ``raw``) and scaled to pixels (``scaled``); the clean
    accuracy; and the embeddings of the raw images -- their mean norm beside the natural
    images', how much they point one way (the norm of the mean of their unit vectors: 1 when
    all are parallel, near 0 when spread), and the share of them the head gives its most
    frequent class."""
    x_raw, y, x_clean = x_inv_255[:n], y_source[:n], x_test[:n]
    raw_params = network.without_input_norm(params)
    logits_raw, h_raw, _ = FAST.forward(raw_params, x_raw)
    h_clean = FAST.embed(params, x_clean)
    units = h_raw / np.maximum(np.linalg.norm(h_raw, axis=1, keepdims=True), 1e-12)
    counts = np.bincount(logits_raw.argmax(axis=1), minlength=logits_raw.shape[1])
    return {
        "raw": 100.0 * float(np.mean(logits_raw.argmax(axis=1) == y)),
        "scaled": 100.0 * float(np.mean(FAST.predict(params, x_raw / np.float32(255)) == y)),
        "clean": 100.0 * float(np.mean(FAST.predict(params, x_clean) == y_test[:n])),
        "raw_norm": float(np.linalg.norm(h_raw, axis=1).mean()),
        "clean_norm": float(np.linalg.norm(h_clean, axis=1).mean()),
        "raw_direction": float(np.linalg.norm(units.mean(axis=0))),
        "raw_top_class": int(counts.argmax()), "raw_top_share": float(counts.max() / len(y)),
    }


def prepare_data(evaluation, inv_eps, inv_shifts, log, generator="nearest"):
    """Training/test images, their invariance examples and flipped labels.

    The full sets use the cached invariance examples (invariance_cache.invariance_sets, built once);
    a subset gets its own, searched against the training subset only, which takes seconds.
    ``generator`` "tramer" or "authors" replaces the *training* set's invariance examples (the
    MLI positives) with that attack's, divided by 255 into pixel units, and its targets as
    the flipped labels; the test set's stay the label-flipping generator's, so the existing
    columns do not change with it.
    """
    X_train, y_train = data.load_mnist("train")
    X_test, y_test = data.load_mnist("test")
    n_train, n_test = evaluation.train_images, evaluation.test_images
    if n_train == FULL_TRAIN and n_test == FULL_TEST:
        sets = invariance_cache.invariance_sets(inv_eps, shifts=inv_shifts, log=log,
                                                mnist=(X_train, y_train, X_test, y_test))
        inv_train, inv_test = sets["train"], sets["test"]
    else:
        X_train, y_train = X_train[:n_train].copy(), y_train[:n_train].copy()
        X_test, y_test = X_test[:n_test].copy(), y_test[:n_test].copy()
        inv_train = nearest.label_flip(X_train, y_train, X_train, y_train, inv_eps,
                                       shifts=inv_shifts, exclude_self=True)
        inv_test = nearest.label_flip(X_test, y_test, X_train, y_train, inv_eps, shifts=inv_shifts)
    if generator != "nearest":
        x_inv_255, y_target = load_attack_set(generator, "train", n_train, log)
        inv_train = (x_inv_255 / np.float32(255), y_target)  # into the [0, 1] pipeline
    return (X_train, y_train, inv_train[0], inv_train[1],
            X_test, y_test, inv_test[0], inv_test[1])


def data_key(config):
    """What of a config decides its data: the label-flipping generator's settings, and the
    generator of the MLI positives when the run uses them."""
    generator = config.invariance_generator if config.uses_invariance else "nearest"
    return (config.inv_eps, config.inv_shifts, generator)


def prepare_neighbour_cache(evaluation, runs, log):
    """Build the full sets' neighbour cache, and the training sets of Tramer et al.'s attack
    the runs train on, once, in the parent, before any worker starts -- so that two workers
    never both build them."""
    if evaluation.train_images == FULL_TRAIN and evaluation.test_images == FULL_TEST:
        for shifts in sorted({run.config.inv_shifts for run in runs}):
            invariance_cache.invariance_neighbours(shifts, log=log)
    for generator in sorted({data_key(run.config)[2] for run in runs} - {"nearest"}):
        load_attack_set(generator, "train", evaluation.train_images, log)


def train_and_evaluate(run, evaluation, datasets, runs_dir, log):
    """Train and evaluate one run; save weights and record as soon as it is done."""
    X_train, y_train, xi_train, yf_train, X_test, y_test, xi_test, yf_test = datasets
    config = run.config
    t0 = time.perf_counter()
    probe_set = authors_test_set(evaluation, log=lambda msg: None) if evaluation.probes else None

    def probe(epoch, params, record):  # into the epoch's history, and its log line
        record["probe"] = found = epoch_probe(params, *probe_set, X_test, y_test)
        return (f"probe: invariance raw {found['raw']:.1f}% scaled {found['scaled']:.1f}%, "
                f"raw |h| {found['raw_norm']:.3g}, one way {found['raw_direction']:.2f}")
    n = config.train_size or len(X_train)  # the first n training images
    X_train, y_train = X_train[:n], y_train[:n]
    xi_train, yf_train = (xi_train[:n], yf_train[:n]) if config.uses_invariance else (None, None)
    params, history = train(config.train, X_train, y_train, xi_train, yf_train, log=log,
                            on_epoch=probe if evaluation.probes else None,
                            step=config.training_step())
    train_s = time.perf_counter() - t0
    results = evaluate.evaluate_model(params, X_test, y_test, xi_test, yf_test,
                                      fgsm_eps=config.fgsm_eps, pgd_steps=evaluation.pgd_steps,
                                      rng=np.random.default_rng(config.seed),
                                      fgsm_clamp=config.fgsm_clamp, pgd_eps=evaluation.pgd_eps,
                                      net=FAST)
    record = {"name": run.name, **run.labels, "key": run_key(run, evaluation),
              "results": results, "history": history, "train_seconds": train_s,
              "eval_seconds": time.perf_counter() - t0 - train_s}
    stem = os.path.join(runs_dir, run.name)
    save_npz_atomic(stem + ".npz", params)  # weights first: a .json always has its .npz
    record["npz_sha256"] = file_sha256(stem + ".npz")  # of the bytes as they lie on disk
    record["record_sha256"] = record_sha256(record)
    write_text_atomic(stem + ".json", json.dumps(record, indent=1))
    return record


# ---- the command lines of reproduce and sweep -------------------------------------------

def add_run_arguments(parser, quick_help):
    """The flags reproduce and sweep share: --quick, --preset, --seeds, --epochs, --jobs."""
    parser.add_argument("--quick", action="store_true", help=quick_help)
    parser.add_argument("--preset", type=parse_preset, default="default",
                        metavar="{" + ",".join(PRESETS) + "}",
                        help="bundle of config fields every run starts from: 'default' "
                             "(tinyadv's), 'paper-4d' (the paper's equations on a 4-d linear "
                             "embedding, CE on FGSM images), 'authors-code' (what the "
                             "authors' code did instead, authors_code.py)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds to average over (default 0 1 2; --quick: 0)")
    parser.add_argument("--epochs", type=int, default=None,
                        help=f"epochs per run (default {RunConfig().epochs}; fewer with --quick)")
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="worker processes, each training one run at a time with one "
                             "BLAS thread (default: 2, or 1 on a one-core machine)")
    shards = parser.add_mutually_exclusive_group()
    shards.add_argument("--shard", type=parse_shard, default=None, metavar="K/N",
                        help="train only shard K of N of the runs (run i belongs to shard "
                             "i mod N) and write no table: for N machines sharing --out")
    shards.add_argument("--merge", action="store_true",
                        help="train nothing: build the outputs from the saved runs, or name "
                             "the runs that are missing")


def parse_preset(text):
    """argparse type for --preset: a preset's name; a retired name says what to use instead."""
    try:
        return preset_name(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def parse_shard(text):
    """'K/N' -> (K, N): shard K of N, 0 <= K < N (argparse type for --shard)."""
    k, sep, n = text.partition("/")
    try:
        k, n = int(k), int(n)
    except ValueError:
        k = n = None
    if not sep or k is None or n < 1 or not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"expected K/N with N >= 1 and K in 0..N-1 (e.g. 0/4), "
                                         f"got {text!r}")
    return k, n


def check_run_arguments(parser, args):
    """Exit 2 (parser.error) naming a bad --seeds, --epochs or --jobs."""
    for name, lo, hi in (("epochs", 1, None), ("jobs", 1, 64)):
        value = getattr(args, name)
        if value is not None and (value < lo or (hi is not None and value > hi)):
            parser.error(f"--{name}: expected an integer in [{lo}, {hi or 'inf'}], got {value}")
    if args.seeds is not None and min(args.seeds) < 0:
        parser.error(f"--seeds: expected integers >= 0, got {args.seeds}")
    if args.seeds is not None and len(set(args.seeds)) != len(args.seeds):
        parser.error(f"--seeds: each seed once, got {args.seeds}")


# ---- inside a worker process ------------------------------------------------------------

_WORKER = {"datasets": {}}


def _init_worker(evaluation):
    keep_freed_memory()  # a worker trains: keep each step's freed temporaries for the next
    _WORKER["evaluation"] = evaluation


def _work(task):
    """Train one run in a worker; its data are loaded once per data_key."""
    run, runs_dir = task
    evaluation = _WORKER["evaluation"]
    key = data_key(run.config)
    if key not in _WORKER["datasets"]:
        inv_eps, inv_shifts, generator = key
        _WORKER["datasets"][key] = prepare_data(evaluation, inv_eps, inv_shifts,
                                                log=lambda msg: None, generator=generator)
    log = lambda msg: print(f"[{run.name}] {msg.strip()}", flush=True)  # noqa: E731
    return train_and_evaluate(run, evaluation, _WORKER["datasets"][key], runs_dir, log)


# ---- in the parent ------------------------------------------------------------------------

def _describe(results):
    return "  ".join(f"{column} {results[column]['percent']:.2f}"
                     for column in ("clean", "fgsm", "pgd", "invariance_source", "human_linf_eps04"))


def run_many(runs, evaluation, runs_dir, jobs, log=print):
    """Make sure every run has a saved record; return {run.name: record}.

    Saved runs that check_saved_run accepts are reused; each other one is named with the
    reason it is trained (again), and they are trained in ``jobs`` worker
    processes, longest first, with a progress line (and the time left) as each finishes and
    a warning when a run's PGD accuracy falls far below its FGSM accuracy. On Ctrl-C the
    workers are stopped and KeyboardInterrupt propagates; every finished run stays saved. A
    run that fails in its worker stops the others and raises runner.WorkerError.
    """
    names = [run.name for run in runs]
    if len(set(names)) != len(names):
        raise ValueError(f"runs: every run needs its own name, got duplicates in {names}")
    os.makedirs(runs_dir, exist_ok=True)
    remove_temporary_files(runs_dir)  # from a process that was killed outright (kill -9)
    records, pending = {}, []
    for run in runs:
        saved, why = check_saved_run(runs_dir, run, evaluation)
        if saved is not None:
            records[run.name] = saved
        else:
            pending.append(run)
            log(f"to train: {run.name} ({why})")
    if records:
        log(f"reusing {len(records)} saved run(s) from {runs_dir}")
    if not pending:
        return records
    # Longest runs first, so the workers finish at about the same time.
    pending.sort(key=lambda run: -estimated_cost(run.config))
    jobs = max(1, min(jobs, len(pending)))
    log(f"{len(pending)} run(s) to train in {jobs} worker process(es)")
    prepare_neighbour_cache(evaluation, pending, log)
    started = time.perf_counter()
    total_cost = sum(estimated_cost(run.config) for run in pending)
    done_cost = 0.0
    tasks = [(run, runs_dir) for run in pending]
    # Leaving this block stops every worker, on every path (runner.py); what they had saved
    # stays, what they were writing is only ever a temporary file.
    with run_in_workers(tasks, _work, jobs=jobs, initializer=_init_worker,
                        initargs=(evaluation,), blas_threads=WORKER_BLAS_THREADS) as finished:
        for (run, _), record in finished:
            records[run.name] = record
            done_cost += estimated_cost(run.config)
            elapsed = time.perf_counter() - started
            left = elapsed * (total_cost - done_cost) / done_cost if done_cost else 0.0
            log(f"-- {len(records)}/{len(runs)} runs done ({run.name}: "
                f"{_describe(record['results'])}), {elapsed:.0f}s elapsed, ~{left:.0f}s left")
            warning = evaluate.overfitting_warning(record["results"])
            if warning:
                log(f"WARNING {run.name}: {warning}")
    return records


class MissingRuns(Exception):
    """--merge found runs that are not saved (or were saved with another configuration)."""


def shard_of(runs, shard):
    """The runs shard (K, N) trains: run i of the command's list belongs to shard i mod N."""
    k, n = shard
    return [run for i, run in enumerate(runs) if i % n == k]


def saved_records(runs, evaluation, runs_dir):
    """{run.name: record} of runs that are all saved; MissingRuns naming every one that is not
    (a run saved with another configuration -- a shard started with other flags -- counts as
    missing, with the reason)."""
    records, missing = {}, []
    for run in runs:
        saved, why = check_saved_run(runs_dir, run, evaluation)
        if saved is None:
            missing.append(f"{run.name} ({why})")
        else:
            records[run.name] = saved
    if missing:
        raise MissingRuns(f"--merge: {len(missing)} of {len(runs)} runs are not saved under "
                          f"{runs_dir} with this configuration: " + "; ".join(missing))
    return records


def obtain_records(runs, evaluation, runs_dir, args, log):
    """The records a command builds its outputs from: trained where missing (run_many), or
    with ``--merge`` only read (saved_records). With ``--shard K/N`` only that shard's runs
    are trained, and None is returned: a shard writes no table."""
    if args.shard is not None:
        mine = shard_of(runs, args.shard)
        log(f"shard {args.shard[0]}/{args.shard[1]}: {len(mine)} of {len(runs)} runs "
            f"({', '.join(run.name for run in mine) or 'none'})")
        run_many(mine, evaluation, runs_dir, args.jobs, log)
        saved = sum(load_saved_run(runs_dir, run, evaluation) is not None for run in runs)
        log(f"shard {args.shard[0]}/{args.shard[1]} done; {saved} of {len(runs)} runs saved "
            f"under {runs_dir}. When all are, run the same command with --merge.")
        return None
    if args.merge:
        return saved_records(runs, evaluation, runs_dir)
    return run_many(runs, evaluation, runs_dir, args.jobs, log)


def run_command(body, out, runs_dir, runs, evaluation, command_line):
    """Run a command's ``body()`` (train what is missing, write the outputs) and return its exit
    status: 0 when it finished; 130 after a Ctrl-C (as a shell reports a process stopped by
    SIGINT); 1 when a run failed in its worker or ``--merge`` found runs missing (MissingRuns).
    When stopped, it removes every temporary file and says how many runs are saved; a rerun of
    the same command resumes from them.

    ``command_line``: called as ``python -m tinyadv.<command>``. Then SIGINT stays ignored
    once the body has ended, on purpose: the process is about to exit, and a second Ctrl-C a
    few milliseconds after the first (an impatient user, or GNU timeout signalling the process
    and then its group) must not turn the clean exit into a traceback. Called from other code
    (a notebook, a test), the caller's SIGINT handler is put back instead.
    """
    caller_handler = signal.getsignal(signal.SIGINT)
    try:
        body()
        if command_line:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # nothing left to stop
        return 0
    except KeyboardInterrupt:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # first thing: a second Ctrl-C is ignored
        status = _stopped(out, runs_dir, runs, evaluation)
    except WorkerError as err:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the cleanup below must not be cut short
        status = _stopped(out, runs_dir, runs, evaluation, why=str(err))
    except MissingRuns as err:  # nothing was written: say which runs, and stop
        print(f"{err}\nTrain them first (the same command without --merge, or its --shard "
              f"jobs), then merge again.", file=sys.stderr, flush=True)
        status = 1
    if not command_line:
        signal.signal(signal.SIGINT, caller_handler)
    return status


def _stopped(out, runs_dir, runs, evaluation, why=None):
    """No temporary files left, and a line saying what is saved. Returns the exit status."""
    for folder in (out, runs_dir):
        remove_temporary_files(folder)
    saved = sum(load_saved_run(runs_dir, run, evaluation) is not None for run in runs)
    head = "interrupted" if why is None else f"stopped: {why}"
    print(f"\n{head}\n{saved} of {len(runs)} runs are saved under {runs_dir}; run the "
          f"same command again to resume.", flush=True)
    return 130 if why is None else 1
