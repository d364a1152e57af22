"""The statistics every comparison in tinyadv's tables uses: one module, one definition each.

Two kinds of noise stand between a table's difference and a finding:

- **Training noise** (seeds). Retraining with another seed moves every column. The test is
  Welch's t-test on the per-seed values of the two rows (``welch``): the difference of the
  means, its 95% confidence interval (Welch-Satterthwaite degrees of freedom) and the
  two-sided p-value.
- **Image noise** (the test set). Two models scored on the *same* images are compared image
  by image (``paired_images``): for image i, d_i = (share of row A's seeds right on i) -
  (share of row B's seeds right on i); the mean of d_i is the difference of the two rows'
  mean accuracies, and a one-sample t-test over the images gives its interval and p. It
  says whether another sample of images would show the difference, with these trained
  networks fixed; it knows nothing of the seeds.

A *family* is the set of comparisons that answer one question (e.g. "does a row change the
invariance columns against the Baseline?"). Inside a named family, p-values are corrected
with Holm's step-down method (``holm``), which keeps the chance of any false positive in the
family at 5% whatever the tests' dependence. A family marked *exploratory* (the sweep:
dozens of settings chosen to look for an effect) is not corrected, and says so.

**Beyond the noise** (``beyond_noise``), the one meaning of the phrase in tinyadv: the
seed-level difference is significant at 5% -- its p-value, Holm-corrected inside a corrected
family, below 0.05, which for an uncorrected family is the same as its 95% interval excluding
0 -- and, where the two rows were scored on the same images, the paired per-image test is too.
Anything else is "within the noise", whichever way its mean points.

Confidence intervals are per comparison (95%, not widened by Holm); the p beside them is
the corrected one where the family is corrected, and printed as such.
"""
import math

import numpy as np
from scipy import stats as _scipy_stats

__all__ = ["welch", "paired_images", "paired_from_counts", "difference_counts", "holm",
           "correct_family", "beyond_noise", "format_p", "format_ci", "format_diff",
           "comparison_text", "ALPHA", "CONFIDENCE"]

ALPHA = 0.05
CONFIDENCE = 0.95


def _values(values, name):
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or len(array) < 1 or not np.all(np.isfinite(array)):
        raise ValueError(f"{name}: expected a 1-d sequence of finite numbers, got {values!r}")
    return array


def welch(a, b, confidence=CONFIDENCE):
    """Welch's two-sample t-test of mean(a) - mean(b), with its confidence interval.

    Parameters
    ----------
    a, b : sequences of per-seed values (>= 2 each), e.g. accuracies in %

    Returns
    -------
    dict(test="welch", n=(len(a), len(b)), diff, ci=(low, high), p, df). When neither
    sample varies, the test is undefined: p and ci are None, df is 0.
    """
    a, b = _values(a, "a"), _values(b, "b")
    if len(a) < 2 or len(b) < 2:
        raise ValueError(f"welch: expected at least two values on each side, got {len(a)} "
                         f"and {len(b)}")
    diff = float(a.mean() - b.mean())
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    se = math.sqrt(va + vb)
    if se == 0.0:
        return {"test": "welch", "n": (len(a), len(b)), "diff": diff, "ci": None, "p": None,
                "df": 0.0}
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    t = diff / se
    p = float(2.0 * _scipy_stats.t.sf(abs(t), df))
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2.0, df)) * se
    return {"test": "welch", "n": (len(a), len(b)), "diff": diff,
            "ci": (diff - half, diff + half), "p": p, "df": float(df)}


def difference_counts(correct_a, correct_b):
    """How many images have each per-image difference, as integers (the exact summary the
    paired test needs, small enough to commit as data).

    Parameters
    ----------
    correct_a : (S_a, N) bool, row A's seeds right (True) or wrong on each of N images
    correct_b : (S_b, N) bool, row B's seeds on the same N images, in the same order

    Returns
    -------
    dict(denominator=S_a*S_b, counts={k: number of images}), where image i's difference
    d_i = mean_s a[s, i] - mean_s b[s, i] = k / denominator
    """
    a, b = np.asarray(correct_a, dtype=bool), np.asarray(correct_b, dtype=bool)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or a.shape[1] == 0:
        raise ValueError(f"correct_a, correct_b: expected (seeds, images) arrays over the same "
                         f"images, got shapes {a.shape} and {b.shape}")
    numerators = a.sum(axis=0) * b.shape[0] - b.sum(axis=0) * a.shape[0]  # (N,) integers
    keys, counts = np.unique(numerators, return_counts=True)
    return {"denominator": int(a.shape[0] * b.shape[0]),
            "counts": {int(k): int(c) for k, c in zip(keys, counts)}}


