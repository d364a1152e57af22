"""Which images each saved run gets right: the per-image correctness the paired tests need.

A run's record (experiments.py) keeps counts, not predictions, and its format is fixed. So
the tables recompute, from the saved weights, whether each test image is classified right
(``correctness``), with the same attacks and random starts the evaluation used, and check
every recomputed count against the record's: a table never pairs numbers that are not the
run's own.

Columns: every column of the record (clean, fgsm, pgd, invariance_source,
invariance_flipped, the four human sets), the authors' attack both ways when its set is
given, and three over the 350 human-labelled images of Tramer et al. together:
``human`` (all), ``human_kept`` (the 193 whose human label is still the source label) and
``human_changed`` (the 157 people gave another label).
"""
import numpy as np

from .. import attacks, authors_code, data, evaluate, network
from ..fast.network import FAST  # the network as evaluation runs it: the same predictions

__all__ = ["correctness", "correctness_in_workers", "correctness_task", "human_sets",
           "test_sets", "fgsm_scatter_ratio", "HUMAN_POOLED",
           "HUMAN_SET_COLUMNS", "RECORD_COLUMNS", "CountMismatch"]

HUMAN_POOLED = ("human", "human_kept", "human_changed")
HUMAN_SET_COLUMNS = tuple(f"human_{name}" for name in evaluate.HUMAN_SETS)
RECORD_COLUMNS = evaluate.KEYS  # the columns a record counts


class CountMismatch(RuntimeError):
    """A recomputed per-image count differs from the count the run's record holds."""


def human_sets():
    """The four human-labelled sets stacked: (X (350, 784), y_human, y_source, set names)."""
    parts = [data.load_tramer(name) for name in evaluate.HUMAN_SETS]
    names = np.concatenate([[name] * len(p[0]) for name, p in zip(evaluate.HUMAN_SETS, parts)])
    return (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]), names)


def test_sets(evaluation, inv_eps, inv_shifts, log=lambda msg: None, authors=True):
    """Everything ``correctness`` scores on, for runs evaluated with ``evaluation``:
    the first test images and their label-flip invariance examples (made exactly as
    experiments.prepare_data makes them, without the training set's), the authors' attack
    of them (when ``authors``) and the human sets."""
    from ..fast import nearest
    from . import experiments, invariance_cache  # the lab's data preparation

    X_train, y_train = data.load_mnist("train")
    X_test, y_test = data.load_mnist("test")
    n_train, n_test = evaluation.train_images, evaluation.test_images
    if n_train == experiments.FULL_TRAIN and n_test == experiments.FULL_TEST:
        x_inv, y_flip = invariance_cache.invariance_sets(
            inv_eps, shifts=inv_shifts, log=log, mnist=(X_train, y_train, X_test, y_test))["test"]
    else:
        X_test, y_test = X_test[:n_test].copy(), y_test[:n_test].copy()
        x_inv, y_flip = nearest.label_flip(X_test, y_test, X_train[:n_train], y_train[:n_train],
                                           inv_eps, shifts=inv_shifts)
    sets = {"x": X_test, "y": y_test, "x_inv": x_inv, "y_flip": y_flip, "human": human_sets()}
    if authors:
        sets["authors"] = experiments.authors_test_set(evaluation, log)
    return sets


def _fgsm_images(params, config, x, y):
    """The FGSM column's images, as evaluate_model makes them for this config."""
    if config.fgsm_clamp == "pixels":
        return attacks.fgsm(params, x, y, config.fgsm_eps, net=FAST)
    return authors_code.fgsm(params, x, y, eps=config.fgsm_eps / params["input_std"],
                             clamp=config.fgsm_clamp, net=FAST)


def fgsm_scatter_ratio(params, config, sets):
    """{"scatter_ratio": Figure 1's within/between-class scatter ratio of the embeddings of
    the run's own FGSM test images (plots.scatter_ratio; reproduce.figure1 draws them)}."""
    from .. import plots

    x_adv = _fgsm_images(params, config, sets["x"], sets["y"])
    return {"scatter_ratio": plots.scatter_ratio(FAST.embed(params, x_adv), sets["y"])}


