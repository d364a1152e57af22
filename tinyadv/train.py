"""Training: one frozen TrainConfig and a loop that reads top to bottom.

``train`` is the loop; each of its steps (paper Eq. 2, see objective.py) is
  1. ``draw_batch``: the anchors x (N, 784) with labels y, and their invariance examples
     x'' (MLI positives, protocol below) -- together a ``Batch``;
  2. ``train_step``: x' = FGSM(x), the sensitivity positives (Def. 1); the loss and its
     gradients, term by term (objective.objective); one optimiser step.
``train(..., step=...)`` runs another step with the same signature instead: the lab hands
in one that computes the same numbers faster (tinyadv/fast/step.py), and one that does
what the paper's authors' code did instead (authors_code.py). ``on_step`` and ``on_epoch``
hooks let a caller watch the run (lesson 08 measures PGD accuracy every few steps) without
copying the loop.

MLI protocols (the two readings of "invariance accuracy" that evaluate.py scores):
  source -- the paper's: the positive is the anchor's own invariance example, so the model is
            pulled to keep calling it the *source* class; negatives are other anchors.
  oracle -- the positive is an invariance example whose *flipped* label is the anchor's class;
            its negative is that example's own source image (eps away in pixels, but of
            another class).
"""
import dataclasses
import math
import time
from dataclasses import dataclass

import numpy as np

from . import attacks, mlp, network, objective
from .data import iterate_minibatches
from .optim import make_optimizer

__all__ = ["TrainConfig", "MODELS", "model_config", "OraclePositives", "Batch", "draw_batch",
           "learning_rate", "train_step", "train", "epoch_line"]


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run of the paper's step reads."""

    # The network: "mlp" (its shape from sizes, init and embed_dim) or "cnn", the paper's
    # authors' CNN (cnn.py: fixed layers, a 4-unit signed embedding, PyTorch's init).
    arch: str = "mlp"
    sizes: tuple = (784, 256, 256, 10)  # MLP layer widths: input, hidden..., classes
    init: str = "uniform"  # +-1/sqrt(fan_in) (PyTorch's nn.Linear); "he": N(0, 2/fan_in), lesson 08
    embed_dim: int = 0  # width of a linear (signed) embedding layer before the head; 0: none,
    # h is then the last hidden ReLU layer (mlp.embedding_width gives h's width either way)
    input_norm: str = "none"  # "authors": (x - 0.1307) / 0.3081 first (network.py)
    # The loss (objective.py): cross-entropy on "clean+fgsm" (50/50), "fgsm" images only, or
    # "clean+invariance" (50/50, the invariance examples with the anchors' labels).
    ce_on: str = "clean+fgsm"
    adversarial: bool = True  # make FGSM images x' (for the CE and MLS); False: none
    fgsm_eps: float = 0.1  # FGSM l-inf budget in [0, 1] pixel units (0.1 = 25.5/255)
    margin: float = 0.05  # triplet margin m (angular distance)
    lambda_sens: float = 0.0  # lambda1: weight of the sensitivity (FGSM) triplet, MLS
    lambda_inv: float = 0.0  # lambda2: weight of the invariance triplet, MLI
    lambda_norm: float = 0.0  # lambda3: weight of the feature-norm term
    negatives: str = "hardest"  # "hardest" (closest other-class anchor) or "random"
    protocol: str = "source"  # MLI positives: "source" (paper) or "oracle" (see module doc)
    # The optimisation.
    optimizer: str = "adam"  # "adam" or "sgd" (momentum 0.9)
    lr: float = 2e-3  # peak learning rate
    lr_schedule: str = "cosine"  # "cosine": decay lr to 0 over training (per step); "constant"
    batch_size: int = 128  # anchors per step
    epochs: int = 8  # passes over the training set
    seed: int = 0  # seeds init, batch order, negatives and oracle positives

    def __post_init__(self):
        choices = {"arch": network.ARCHS, "init": mlp.INITS,
                   "input_norm": tuple(network.INPUT_NORMS), "ce_on": objective.CE_ON,
                   "negatives": ("hardest", "random"), "protocol": ("source", "oracle"),
                   "optimizer": ("adam", "sgd"), "lr_schedule": ("cosine", "constant")}
        for name, allowed in choices.items():
            _require(getattr(self, name) in allowed, name, f"one of {allowed}", self)
        for name, low in (("embed_dim", 0), ("batch_size", 2), ("epochs", 0), ("seed", 0)):
            value = getattr(self, name)
            _require(isinstance(value, int) and not isinstance(value, bool) and value >= low,
                     name, f"an integer >= {low}", self)
        for name, high in (("fgsm_eps", 1), ("margin", math.inf), ("lambda_sens", math.inf),
                           ("lambda_inv", math.inf), ("lambda_norm", math.inf)):
            _require(0 <= getattr(self, name) <= high, name, f"a number in [0, {high}]", self)
        _require(self.lr > 0, "lr", "a positive number", self)
        _require(isinstance(self.adversarial, bool), "adversarial", "true or false", self)
        _require(len(self.sizes) >= 3 and self.sizes[0] == 784, "sizes",
                 "(784, hidden..., classes)", self)
        _require(self.arch == "mlp" or self.init == "uniform", "init",
                 "'uniform' with arch 'cnn' (the CNN has PyTorch's initialisation only)", self)
        _require(self.adversarial or self.ce_on != "fgsm", "ce_on",  # nothing to train on
                 "'clean+fgsm' or 'clean+invariance' when adversarial is false", self)
        object.__setattr__(self, "sizes", tuple(int(s) for s in self.sizes))

    @classmethod
    def from_dict(cls, values):
        """Build a config from a dict; unknown keys are an error, not silently ignored."""
        known = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; expected some of {known}")
        return cls(**values)

    def replace(self, **changes):
        """A copy with some fields changed (unknown keys are an error)."""
        return TrainConfig.from_dict({**dataclasses.asdict(self), **changes})

    @property
    def uses_invariance(self):
        """Does a step read invariance examples (the MLI triplet, or CE on them)?"""
        return self.lambda_inv > 0 or self.ce_on == "clean+invariance"

    def terms(self):
        """The terms of paper Eq. 2 a training step with this config computes, each with the
        image groups it reads (objective.eq2_terms)."""
        return objective.eq2_terms(
            adversarial=self.adversarial, ce_on=self.ce_on, lambda_sens=self.lambda_sens,
            lambda_inv=self.lambda_inv, lambda_norm=self.lambda_norm,
            inv_negatives=self.protocol == "oracle")


