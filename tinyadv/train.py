"""Training: one frozen TrainConfig and a loop that reads top to bottom.

``train`` is the loop; each of its steps (paper Eq. 2, see objective.py) is
  1. ``draw_batch``: the anchors x (N, 784) with labels y, and their invariance examples
     x'' (MLI positives, protocol below) -- together a ``Batch``;
  2. ``train_step``: x' = FGSM(x), the sensitivity positives and adversarial CE; one
     concatenated forward/backward of [x; x'; x'' (; x''_n)] for the loss and gradients;
     an optimiser step.
``on_step`` and ``on_epoch`` hooks let a caller watch the run (lesson 08 measures PGD
accuracy every few steps) without copying the loop.

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

from . import attacks, authors_code, mlp, network, objective
from .data import iterate_minibatches
from .fast import objective as fast_objective
from .optim import make_optimizer

__all__ = ["TrainConfig", "MODELS", "AUTHORS_CONFIGS", "PRESET_ROWS", "PRESETS", "PRESET_ALIASES", "preset_name", "preset_config",
           "model_config", "OraclePositives", "Batch", "draw_batch", "learning_rate", "train_step", "train", "epoch_line",
           "INVARIANCE_GENERATORS"]


INVARIANCE_GENERATORS = ("nearest", "tramer", "authors")
TRIPLETS = ("paper", "authors")
INVARIANCE_INPUTS = ("pixels", "raw255")
# Fields a TrainConfig gained after runs were saved: left out of to_dict() at their defaults.
ADDED_LATER = ("arch", "fgsm_clamp", "leak_clean_grad", "triplet", "invariance_input",
               "lambda_image_norm")


@dataclass(frozen=True)
class TrainConfig:
    # The network: "mlp" (its shape from sizes, init and embed_dim) or "cnn", the paper's
    # authors' CNN (cnn.py: fixed layers, a 4-unit signed embedding, PyTorch's init).
    arch: str = "mlp"
    sizes: tuple = (784, 256, 256, 10)  # MLP layer widths: input, hidden..., classes
    init: str = "uniform"  # +-1/sqrt(fan_in) (PyTorch's nn.Linear); "he": N(0, 2/fan_in), see README
    embed_dim: int = 0  # 0: h = last hidden ReLU layer; k > 0: a linear (signed) k-unit layer
    ce_on: str = "clean+fgsm"  # cross-entropy on "clean+fgsm" (50/50) or on "fgsm" images only
    input_norm: str = "none"  # "authors": (x - 0.1307) / 0.3081 as the network's first operation
    optimizer: str = "adam"  # "adam" or "sgd" (momentum 0.9)
    lr: float = 2e-3  # peak learning rate
    lr_schedule: str = "cosine"  # "cosine": decay lr to 0 over training (per step); "constant"
    batch_size: int = 128  # anchors per step
    epochs: int = 8  # passes over the training set
    fgsm_eps: float = 0.1  # FGSM l-inf budget in [0, 1] pixel units (0.1 = 25.5/255)
    adversarial: bool = True  # FGSM adversarial training (CE on the images ce_on names); False: clean CE
    inv_eps: float = 0.4  # l-inf budget of the label-flipping invariance examples
    inv_shifts: int = 0  # invariance generator: try reference shifts up to this many pixels
    # Which generator makes the training set's MLI positives: "nearest" (tinyadv's
    # label-flipping one, invariance.py; inv_eps and inv_shifts apply to it only), or the
    # rotation-and-shift search of Tramer et al. 2020, as published ("tramer") or as the
    # paper's authors ran it ("authors"), both at eps 0.3 (tinyadv/lab/tramer.py).
    invariance_generator: str = "nearest"
    margin: float = 0.05  # triplet margin m (angular distance)
    lambda_sens: float = 0.0  # lambda1: weight of the sensitivity (FGSM) triplet, MLS
    lambda_inv: float = 0.0  # lambda2: weight of the invariance triplet, MLI
    lambda_norm: float = 0.0  # lambda3: weight of the embedding-norm penalty
    negatives: str = "hardest"  # "hardest" (closest other-class anchor) or "random"
    protocol: str = "source"  # MLI positives: "source" (paper) or "oracle" (see module doc)
    train_size: int = 0  # use the first n training images (0 = all 60,000)
    seed: int = 0  # seeds init, batch order, negatives and oracle positives
    # What the paper's authors' code did where it differs from their paper (authors_code.py);
    # each can be switched alone. The first value of each is the paper's (and tinyadv's).
    fgsm_clamp: str = "pixels"  # FGSM clips to [0, 1] in "pixels", or "normalised" units (theirs)
    leak_clean_grad: bool = False  # True: CE(clean)'s gradient from the FGSM step is trained too
    triplet: str = "paper"  # "paper": Eq. 1-2 (objective.py); "authors": their batch-hard blocks
    invariance_input: str = "pixels"  # MLI positives in [0, 1], or "raw255": 0-255, unnormalised
    lambda_image_norm: float = 0.0  # + this * ||x_inv||: their "norm-invar" term, a constant

    def __post_init__(self):
        checks = [
            (self.arch in network.ARCHS, "arch", f"one of {network.ARCHS}"),
            (self.arch == "mlp" or self.init == "uniform", "init",
             "'uniform' with arch 'cnn' (the CNN has PyTorch's initialisation only)"),
            (self.optimizer in ("adam", "sgd"), "optimizer", "'adam' or 'sgd'"),
            (self.lr > 0, "lr", "a positive number"),
            (self.lr_schedule in ("cosine", "constant"), "lr_schedule", "'cosine' or 'constant'"),
            (isinstance(self.batch_size, int) and self.batch_size >= 2, "batch_size", "an integer >= 2"),
            (isinstance(self.epochs, int) and self.epochs >= 0, "epochs", "an integer >= 0"),
            (0 <= self.fgsm_eps <= 1, "fgsm_eps", "a number in [0, 1]"),
            (0 <= self.inv_eps <= 1, "inv_eps", "a number in [0, 1]"),
            (isinstance(self.inv_shifts, int) and self.inv_shifts >= 0, "inv_shifts", "an integer >= 0"),
            (self.margin >= 0, "margin", "a number >= 0"),
            (min(self.lambda_sens, self.lambda_inv, self.lambda_norm) >= 0, "lambda_*", "numbers >= 0"),
            (self.negatives in ("hardest", "random"), "negatives", "'hardest' or 'random'"),
            (self.protocol in ("source", "oracle"), "protocol", "'source' or 'oracle'"),
            (self.invariance_generator in INVARIANCE_GENERATORS, "invariance_generator",
             f"one of {INVARIANCE_GENERATORS}"),
            (self.input_norm in mlp.INPUT_NORMS, "input_norm", f"one of {tuple(mlp.INPUT_NORMS)}"),
            (isinstance(self.train_size, int) and self.train_size >= 0, "train_size", "an integer >= 0"),
            (isinstance(self.seed, int) and self.seed >= 0, "seed", "an integer >= 0"),
            (len(self.sizes) >= 3 and self.sizes[0] == 784, "sizes", "(784, hidden..., classes)"),
            (self.init in mlp.INITS, "init", f"one of {mlp.INITS}"),
            (isinstance(self.embed_dim, int) and not isinstance(self.embed_dim, bool)
             and self.embed_dim >= 0, "embed_dim", "an integer >= 0"),
            (self.ce_on in objective.CE_ON, "ce_on", f"one of {objective.CE_ON}"),
            # Without FGSM images there is nothing for ce_on="fgsm" to train on.
            (self.adversarial or self.ce_on == "clean+fgsm", "ce_on",
             "'clean+fgsm' when adversarial is false (there are no FGSM images)"),
            (self.fgsm_clamp in authors_code.CLAMPS, "fgsm_clamp", f"one of {authors_code.CLAMPS}"),
            (isinstance(self.leak_clean_grad, bool), "leak_clean_grad", "true or false"),
            (self.triplet in TRIPLETS, "triplet", f"one of {TRIPLETS}"),
            (self.invariance_input in INVARIANCE_INPUTS, "invariance_input",
             f"one of {INVARIANCE_INPUTS}"),
            (self.lambda_image_norm >= 0, "lambda_image_norm", "a number >= 0"),
            # Their FGSM steps (and clamps) in normalised units: it needs their normalisation.
            (self.input_norm == "authors" or (self.fgsm_clamp == "pixels"
                                              and not self.leak_clean_grad), "input_norm",
             "'authors' with fgsm_clamp='normalised' or leak_clean_grad (the authors' FGSM "
             "works on normalised images)"),
            (self.triplet == "paper" or self.protocol == "source", "protocol",
             "'source' with triplet='authors' (their triplet pairs each image with its own)"),
        ]
        for ok, name, expected in checks:
            if not ok:
                raise ValueError(f"{name}: expected {expected}, got {getattr(self, name, None)!r}")
        object.__setattr__(self, "sizes", tuple(int(s) for s in self.sizes))

    @classmethod
    def from_dict(cls, values):
        """Build a config from a dict; unknown keys are an error, not silently ignored."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; expected some of {sorted(known)}")
        return cls(**values)

    @classmethod
    def parse_field(cls, name, text):
        """The value of field ``name`` written as ``text`` on a command line, e.g.
        ("epochs", "8") -> 8, ("adversarial", "false") -> False, ("sizes", "784-64-10")."""
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        if name not in defaults:
            raise ValueError(f"unknown config field {name!r}; expected one of {sorted(defaults)}")
        kind = type(defaults[name])
        try:
            if kind is bool:
                return {"true": True, "1": True, "false": False, "0": False}[text.lower()]
            if kind is tuple:
                return tuple(int(part) for part in text.split("-"))
            return kind(text)
        except (KeyError, ValueError) as err:
            expected = {bool: "true or false", tuple: "widths joined by '-', e.g. 784-256-10",
                        int: "an integer", float: "a number", str: "a word"}[kind]
            raise ValueError(f"{name}: expected {expected}, got {text!r}") from err

    def to_dict(self):
        """The fields as a dict -- without those added since runs were first saved while they
        hold their default (ADDED_LATER), so that a saved run keeps its key
        (experiments.run_key) and is reused."""
        d = dataclasses.asdict(self)
        d["sizes"] = list(d["sizes"])
        defaults = TrainConfig()
        for name in ADDED_LATER:
            if d[name] == getattr(defaults, name):
                del d[name]
        return d

    def replace(self, **changes):
        """A copy with some fields changed (unknown keys are an error)."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    @property
    def uses_invariance(self):
        """Does a step read invariance examples (the MLI triplet, or their constant term)?"""
        return self.lambda_inv > 0 or self.lambda_image_norm > 0

    def terms(self):
        """The terms of paper Eq. 2 a training step with this config computes, each with the
        image groups it reads (objective.eq2_terms; train_step passes the same settings)."""
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


# The paper's authors' logged configurations (their configs/*.ini), the rows of the
# authors-code preset, with the Table 1 row each was printed as (data/ovalle2022_logs/).
AUTHORS_CONFIGS = {
    "nll-sensitivity": dict(),  # the Baseline: NLL on FGSM images (+ the leaked NLL(clean))
    "nll-ml-sensitivity": dict(lambda_sens=0.5, lambda_norm=1e-3),  # + MLS
    "nll-sensitivity-norm-invar": dict(lambda_image_norm=0.5),  # printed as "+ MLS + MLI"
    "nll-ml-invariance": dict(lambda_inv=0.5, lambda_norm=1e-3),  # the MLI triplet: 9.90
    "nll-ml-sens-invar": dict(lambda_sens=0.5, lambda_inv=0.5, lambda_norm=1e-3),  # not logged
}
# The epochs of the authors-code preset: what this 2-core machine affords (README).
AUTHORS_CODE_EPOCHS = 10


# Presets: named bundles of TrainConfig fields, applied on top of the defaults (flags still
# override them). "default" is TrainConfig() itself. "paper-4d" is the paper's Eq. 2 with the
# embedding of the authors' network: a 4-unit linear (signed) embedding before the head, CE
# on FGSM images only, PyTorch's uniform init (--set arch=cnn gives it their CNN).
PRESETS = {
    "default": dict(),
    "paper-4d": dict(embed_dim=4, ce_on="fgsm", init="uniform"),
    # What the authors' code ran (authors_code.py): their CNN on normalised inputs, their FGSM
    # (0.01 in normalised units = 0.003081 in pixels, clamped in normalised units) whose
    # CE(clean) gradient their loop also trained, their triplet and norms, the invariance
    # images of their attack fed as saved (0..255), Adam 1e-4, batch 256. Its rows are their
    # configurations (AUTHORS_CONFIGS). Their 200 epochs are --epochs 200.
    "authors-code": dict(arch="cnn", embed_dim=4, input_norm="authors", ce_on="fgsm",
                         fgsm_eps=0.01 * 0.3081, fgsm_clamp="normalised", leak_clean_grad=True,
                         triplet="authors", invariance_input="raw255",
                         invariance_generator="authors", lr=1e-4, lr_schedule="constant",
                         batch_size=256, epochs=AUTHORS_CODE_EPOCHS),
}
# Earlier names that still work, and the preset each now names. "authors" was paper-4d's
# name, but their code did more than that preset does.
PRESET_ALIASES = {"authors": "paper-4d"}


def preset_name(name):
    """The preset a name stands for (an alias's new name); unknown names are errors."""
    name = PRESET_ALIASES.get(name, name)
    if name not in PRESETS:
        raise ValueError(f"preset: expected one of {list(PRESETS) + list(PRESET_ALIASES)}, "
                         f"got {name!r}")
    return name


def preset_config(name, **overrides):
    """TrainConfig of a preset, with some fields overridden (unknown names are errors)."""
    return TrainConfig().replace(**{**PRESETS[preset_name(name)], **overrides})


# The rows each preset trains: Table 1's, or for authors-code the authors' configurations.
PRESET_ROWS = {"default": MODELS, "paper-4d": MODELS, "authors-code": AUTHORS_CONFIGS}


def model_config(model, base=None, rows=MODELS):
    """The TrainConfig of one row (of Table 1, or of ``rows``), on top of ``base``."""
    if model not in rows:
        raise ValueError(f"model: expected one of {list(rows)}, got {model!r}")
    return (base or TrainConfig()).replace(**rows[model])


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

    With the invariance term on, the MLI positives come with it: in the ``source`` protocol
    each anchor's own invariance example x_inv[idx]; in the ``oracle`` protocol examples whose
    flipped label is the anchor's class (``oracle``, an OraclePositives, draws them with
    ``rng``), with their source images as the MLI negatives.
    """
    if not config.uses_invariance:
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

    ``rng`` draws the negatives when config.negatives is "random". With the authors' choices
    (``fgsm_clamp``, ``leak_clean_grad``, ``triplet="authors"``) the step is what their code
    did instead: their FGSM, their loss (authors_code.py), and CE(clean)'s gradient added.
    """
    # The anchors go through the network once: FGSM and the objective share this forward.
    anchors = network.forward(params, batch.x)  # (logits (N, C), h (N, K), cache)
    x_adv, leaked = None, None
    if config.adversarial and (config.fgsm_clamp == "normalised" or config.leak_clean_grad):
        # Their FGSM: eps and the clamp in normalised units; its backward of CE(clean) also
        # gives the parameters' gradient, which their loop never zeroed (leak_clean_grad).
        std = mlp.INPUT_NORMS[config.input_norm][1]
        x_adv, _, clean_grads = authors_code.fgsm_with_leak(
            params, batch.x, batch.y, eps=config.fgsm_eps / std, clamp=config.fgsm_clamp,
            forward=anchors)
        leaked = clean_grads if config.leak_clean_grad else None
    elif config.adversarial:
        x_adv = attacks.fgsm(params, batch.x, batch.y, config.fgsm_eps, forward=anchors)  # x'_p
    lambda_sens = config.lambda_sens if x_adv is not None else 0.0
    if config.triplet == "authors":
        _, grads, terms = authors_code.objective(
            params, batch.x, batch.y, x_adv=x_adv, x_inv=batch.x_inv, lambda_sens=lambda_sens,
            lambda_inv=config.lambda_inv, lambda_norm=config.lambda_norm, margin=config.margin,
            ce_on=config.ce_on, lambda_image_norm=config.lambda_image_norm,
            anchor_forward=anchors)
    else:
        if config.negatives == "hardest":
            neg_index = "hardest"  # mined inside the objective, from this step's embeddings
        else:
            neg_index = objective.random_negatives(batch.y, rng)
        _, grads, terms = fast_objective.objective(  # = objective.objective, with less work
            params, batch.x, batch.y, x_adv=x_adv, x_inv=batch.x_inv,
            x_inv_neg=batch.x_inv_neg, neg_index=neg_index, lambda_sens=lambda_sens,
            lambda_inv=config.lambda_inv, lambda_norm=config.lambda_norm, margin=config.margin,
            ce_on=config.ce_on, anchor_forward=anchors)
    if leaked is not None:  # their loop: CE(clean)'s gradient is still in every .grad
        for key, grad in leaked.items():
            grads[key] = grads[key] + grad
    opt.step(params, grads)
    return terms


