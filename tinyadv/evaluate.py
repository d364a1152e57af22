"""Accuracies under every attack and protocol, each a percentage with the count behind it.

Columns -- two readings of "invariance accuracy", and people as the arbiter:

- clean, fgsm, pgd: predictions on clean / FGSM / PGD test images vs the true label.
- invariance_source: predictions on the label-flipping invariance images vs the label of
  the image they were made from -- the paper's "invariance accuracy". By Definition 2 the
  true label of an invariance example has changed, so a *high* number here means the attack
  failed to fool the model only in the sense that the model ignored the change.
- invariance_flipped: the same predictions vs the flipped label t, the generator's guess of
  the oracle label: a model that follows the change scores high here.
- human_*: agreement with the labels *people* gave the invariance examples of Tramer et al.
  2020 (data.load_tramer) -- the arbiter between the two readings above.
- invariance_authors (``authors_invariance``): predictions on the examples the paper's
  authors' attack makes from the test images (their variant of Tramer et al.'s
  rotation-and-shift search, tinyadv/lab/tramer.py) vs the *source* label, as the paper
  scored them: the paper's own invariance column, on its own attack.
- invariance_authors_raw: the same images fed as the authors' code fed them. Their data
  loader gave the network the saved invariance image as is, 0..255, without the
  ``ToTensor`` (/255) and ``Normalize`` that every clean image went through. Here: x * 255
  straight into the first linear layer, the network's input normalisation (if any) skipped;
  for a network trained without one, 0..255 into a network trained on [0, 1].

Every accuracy is a dict(percent=float, correct=int, total=int) so a reader can always see
how many images a percentage came from. Every function takes ``net``, the network that runs
the images: network.py's by default; the lab hands in tinyadv/fast/network.py's.
``evaluate_model`` also reports the FGSM - PGD gap in points: FGSM is PGD's first step
without the random start, so a model robust to FGSM but not to PGD has learned to bend its
gradient rather than to resist the perturbation -- the mark of *catastrophic overfitting* of
FGSM adversarial training (Wong, Rice & Kolter, ICLR 2020).
"""
import functools

import numpy as np

from . import attacks, authors_code, data, network
from .validate import check_array, check_eps, check_images, check_labels

__all__ = ["score", "accuracy", "human_agreement", "authors_invariance", "evaluate_model",
           "overfitting_warning", "accuracy_vs_eps", "KEYS", "AUTHORS_KEYS", "HUMAN_SETS",
           "OVERFITTING_GAP"]

HUMAN_SETS = ("linf_eps03", "linf_eps04", "linf_manual_eps04", "l0")
# A gap this large (in points) is flagged: it lies between the gaps of runs that overfit
# catastrophically and of those that did not (data/results.md, "Full tables").
OVERFITTING_GAP = 20.0
KEYS = ("clean", "fgsm", "pgd", "invariance_source", "invariance_flipped") + tuple(
    f"human_{name}" for name in HUMAN_SETS)
AUTHORS_KEYS = ("invariance_authors", "invariance_authors_raw")  # with the authors' test set


def score(predictions, y):
    """dict(percent, correct, total) of predictions == y (percent is nan for no images)."""
    correct, total = int(np.sum(predictions == y)), int(len(y))
    percent = 100.0 * correct / total if total else float("nan")
    return {"percent": percent, "correct": correct, "total": total}


def accuracy(params, x, y, net=network):
    """Top-1 accuracy of the network (an MLP or the CNN) on (x, y).

    Returns
    -------
    dict(percent=float in [0, 100], correct=int, total=int)
    """
    check_images(x, "x", dim=network.input_dim(params))
    check_labels(y, "y", n=len(x))
    return score(net.predict(params, x), y)


@functools.lru_cache(maxsize=None)
def _tramer(name):
    """Each Tramer set is read (and checksummed) once per process; returned read-only."""
    X, y_human, y_source = data.load_tramer(name)
    for a in (X, y_human, y_source):
        a.setflags(write=False)
    return X, y_human, y_source