# Table 1's rows. Weights from the paper's authors' public configuration: margin 0.05,
# lambda1 = lambda2 = 0.5, lambda3 = 1e-3, hardest different-class negative in the batch.
MODELS = {
    "baseline": dict(),
    "baseline+mls": dict(lambda_sens=0.5, lambda_norm=1e-3),
    "baseline+mls+mli": dict(lambda_sens=0.5, lambda_inv=0.5, lambda_norm=1e-3, protocol="source"),
    "baseline+mls+mli(oracle)": dict(lambda_sens=0.5, lambda_inv=0.5, lambda_norm=1e-3,
                                     protocol="oracle"),
}


def _require(ok, name, expected, config):
    if not ok:
        raise ValueError(f"{name}: expected {expected}, got {getattr(config, name)!r}")


def model_config(model, base=None):
    """The TrainConfig of one of Table 1's rows (MODELS), on top of ``base``."""
    if model not in MODELS:
        raise ValueError(f"model: expected one of {list(MODELS)}, got {model!r}")
    return (base or TrainConfig()).replace(**MODELS[model])


class OraclePositives:
    """Draws, for anchors of class c, invariance examples whose flipped label is c.

    The examples are grouped by flipped label once (a stable argsort), so a batch is drawn with
    a handful of vectorized operations: start of the class's block + a random offset in it.
    """

    def __init__(self, y_flip):
        self.order = np.argsort(y_flip, kind="stable")
        counts = np.bincount(y_flip, minlength=10)
        if np.any(counts == 0):
            raise ValueError(f"y_flip: every class needs at least one invariance example flipped "
                             f"to it, got counts {counts.tolist()}")
        self.counts = counts
        self.starts = np.concatenate([[0], np.cumsum(counts)[:-1]])

    def draw(self, y, rng):
        """Indices j (into the invariance set) with y_flip[j] == y[i], one per anchor."""
        offsets = (rng.random(len(y)) * self.counts[y]).astype(np.int64)  # uniform in each block
        return self.order[self.starts[y] + offsets]


@dataclass(frozen=True)
class Batch:
    """One step's images: the anchors and the invariance examples the objective pairs them with."""

    x: np.ndarray  # (N, 784) anchors x_a
    y: np.ndarray  # (N,) their labels
    x_inv: np.ndarray = None  # (N, 784) invariance positives x''_p (MLI), or None
    x_inv_neg: np.ndarray = None  # (N, 784) negatives of the MLI triplet (oracle), or None


def draw_batch(config, idx, X, y, x_inv=None, oracle=None, rng=None):
    """The Batch of the training images at ``idx``.

    Given the invariance examples ``x_inv``, the batch carries them: in the ``source``
    protocol each anchor's own invariance example x_inv[idx]; in the ``oracle`` protocol
    examples whose flipped label is the anchor's class (``oracle``, an OraclePositives, draws
    them with ``rng``), with their source images as the MLI negatives.
    """
    if x_inv is None:
        return Batch(X[idx], y[idx])
    if config.protocol == "source":
        return Batch(X[idx], y[idx], x_inv=x_inv[idx])  # the anchor's own invariance example
    j = oracle.draw(y[idx], rng)  # examples flipped *to* the anchor's class ...
    return Batch(X[idx], y[idx], x_inv=x_inv[j], x_inv_neg=X[j])  # ... and their sources