def paired_from_counts(counts, confidence=CONFIDENCE):
    """The paired per-image t-test from ``difference_counts``'s summary (see paired_images).

    Returns
    -------
    dict(test="paired images", n=number of images, diff (in %), ci (in %), p, df). When
    every image has the same difference, p and ci are None.
    """
    denominator = counts["denominator"]
    items = sorted((int(k), int(c)) for k, c in counts["counts"].items())
    if denominator < 1 or not items or any(c < 0 for _, c in items):
        raise ValueError(f"counts: expected a positive denominator and image counts, got {counts!r}")
    values = np.array([k for k, _ in items], dtype=np.float64) * (100.0 / denominator)
    weights = np.array([c for _, c in items], dtype=np.float64)
    n = int(weights.sum())
    if n < 2:
        raise ValueError(f"counts: expected at least two images, got {n}")
    mean = float((values * weights).sum() / n)
    var = float((weights * (values - mean) ** 2).sum() / (n - 1))
    se = math.sqrt(var / n)
    if se == 0.0:
        return {"test": "paired images", "n": n, "diff": mean, "ci": None, "p": None,
                "df": float(n - 1)}
    t = mean / se
    p = float(2.0 * _scipy_stats.t.sf(abs(t), n - 1))
    half = float(_scipy_stats.t.ppf(0.5 + confidence / 2.0, n - 1)) * se
    return {"test": "paired images", "n": n, "diff": mean, "ci": (mean - half, mean + half),
            "p": p, "df": float(n - 1)}


def paired_images(correct_a, correct_b, confidence=CONFIDENCE):
    """Paired per-image t-test of row A's accuracy minus row B's on the same images.

    d_i = (share of A's seeds right on image i) - (share of B's seeds right on it), in %;
    the test is a one-sample t-test of mean(d) = 0 over the N images. Equals
    ``paired_from_counts(difference_counts(correct_a, correct_b))``.
    """
    return paired_from_counts(difference_counts(correct_a, correct_b), confidence)


def holm(p_values):
    """Holm's step-down adjusted p-values, in the order given (None stays None).

    Sort the m defined p-values ascending, p_(1) <= ... <= p_(m); the adjusted value of
    p_(j) is max over i <= j of min(1, (m - i + 1) * p_(i)). Rejecting where the adjusted
    value is below alpha keeps the family-wise error rate at alpha.
    """
    defined = [(p, i) for i, p in enumerate(p_values) if p is not None]
    m = len(defined)
    adjusted = [None] * len(p_values)
    running = 0.0
    for rank, (p, i) in enumerate(sorted(defined)):
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p_values: expected values in [0, 1], got {p}")
        running = max(running, min(1.0, (m - rank) * p))
        adjusted[i] = running
    return adjusted


def correct_family(comparisons, corrected=True):
    """Add ``p_family`` to each comparison dict: Holm-adjusted inside the family when
    ``corrected``, else the p itself (an exploratory family). Returns the list."""
    p_values = [c["p"] for c in comparisons]
    adjusted = holm(p_values) if corrected else p_values
    for comparison, p in zip(comparisons, adjusted):
        comparison["p_family"] = p
        comparison["corrected"] = bool(corrected)
    return comparisons


def beyond_noise(seeds, images=None):
    """The one definition (module docstring): the seed-level comparison significant at 5%
    (its family-corrected p when it has one) and, when given, the paired per-image one too."""
    def significant(c):
        p = c.get("p_family", c["p"])
        return p is not None and p < ALPHA
    return significant(seeds) and (images is None or significant(images))


def format_p(p):
    """Two significant digits ("0.027", "0.20", "1.0"); "< 0.001" below that; "--" undefined."""
    if p is None:
        return "--"
    if p < 0.001:
        return "< 0.001"
    return f"{p:#.2g}"


def format_diff(x):
    """A signed difference in points, two decimals, with a true minus sign."""
    return f"{x:+.2f}".replace("-", "−")


def format_ci(ci):
    """"[−0.90, +6.40]" for a 95% interval in points; "--" when undefined."""
    if ci is None:
        return "--"
    return f"[{format_diff(ci[0])}, {format_diff(ci[1])}]"


def comparison_text(c):
    """"+2.75, 95% CI [−0.90, +6.40], p = 0.094" (p_family, named Holm, when corrected)."""
    p = c.get("p_family", c["p"])
    label = "p (Holm)" if c.get("corrected") and c.get("p_family") is not None else "p"
    p_text = format_p(p)
    p_text = f"{label} {p_text}" if p_text.startswith("<") else f"{label} = {p_text}"
    return f"{format_diff(c['diff'])}, 95% CI {format_ci(c['ci'])}, {p_text}"