def train(config, X, y, x_inv=None, y_flip=None, log=print, on_step=None, on_epoch=None):
    """Train one model.

    Parameters
    ----------
    config : TrainConfig
    X, y : training images (N, 784) float32 and labels (N,)
    x_inv, y_flip : the training set's invariance examples (aligned with X) and their flipped
        labels; needed when config.lambda_inv > 0
    log : where progress lines go (None for silence)
    on_step : None, or called as on_step(step, params, terms) after every step (step = steps
        taken so far, 1, 2, ...; terms = that step's loss terms)
    on_epoch : None, or called as on_epoch(epoch, params, record) after every epoch, with
        the epoch's entry of ``history``; what it returns (a str, or None) is appended to the
        epoch's log line

    Returns
    -------
    params : dict of float32 arrays
    history : list of per-epoch dicts: the mean over steps of each loss term and of each
        triplet's fraction of active hinges (active_sens, active_inv), train accuracy, seconds
    """
    if config.train_size:
        X, y = X[:config.train_size], y[:config.train_size]
        if x_inv is not None:
            x_inv, y_flip = x_inv[:config.train_size], y_flip[:config.train_size]
    if config.uses_invariance and (x_inv is None or y_flip is None):
        raise ValueError("x_inv, y_flip: lambda_inv > 0 needs the training invariance examples")
    rng = np.random.default_rng(config.seed)
    params = network.init_params(config, rng)  # the MLP or the CNN, as config.arch says
    if config.uses_invariance and config.invariance_input == "raw255":
        x_inv = authors_code.as_fed_raw(x_inv, params)  # their 0..255, unnormalised
    opt = make_optimizer(config.optimizer, params, config.lr)
    oracle = OraclePositives(y_flip) if config.uses_invariance and config.protocol == "oracle" else None
    total_steps = config.epochs * (len(X) // config.batch_size)
    step = 0
    history = []
    start = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        sums, steps = {}, 0
        for idx in iterate_minibatches(len(X), config.batch_size, rng, drop_last=True):
            opt.lr = learning_rate(config, step, total_steps)
            batch = draw_batch(config, idx, X, y, x_inv, oracle, rng)
            terms = train_step(params, opt, config, batch, rng)
            step += 1
            for k, v in terms.items():
                sums[k] = sums.get(k, 0.0) + v
            steps += 1
            if on_step is not None:
                on_step(step, params, terms)
        record = {k: v / max(1, steps) for k, v in sums.items()}
        record.update(epoch=epoch, train_acc=100.0 * record.pop("clean_accuracy", 0.0),
                      seconds=time.perf_counter() - epoch_start)
        history.append(record)
        extra = on_epoch(epoch, params, record) if on_epoch is not None else None
        if log is not None:
            elapsed = time.perf_counter() - start
            log(epoch_line(record, config.epochs, elapsed / epoch * (config.epochs - epoch), extra))
    return params, history


def epoch_line(record, epochs, seconds_left, extra=None):
    """The progress line of one epoch's ``history`` record."""
    return (f"  epoch {record['epoch']}/{epochs}  loss {record['total']:.4f} "
            f"(ce {record['ce']:.4f}, sens {record['triplet_sens']:.4f} "
            f"[{record['active_sens']:.0%} active], inv {record['triplet_inv']:.4f} "
            f"[{record['active_inv']:.0%} active], norm {record['norm']:.2f})  "
            f"train acc {record['train_acc']:.2f}%  {record['seconds']:.1f}s, "
            f"~{seconds_left:.0f}s left" + (f" | {extra}" if extra else ""))