def learning_rate(config, step, total_steps):
    """The learning rate of step ``step`` (0, 1, ...) of ``total_steps``: config.lr, decayed to
    0 along a half cosine when config.lr_schedule is "cosine" (large steps early, small ones
    to settle)."""
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1 + math.cos(math.pi * step / total_steps))
    return config.lr


def train_step(params, opt, config, batch, rng):
    """One optimisation step of paper Eq. 2 on a Batch; returns the dict of loss terms.

    ``rng`` draws the negatives when config.negatives is "random".
    """
    x_adv = None
    if config.adversarial:  # the sensitivity examples, Def. 1: x'_p = FGSM(x_a)
        x_adv = attacks.fgsm(params, batch.x, batch.y, config.fgsm_eps)
    if config.negatives == "hardest":
        neg_index = "hardest"  # mined inside the objective, from this step's embeddings
    else:
        neg_index = objective.random_negatives(batch.y, rng)
    _, grads, terms = objective.objective(  # paper Eq. 2, term by term
        params, batch.x, batch.y, x_adv=x_adv, x_inv=batch.x_inv, x_inv_neg=batch.x_inv_neg,
        neg_index=neg_index, lambda_sens=config.lambda_sens if config.adversarial else 0.0,
        lambda_inv=config.lambda_inv, lambda_norm=config.lambda_norm, margin=config.margin,
        ce_on=config.ce_on)
    opt.step(params, grads)
    return terms


def train(config, X, y, x_inv=None, y_flip=None, log=print, on_step=None, on_epoch=None, *,
          step=train_step):
    """Train one model.

    Parameters
    ----------
    config : TrainConfig
    X, y : training images (N, 784) float32 and labels (N,)
    x_inv, y_flip : the training set's invariance examples (aligned with X) and their flipped
        labels, for a step that reads them (config.uses_invariance); None otherwise
    log : where progress lines go (None for silence)
    on_step : None, or called as on_step(step, params, terms) after every step (step = steps
        taken so far, 1, 2, ...; terms = that step's loss terms)
    on_epoch : None, or called as on_epoch(epoch, params, record) after every epoch, with
        the epoch's entry of ``history``; what it returns (a str, or None) is appended to the
        epoch's log line
    step : the training step, ``train_step``'s signature: this module's (the default) or one
        the caller hands in (the lab's faster one, fast/step.py; the authors', authors_code.py)

    Returns
    -------
    params : dict of float32 arrays
    history : list of per-epoch dicts: the mean over steps of each loss term and of each
        triplet's fraction of active hinges (active_sens, active_inv), train accuracy, seconds
    """
    if config.uses_invariance and (x_inv is None or y_flip is None):
        raise ValueError("x_inv, y_flip: this config's step reads invariance examples "
                         "(lambda_inv > 0 or ce_on='clean+invariance'), got None")
    rng = np.random.default_rng(config.seed)
    params = network.init_params(config, rng)  # the MLP or the CNN, as config.arch says
    opt = make_optimizer(config.optimizer, params, config.lr)
    oracle = OraclePositives(y_flip) if x_inv is not None and config.protocol == "oracle" else None
    steps_per_epoch = len(X) // config.batch_size
    history, start = [], time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        epoch_start, sums = time.perf_counter(), {}
        for i, idx in enumerate(iterate_minibatches(len(X), config.batch_size, rng, drop_last=True)):
            done = (epoch - 1) * steps_per_epoch + i  # steps taken before this one
            opt.lr = learning_rate(config, done, config.epochs * steps_per_epoch)
            terms = step(params, opt, config, draw_batch(config, idx, X, y, x_inv, oracle, rng), rng)
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            if on_step is not None:
                on_step(done + 1, params, terms)
        record = {k: v / max(1, steps_per_epoch) for k, v in sums.items()}
        record.update(epoch=epoch, train_acc=100.0 * record.pop("clean_accuracy", 0.0),
                      seconds=time.perf_counter() - epoch_start)
        history.append(record)
        extra = on_epoch(epoch, params, record) if on_epoch is not None else None
        if log is not None:
            left = (time.perf_counter() - start) / epoch * (config.epochs - epoch)
            log(epoch_line(record, config.epochs, left, extra))
    return params, history


def epoch_line(record, epochs, seconds_left, extra=None):
    """The progress line of one epoch's ``history`` record."""
    return (f"  epoch {record['epoch']}/{epochs}  loss {record['total']:.4f} "
            f"(ce {record['ce']:.4f}, sens {record['triplet_sens']:.4f} "
            f"[{record['active_sens']:.0%} active], inv {record['triplet_inv']:.4f} "
            f"[{record['active_inv']:.0%} active], norm {record['norm']:.2f})  "
            f"train acc {record['train_acc']:.2f}%  {record['seconds']:.1f}s, "
            f"~{seconds_left:.0f}s left" + (f" | {extra}" if extra else ""))