def human_agreement(params, net=network):
    """Agreement of the model's predictions with human labels on each Tramer et al. set.

    Returns
    -------
    {"human_linf_eps03": dict(percent, correct, total), ...} for the four sets
    """
    result = {}
    for name in HUMAN_SETS:
        X, y_human, _ = _tramer(name)
        result[f"human_{name}"] = score(net.predict(params, X), y_human)
    return result


def authors_invariance(params, x_inv_255, y_source, net=network):
    """Agreement with the source label on the paper's authors' invariance examples, fed two
    ways (module docstring): as pixels in [0, 1] like every other image, and as the authors'
    code fed them (0..255, no normalisation).

    Parameters
    ----------
    params : MLP parameters (with or without an input normalisation)
    x_inv_255 : (M, D) float invariance examples on the 0..255 scale (exact values)
    y_source : (M,) labels of the test images they were made from

    Returns
    -------
    {"invariance_authors": dict(percent, correct, total), "invariance_authors_raw": ...}
    """
    dim = network.input_dim(params)
    check_array(x_inv_255, "x_inv_255", ndim=2)
    if x_inv_255.shape[1] != dim:
        raise ValueError(f"x_inv_255: expected shape (M, {dim}), got {x_inv_255.shape}")
    if x_inv_255.size and (x_inv_255.min() < 0 or x_inv_255.max() > 255):
        raise ValueError(f"x_inv_255: pixels must lie in [0, 255], got range "
                         f"[{x_inv_255.min():g}, {x_inv_255.max():g}]")
    check_labels(y_source, "y_source", n=len(x_inv_255))
    x_pixels = x_inv_255 / x_inv_255.dtype.type(255)  # what ToTensor makes of them
    return {"invariance_authors": score(net.predict(params, x_pixels), y_source),
            "invariance_authors_raw": score(
                net.predict(network.without_input_norm(params), x_inv_255), y_source)}


def _resolve_pgd(eps, steps, step_size):
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 0:
        raise ValueError(f"pgd_steps: expected an integer >= 0, got {steps!r}")
    if step_size is None:
        return attacks.default_pgd_step_size(eps, steps)
    return check_eps(step_size, "pgd_step_size")


