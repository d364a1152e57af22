"""What one run of the lab is, and the presets and rows the commands train.

A run is more than the paper's step reads (train.TrainConfig): where its data come from (the
invariance generator and its budget, how many training images) and, for the authors-code
preset, the authors' variant of the step (authors_code.AuthorsOptions). ``RunConfig`` holds
the three and reads as one flat set of fields, as the commands' ``--set FIELD=VALUE`` and the
saved runs' keys see it: ``config.lr``, ``config.inv_eps`` and ``config.triplet`` are fields
of its TrainConfig, its data and its authors' options.

Presets are named bundles of fields applied on top of the defaults (nanoGPT's config files,
here dicts); their rows are Table 1's (train.MODELS) or the authors' logged configurations
(AUTHORS_CONFIGS).
"""
import dataclasses
from dataclasses import dataclass, field

from ..authors_code import AuthorsOptions, authors_step
from ..fast.step import fast_train_step
from ..train import MODELS, TrainConfig

__all__ = ["DataConfig", "RunConfig", "FIELD_ORDER", "PRESETS", "PRESET_ROWS",
           "AUTHORS_CONFIGS", "AUTHORS_CODE_EPOCHS", "RETIRED_PRESETS", "preset_name",
           "preset_config", "model_config", "INVARIANCE_GENERATORS"]

INVARIANCE_GENERATORS = ("nearest", "tramer", "authors")


@dataclass(frozen=True)
class DataConfig:
    """Where a run's training data come from."""

    inv_eps: float = 0.4  # l-inf budget of the label-flipping invariance examples
    inv_shifts: int = 0  # label-flipping generator: try reference shifts up to this many pixels
    # Which generator makes the training set's MLI positives: "nearest" (tinyadv's
    # label-flipping one, invariance.py; inv_eps and inv_shifts apply to it only), or the
    # rotation-and-shift search of Tramer et al. 2020, as published ("tramer") or as the
    # paper's authors ran it ("authors"), both at eps 0.3 (tinyadv/lab/tramer.py).
    invariance_generator: str = "nearest"
    train_size: int = 0  # use the first n training images (0 = all 60,000)

    def __post_init__(self):
        checks = [(0 <= self.inv_eps <= 1, "inv_eps", "a number in [0, 1]"),
                  (_is_int(self.inv_shifts, 0), "inv_shifts", "an integer >= 0"),
                  (self.invariance_generator in INVARIANCE_GENERATORS, "invariance_generator",
                   f"one of {INVARIANCE_GENERATORS}"),
                  (_is_int(self.train_size, 0), "train_size", "an integer >= 0")]
        for ok, name, expected in checks:
            if not ok:
                raise ValueError(f"{name}: expected {expected}, got {getattr(self, name)!r}")


def _is_int(value, low):
    return isinstance(value, int) and not isinstance(value, bool) and value >= low


PARTS = {"train": TrainConfig, "data": DataConfig, "authors": AuthorsOptions}
# Every field, in the order saved runs and printed presets list them.
FIELD_ORDER = ("arch", "sizes", "init", "embed_dim", "ce_on", "input_norm", "optimizer", "lr",
               "lr_schedule", "batch_size", "epochs", "fgsm_eps", "adversarial", "inv_eps",
               "inv_shifts", "invariance_generator", "margin", "lambda_sens", "lambda_inv",
               "lambda_norm", "negatives", "protocol", "train_size", "seed", "fgsm_clamp",
               "leak_clean_grad", "triplet", "invariance_input", "lambda_image_norm")
# Fields added after runs were first saved: left out of to_dict() while at their defaults,
# so that those runs keep their keys (experiments.run_key) and are reused.
ADDED_LATER = ("arch", "fgsm_clamp", "leak_clean_grad", "triplet", "invariance_input",
               "lambda_image_norm")
PART_OF = {f.name: part for part, cls in PARTS.items() for f in dataclasses.fields(cls)}
assert set(PART_OF) == set(FIELD_ORDER)