def correctness(params, config, evaluation, sets, results, columns):
    """Per-image correctness of one run, checked against its recorded counts.

    Parameters
    ----------
    params : the run's saved weights
    config : its lab config (configs.RunConfig: seed, fgsm_eps, fgsm_clamp decide the attacks)
    evaluation : its experiments.Evaluation (PGD's steps and budget)
    sets : test_sets(...)
    results : its results (the record's, with the authors' columns where scored): every
        column recomputed here that it counts must come out the same, else CountMismatch
    columns : which columns to compute (names above)

    Returns
    -------
    {column: (N,) bool}, True where the run is right on that image
    """
    x, y = sets["x"], sets["y"]
    out = {}
    for column in columns:
        if column == "clean":
            right = FAST.predict(params, x) == y
        elif column == "fgsm":
            right = FAST.predict(params, _fgsm_images(params, config, x, y)) == y
        elif column == "pgd":
            eps = config.fgsm_eps if evaluation.pgd_eps is None else evaluation.pgd_eps
            x_pgd = attacks.pgd(params, x, y, eps, evaluation.pgd_steps,
                                attacks.default_pgd_step_size(eps, evaluation.pgd_steps),
                                np.random.default_rng(config.seed), net=FAST)  # evaluation's start
            right = FAST.predict(params, x_pgd) == y
        elif column in ("invariance_source", "invariance_flipped"):
            labels = y if column == "invariance_source" else sets["y_flip"]
            right = FAST.predict(params, sets["x_inv"]) == labels
        elif column in ("invariance_authors", "invariance_authors_raw"):
            x_255, y_source = sets["authors"]
            if column == "invariance_authors":
                right = FAST.predict(params, x_255 / x_255.dtype.type(255)) == y_source
            else:
                right = FAST.predict(network.without_input_norm(params), x_255) == y_source
        elif column.startswith("human"):
            X, y_human, y_source, names = sets["human"]
            right = FAST.predict(params, X) == y_human
            if column == "human_kept":
                right = right[y_human == y_source]
            elif column == "human_changed":
                right = right[y_human != y_source]
            elif column != "human":
                right = right[names == column[len("human_"):]]
        else:
            raise ValueError(f"columns: unknown column {column!r}")
        if column in results and int(right.sum()) != results[column]["correct"]:
            raise CountMismatch(f"{column}: {int(right.sum())} images right when recomputed "
                                f"from the weights, {results[column]['correct']} in the record")
        out[column] = right
    return out


# --- the same, in workers like the ones that evaluated the runs --------------------------------
# A matrix product's last bit depends on how many BLAS threads share it, and a PGD image that
# sits on a decision boundary can follow that bit: recomputed in a process with two threads, a
# run evaluated in a one-thread worker may count one image more or less. So the recomputation
# runs where the evaluation ran: in the runner's one-BLAS-thread workers.
_WORKER_SETS = {}  # a worker's copy of the parent's test sets, by name


def _receive_sets(sets_by_name):
    _WORKER_SETS.update(sets_by_name)


def correctness_task(task):
    """One run's ``correctness`` in a worker. task: (runs_dir, name, config, evaluation,
    sets name, results, columns); the authors' columns are scored here first when the sets
    hold the authors' attack and the record lacks them (records of the MLP presets do).
    Returns ({column: bool array}, results)."""
    from . import experiments  # imported late: experiments imports the training machinery

    runs_dir, name, config, evaluation, sets_name, results, columns = task
    sets = _WORKER_SETS[sets_name]
    params = experiments.load_params(runs_dir, name)
    results = dict(results)
    if "authors" in sets and "invariance_authors" not in results:
        results.update(evaluate.authors_invariance(params, *sets["authors"], net=FAST))
    return correctness(params, config, evaluation, sets, results, columns), results


def correctness_in_workers(tasks, sets_by_name, jobs=2):
    """``correctness_task`` for every task, in one-BLAS-thread workers, each given the
    parent's ``sets_by_name`` ({name: test_sets(...)}) once: {run name: (correct, results)}
    in the tasks' order (see the comment above)."""
    from .runner import run_in_workers

    done = {}
    with run_in_workers(tasks, correctness_task, jobs=jobs, initializer=_receive_sets,
                        initargs=(sets_by_name,), blas_threads=1) as finished:
        for task, result in finished:
            done[task[1]] = result
    return {task[1]: done[task[1]] for task in tasks}