def evaluate_model(params, x_test, y_test, x_inv_test, y_flip_test, fgsm_eps, pgd_steps=10,
                   pgd_step_size=None, rng=None, fgsm_clamp="pixels", pgd_eps=None,
                   net=network):
    """Every Table-1 column (and more) for one model.

    Parameters
    ----------
    params : the network's parameters (an MLP's or the CNN's); net : the network that runs them
    x_test : (N, 784) clean test images, y_test : (N,) their labels
    x_inv_test : (N, 784) invariance examples made from x_test (same row order), so that
        y_test are their source labels; y_flip_test : (N,) their flipped labels
    fgsm_eps : l-inf budget of both FGSM and PGD, in pixel units
    pgd_steps, pgd_step_size : PGD iterations and step (default 2.5 * eps / steps)
    rng : np.random.Generator for PGD's random start (default: seed 0: the same numbers twice)
    fgsm_clamp : "pixels", or "normalised": the fgsm column is the authors' FGSM instead
        (authors_code.fgsm: their clamp in normalised units; needs their normalisation)
    pgd_eps : PGD's budget when it is not fgsm_eps (None: fgsm_eps); then tinyadv's FGSM at
        pgd_eps is scored too (fgsm_at_pgd_eps), and the FGSM - PGD gap compares those two

    Returns
    -------
    dict: KEYS, each dict(percent, correct, total); fgsm_at_pgd_eps when it differs from
    fgsm; and fgsm_pgd_gap, dict(points) = FGSM - PGD percent at PGD's budget
    """
    dim = network.input_dim(params)
    check_images(x_test, "x_test", dim=dim)
    check_labels(y_test, "y_test", n=len(x_test))
    check_images(x_inv_test, "x_inv_test", dim=dim)
    if len(x_inv_test) != len(x_test):
        raise ValueError(f"x_inv_test: expected one invariance example per test image "
                         f"({len(x_test)}), got {len(x_inv_test)}")
    check_labels(y_flip_test, "y_flip_test", n=len(x_inv_test))
    fgsm_eps = check_eps(fgsm_eps, "fgsm_eps")
    pgd_eps = fgsm_eps if pgd_eps is None else check_eps(pgd_eps, "pgd_eps")
    step_size = _resolve_pgd(pgd_eps, pgd_steps, pgd_step_size)
    rng = np.random.default_rng(0) if rng is None else rng

    if fgsm_clamp == "pixels":
        x_fgsm = attacks.fgsm(params, x_test, y_test, fgsm_eps, net=net)
    else:  # theirs: eps and the clamp in normalised units
        x_fgsm = authors_code.fgsm(params, x_test, y_test, eps=fgsm_eps / params["input_std"],
                                   clamp=fgsm_clamp, net=net)
    x_pgd = attacks.pgd(params, x_test, y_test, pgd_eps, pgd_steps, step_size, rng, net=net)
    pred_inv = net.predict(params, x_inv_test)  # scored against two labels below
    result = {
        "clean": score(net.predict(params, x_test), y_test),
        "fgsm": score(net.predict(params, x_fgsm), y_test),
        "pgd": score(net.predict(params, x_pgd), y_test),
        "invariance_source": score(pred_inv, y_test),
        "invariance_flipped": score(pred_inv, y_flip_test),
    }
    if fgsm_clamp != "pixels" or pgd_eps != fgsm_eps:  # an FGSM PGD can be compared with
        x_same = attacks.fgsm(params, x_test, y_test, pgd_eps, net=net)
        result["fgsm_at_pgd_eps"] = score(net.predict(params, x_same), y_test)
    result.update(human_agreement(params, net))
    same_eps = result.get("fgsm_at_pgd_eps", result["fgsm"])
    result["fgsm_pgd_gap"] = {"points": same_eps["percent"] - result["pgd"]["percent"]}
    return result


def overfitting_warning(results, gap=OVERFITTING_GAP):
    """A sentence if PGD accuracy falls more than ``gap`` points below FGSM accuracy, else ''."""
    fgsm = results.get("fgsm_at_pgd_eps", results["fgsm"])  # at PGD's budget
    points = fgsm["percent"] - results["pgd"]["percent"]
    if points <= gap:
        return ""
    return (f"PGD accuracy {results['pgd']['percent']:.1f}% is {points:.1f} points below FGSM "
            f"accuracy {fgsm['percent']:.1f}%: the model resists the one-step attack "
            f"far better than the perturbation itself -- the mark of catastrophic overfitting "
            f"(or other gradient masking); its FGSM column overstates its robustness")


def accuracy_vs_eps(params, x, y, eps_list, attack="fgsm", rng=None, pgd_steps=10,
                    pgd_step_size=None, net=network):
    """Accuracy under an attack at each budget in eps_list (for the accuracy-vs-eps curves).

    Parameters
    ----------
    attack : "fgsm" or "pgd"
    rng : np.random.Generator for PGD (default: seed 0); each eps draws from it in turn
    pgd_step_size : None -> 2.5 * eps / steps for each eps

    Returns
    -------
    list of dict(eps, percent, correct, total), in the order of eps_list
    """
    if attack not in ("fgsm", "pgd"):
        raise ValueError(f"attack: expected 'fgsm' or 'pgd', got {attack!r}")
    check_images(x, "x", dim=network.input_dim(params))
    check_labels(y, "y", n=len(x))
    eps_list = [check_eps(e, "eps_list") for e in eps_list]
    rng = np.random.default_rng(0) if rng is None else rng
    curve = []
    for eps in eps_list:
        if attack == "fgsm":
            x_adv = attacks.fgsm(params, x, y, eps, net=net)
        else:
            x_adv = attacks.pgd(params, x, y, eps, pgd_steps,
                                _resolve_pgd(eps, pgd_steps, pgd_step_size), rng, net=net)
        curve.append({"eps": eps, **score(net.predict(params, x_adv), y)})
    return curve