@dataclass(frozen=True)
class RunConfig:
    """One run: the paper's step's fields, its data's, and the authors' options, read flat."""

    train: TrainConfig = field(default_factory=TrainConfig)
    data: DataConfig = field(default_factory=DataConfig)
    authors: AuthorsOptions = field(default_factory=AuthorsOptions)

    def __post_init__(self):
        self.authors.check(self.train)

    def __getattr__(self, name):  # config.lr etc.: a field of one of the three parts
        part = PART_OF.get(name)
        if part is None or part not in self.__dict__:
            raise AttributeError(f"RunConfig has no field {name!r}")
        return getattr(self.__dict__[part], name)

    @classmethod
    def from_dict(cls, values):
        """Build one from a flat dict of fields; unknown keys are an error."""
        unknown = sorted(set(values) - set(PART_OF))
        if unknown:
            raise ValueError(f"unknown config key(s) {unknown}; expected some of "
                             f"{sorted(PART_OF)}")
        parts = {part: {} for part in PARTS}
        for name, value in values.items():
            parts[PART_OF[name]][name] = value
        return cls(**{part: PARTS[part](**fields) for part, fields in parts.items()})

    def fields(self):
        """Every field, in FIELD_ORDER, sizes as a list."""
        values = {**dataclasses.asdict(self.train), **dataclasses.asdict(self.data),
                  **dataclasses.asdict(self.authors)}
        values["sizes"] = list(values["sizes"])
        return {name: values[name] for name in FIELD_ORDER}

    def to_dict(self):
        """The fields (``fields``) without those of ADDED_LATER at their defaults: the dict a
        saved run's key holds."""
        defaults = RunConfig().fields()
        return {name: value for name, value in self.fields().items()
                if not (name in ADDED_LATER and value == defaults[name])}

    def replace(self, **changes):
        """A copy with some fields changed (unknown keys are an error)."""
        return RunConfig.from_dict({**self.fields(), **changes})

    @classmethod
    def parse_field(cls, name, text):
        """The value of field ``name`` written as ``text`` on a command line, e.g.
        ("epochs", "8") -> 8, ("adversarial", "false") -> False, ("sizes", "784-64-10")."""
        defaults = RunConfig().fields()
        if name not in defaults:
            raise ValueError(f"unknown config field {name!r}; expected one of {sorted(defaults)}")
        kind = tuple if name == "sizes" else type(defaults[name])
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

    @property
    def uses_invariance(self):
        """Does the run's step read invariance examples (the paper's terms, or the authors'
        constant image norm)?"""
        return self.train.uses_invariance or self.authors.lambda_image_norm > 0

    def terms(self):
        """The terms of Eq. 2 the paper's step computes with these fields (TrainConfig.terms)."""
        return self.train.terms()

    def training_step(self):
        """The step ``train.train`` runs: the lab's fast one (fast/step.py), or the authors'
        variant (authors_code.authors_step) when any of their options is set."""
        return fast_train_step if self.authors.is_paper() else authors_step(self.authors)


# The paper's authors' logged configurations (their configs/*.ini), the rows of the
# authors-code preset, with the Table 1 row each was printed as (data/ovalle2022_logs/).
AUTHORS_CONFIGS = {
    "nll-sensitivity": dict(),  # the Baseline: NLL on FGSM images (+ the leaked NLL(clean))
    "nll-ml-sensitivity": dict(lambda_sens=0.5, lambda_norm=1e-3),  # + MLS
    "nll-sensitivity-norm-invar": dict(lambda_image_norm=0.5),  # printed as "+ MLS + MLI"
    "nll-ml-invariance": dict(lambda_inv=0.5, lambda_norm=1e-3),  # the MLI triplet: 9.90
    "nll-ml-sens-invar": dict(lambda_sens=0.5, lambda_inv=0.5, lambda_norm=1e-3),  # not logged
}
# The epochs of the authors-code preset: what a 2-core machine affords (README).
AUTHORS_CODE_EPOCHS = 10

# Presets: named bundles of fields, applied on top of the defaults (flags still override
# them). "default" is tinyadv's. "paper-4d" is the paper's Eq. 2 with the embedding of the
# authors' network: a 4-unit linear (signed) embedding before the head, CE on FGSM images
# only, PyTorch's uniform init (--set arch=cnn gives it their CNN).
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
# The rows each preset trains: Table 1's, or for authors-code the authors' configurations.
PRESET_ROWS = {"default": MODELS, "paper-4d": MODELS, "authors-code": AUTHORS_CONFIGS}
# Names no longer accepted, and what to say instead: "authors" ran paper-4d, which is not
# what the authors' code did.
RETIRED_PRESETS = {
    "authors": "--preset authors was retired because its name did not say what it ran: it "
               "was paper-4d (the paper's equations on a 4-d embedding). The authors' own "
               "procedure is authors-code. Use --preset paper-4d or --preset authors-code."}


def preset_name(name):
    """``name`` if it is a preset; a ValueError naming the choices (and, for a retired
    name, what it was) otherwise."""
    if name in RETIRED_PRESETS:
        raise ValueError(RETIRED_PRESETS[name])
    if name not in PRESETS:
        raise ValueError(f"preset: expected one of {list(PRESETS)}, got {name!r}")
    return name


def preset_config(name, **overrides):
    """The RunConfig of a preset, with some fields overridden (unknown names are errors)."""
    return RunConfig.from_dict({**PRESETS[preset_name(name)], **overrides})


def model_config(model, base, rows=MODELS):
    """The RunConfig of one row (of Table 1, or of ``rows``), on top of ``base``."""
    if model not in rows:
        raise ValueError(f"model: expected one of {list(rows)}, got {model!r}")
    return base.replace(**rows[model])
