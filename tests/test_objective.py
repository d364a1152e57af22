"""Paper Eq. 2 as a whole: every configuration of Table 1 against centred differences, and
the fast objective training calls (tinyadv/fast/objective.py) against the readable one
(tinyadv/objective.py) in every configuration training can ask for.

The objective's gradient is assembled from many pieces (one concatenated forward, four CE
and triplet and norm backwards, a scatter-add for gathered negatives); checking the whole
against the derivative of the scalar it returns catches a wrong weight, a missing 1/2, a
forgotten group or a gather without its scatter.

Every configuration is checked twice: with h the last ReLU layer (embed_dim 0) and with a
linear, signed embedding layer (embed_dim > 0, the authors' architecture).

Kinks: every |pre-activation| is kept above 1e-3 and every triplet hinge away from 0. With
ReLU embeddings the |cos| kink of Eq. 1 cannot be reached: a.b >= 0, and a.b == 0 only when
their active units are disjoint, which a step that flips no ReLU keeps so (for the same
reason an all-zero embedding row stays zero, so the zero-norm guards are locally exact too).
A signed embedding can have a.b = 0 anywhere, so there every |cos| of a triplet pair is kept
above 1e-3 as well.
"""
import inspect

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tinyadv import losses, mlp
from tinyadv.gradcheck import numerical_gradient
from tinyadv.fast.objective import fast_objective
from tinyadv.fast.objective import trained_groups
from tinyadv.objective import (CE_ON, eq2_terms, hardest_negatives, objective, random_negatives,
                               stacked_groups)

from nets import float64_params, min_abs_preactivation

# 12 examples x 8 configurations: each example differentiates the whole objective ~200 times.
GRADCHECK = settings(max_examples=12, deadline=None)
seeds = st.integers(0, 2 ** 32 - 1)
KINK_GAP = 1e-3

layer_sizes = st.tuples(st.integers(2, 6), st.lists(st.integers(2, 5), min_size=1, max_size=2),
                        st.integers(2, 3)).map(lambda t: [t[0], *t[1], t[2]])


def reference_is_accurate_enough(grads, floor=1e-3):
    """Is every gradient block either exactly zero or larger than ``floor``?

    The reference has an error of its own: the scalar L is known to ~1e-16 |L| in float64,
    so a centred difference with h = 1e-6 carries ~1e-10 |L| absolute error. For a block whose
    largest entry is below ~1e-3 that exceeds 1e-7 *relative* (seen: W1 of a [3, 3, 3, 3] net,
    max |g| 5e-4, rel_error 1.3e-7, about 1% of drawn examples). Such a block cannot be
    certified at 1e-7 by float64 differences, so the example is skipped, as near a kink. An
    exactly zero block (behind dead ReLUs) is fine: both sides are exactly 0.
    """
    return all(np.max(np.abs(g)) == 0 or np.max(np.abs(g)) > floor for g in grads.values())

# Table 1's rows and the variants the training loop can ask for.
#   x_adv: feed FGSM images; inv: None, "source" (MLI negatives from neg_index) or
#   "oracle" (MLI brings its own negatives x_inv_neg); which lambdas are non-zero.
CONFIGS = {
    "baseline, clean only": dict(x_adv=False, inv=None, sens=False, norm=False),
    "baseline, clean + FGSM": dict(x_adv=True, inv=None, sens=False, norm=False),
    "+MLS": dict(x_adv=True, inv=None, sens=True, norm=False),
    "+MLS with norm": dict(x_adv=True, inv=None, sens=True, norm=True),
    "+MLS+MLI source": dict(x_adv=True, inv="source", sens=True, norm=False),
    "+MLS+MLI source with norm": dict(x_adv=True, inv="source", sens=True, norm=True),
    "+MLS+MLI oracle": dict(x_adv=True, inv="oracle", sens=True, norm=False),
    "+MLS+MLI oracle with norm": dict(x_adv=True, inv="oracle", sens=True, norm=True),
    # The paper's authors' cross-entropy: on FGSM images only.
    "baseline, FGSM only": dict(x_adv=True, inv=None, sens=False, norm=False, ce_on="fgsm"),
    "+MLS+MLI source with norm, CE on FGSM": dict(x_adv=True, inv="source", sens=True, norm=True,
                                                  ce_on="fgsm"),
    # The counterpart of the authors' nll-invariance: CE on the invariance examples too.
    "CE on clean + invariance": dict(x_adv=False, inv=None, sens=False, norm=False,
                                     ce_on="clean+invariance", x_inv=True),
    "+MLS+MLI source with norm, CE on clean + invariance": dict(
        x_adv=True, inv="source", sens=True, norm=True, ce_on="clean+invariance"),
}
EMBED_DIMS = [0, 3]  # h = last ReLU layer; h = a linear 3-unit layer (signed)


def make_case(config, seed, sizes, n, lambdas, margin, embed_dim=0):
    """Params, inputs and keyword arguments of ``objective`` for one configuration."""
    cfg = CONFIGS[config]
    rng = np.random.default_rng(seed)
    params = float64_params(sizes, rng, embed_dim)
    d, c = sizes[0], sizes[-1]
    x = rng.random((n, d))
    y = rng.integers(0, c, size=n)
    triplets = cfg["sens"] or cfg["inv"] is not None
    if triplets:
        y[:2] = [0, 1]  # negatives need a second class in the batch
    kwargs = dict(margin=margin)
    if cfg["x_adv"]:
        kwargs["x_adv"] = np.clip(x + 0.1 * np.sign(rng.standard_normal((n, d))), 0, 1)
    if triplets:
        kwargs["neg_index"] = random_negatives(y, rng)  # duplicates exercise the scatter-add
    lambda_sens, lambda_inv, lambda_norm = lambdas
    if cfg["sens"]:
        kwargs["lambda_sens"] = lambda_sens
    if cfg["inv"] is not None:
        kwargs["x_inv"] = rng.random((n, d))
        kwargs["lambda_inv"] = lambda_inv
    if cfg["inv"] == "oracle":
        kwargs["x_inv_neg"] = rng.random((n, d))
    if cfg["norm"]:
        kwargs["lambda_norm"] = lambda_norm
    if "ce_on" in cfg:
        kwargs["ce_on"] = cfg["ce_on"]
    if cfg.get("x_inv") and "x_inv" not in kwargs:  # invariance images for the CE alone
        kwargs["x_inv"] = rng.random((n, d))
    return params, x, y, kwargs


def triplet_embeddings(params, x, kwargs):
    """(anchor, positive, negative) embeddings of every triplet the objective will form."""
    embed = lambda images: mlp.forward(params, images)[1]  # noqa: E731
    h_a = embed(x)
    triplets = []
    if kwargs.get("lambda_sens", 0):
        triplets.append((embed(kwargs["x_adv"]), h_a[kwargs["neg_index"]]))
    if kwargs.get("lambda_inv", 0):
        neg = kwargs.get("x_inv_neg")
        triplets.append((embed(kwargs["x_inv"]),
                         h_a[kwargs["neg_index"]] if neg is None else embed(neg)))
    return [(h_a, h_p, h_n) for h_p, h_n in triplets]


def min_abs_hinge(params, x, kwargs):
    """Smallest |D(a,p) - D(a,n) + margin| over the triplets the objective will form."""
    smallest = np.inf
    for h_a, h_p, h_n in triplet_embeddings(params, x, kwargs):
        hinge = (losses.angular_distance_forward(h_a, h_p)[0]
                 - losses.angular_distance_forward(h_a, h_n)[0] + kwargs["margin"])
        smallest = min(smallest, float(np.min(np.abs(hinge))))
    return smallest


def min_abs_cos(params, x, kwargs):
    """Smallest |cos| over the (anchor, positive) and (anchor, negative) pairs: Eq. 1's kink."""
    smallest = np.inf
    for h_a, h_p, h_n in triplet_embeddings(params, x, kwargs):
        for h_b in (h_p, h_n):
            cos = np.einsum("ij,ij->i", h_a, h_b) / (np.linalg.norm(h_a, axis=1)
                                                     * np.linalg.norm(h_b, axis=1))
            smallest = min(smallest, float(np.min(np.abs(cos))))
    return smallest


def all_images(x, kwargs):
    return np.concatenate([x] + [kwargs[k] for k in ("x_adv", "x_inv", "x_inv_neg") if k in kwargs])


@pytest.mark.parametrize("embed_dim", EMBED_DIMS)
@pytest.mark.parametrize("config", list(CONFIGS))
@GRADCHECK
@given(seed=seeds, sizes=layer_sizes, data=st.data(),
       lambdas=st.tuples(st.floats(0.1, 2.0), st.floats(0.1, 2.0), st.floats(0.01, 0.5)),
       margin=st.floats(0.01, 0.5))
def test_objective_gradient_matches_numerical(config, embed_dim, seed, sizes, data, lambdas,
                                              margin, assert_grad_ok):
    cfg = CONFIGS[config]
    triplets = cfg["sens"] or cfg["inv"] is not None
    # Batch 1 for the baselines; a triplet's negative of another class needs a second anchor.
    n = data.draw(st.integers(2 if triplets else 1, 4), label="n")
    params, x, y, kwargs = make_case(config, seed, sizes, n, lambdas, margin, embed_dim)
    assume(min_abs_preactivation(params, all_images(x, kwargs)) > KINK_GAP)
    assume(min_abs_hinge(params, x, kwargs) > KINK_GAP)
    if embed_dim:
        assume(min_abs_cos(params, x, kwargs) > KINK_GAP)
    loss, grads, terms = objective(params, x, y, **kwargs)
    assume(reference_is_accurate_enough(grads))
    assert loss == terms["total"]
    assert sorted(grads) == sorted(params)
    f = lambda: objective(params, x, y, **kwargs)[0]  # noqa: E731
    for key in params:
        assert_grad_ok(f"objective {key} [{config}, embed_dim {embed_dim}]", grads[key],
                       numerical_gradient(f, params[key]))


@pytest.mark.parametrize("embed_dim", EMBED_DIMS)
def test_objective_wrong_gradients_fail(embed_dim, assert_wrong_grads_fail):
    params, x, y, kwargs = make_case("+MLS+MLI oracle with norm", 5, [7, 6, 5, 3], 4,
                                     (0.7, 0.4, 0.05), 0.3, embed_dim)
    assert min_abs_preactivation(params, all_images(x, kwargs)) > KINK_GAP
    assert min_abs_hinge(params, x, kwargs) > KINK_GAP
    assert min_abs_cos(params, x, kwargs) > KINK_GAP
    _, grads, terms = objective(params, x, y, **kwargs)
    assert terms["triplet_sens"] > 0 and terms["triplet_inv"] > 0  # the triplets take part
    f = lambda: objective(params, x, y, **kwargs)[0]  # noqa: E731
    for key in params:
        assert_wrong_grads_fail(f"objective {key}", grads[key], numerical_gradient(f, params[key]))


def test_terms_add_up():
    params, x, y, kwargs = make_case("+MLS+MLI source with norm", 1, [7, 6, 5, 3], 5,
                                     (0.7, 0.4, 0.05), 0.3)
    loss, _, terms = objective(params, x, y, **kwargs)
    assert terms["ce"] == pytest.approx(0.5 * (terms["ce_clean"] + terms["ce_adv"]), rel=1e-14)
    assert loss == pytest.approx(terms["ce"] + 0.7 * terms["triplet_sens"]
                                 + 0.4 * terms["triplet_inv"] + 0.05 * terms["norm"], rel=1e-14)
    assert terms["norm"] > 0 and terms["triplet_sens"] >= 0 and terms["triplet_inv"] >= 0


def test_ce_on_fgsm_is_the_cross_entropy_of_the_fgsm_images_alone():
    params, x, y, kwargs = make_case("baseline, FGSM only", 2, [7, 6, 5, 3], 4, (0, 0, 0), 0.05)
    loss, grads, terms = objective(params, x, y, **kwargs)
    logits, _, cache = mlp.forward(params, kwargs["x_adv"])
    ce, ce_cache = losses.softmax_cross_entropy_forward(logits, y)
    expected, _ = mlp.backward(losses.softmax_cross_entropy_backward(1.0, ce_cache), None, cache)
    assert loss == pytest.approx(ce, rel=1e-14) and terms["ce"] == pytest.approx(ce, rel=1e-14)
    assert terms["ce_clean"] > 0  # still reported, though not trained on
    for key in params:
        np.testing.assert_allclose(grads[key], expected[key], rtol=1e-11, atol=1e-14)
    with pytest.raises(ValueError, match="ce_on"):
        objective(params, x, y, x_adv=kwargs["x_adv"], ce_on="clean")


def test_ce_on_clean_and_invariance_is_the_mean_of_the_two_cross_entropies():
    """The counterpart of the authors' nll-invariance: 0.5 CE(clean) + 0.5 CE(invariance
    images against the anchors' labels), the gradient of both halves; it needs x_inv."""
    params, x, y, kwargs = make_case("CE on clean + invariance", 2, [7, 6, 5, 3], 4, (0, 0, 0),
                                     0.05)
    loss, grads, terms = objective(params, x, y, **kwargs)
    expected = {k: 0.0 for k in params}
    values = []
    for images in (x, kwargs["x_inv"]):
        logits, _, cache = mlp.forward(params, images)
        ce, ce_cache = losses.softmax_cross_entropy_forward(logits, y)
        part, _ = mlp.backward(losses.softmax_cross_entropy_backward(0.5, ce_cache), None, cache)
        expected = {k: expected[k] + part[k] for k in params}
        values.append(ce)
    assert loss == pytest.approx(0.5 * sum(values), rel=1e-14)
    assert (terms["ce_clean"], terms["ce_inv"]) == pytest.approx(values, rel=1e-14)
    for key in params:
        np.testing.assert_allclose(grads[key], expected[key], rtol=1e-11, atol=1e-14)
    with pytest.raises(ValueError, match="x_inv"):
        objective(params, x, y, ce_on="clean+invariance")


def test_active_fractions_count_the_triplets_with_a_positive_hinge():
    params, x, y, kwargs = make_case("+MLS+MLI oracle", 6, [7, 6, 5, 3], 6, (0.7, 0.4, 0), 0.3,
                                     embed_dim=3)
    _, _, terms = objective(params, x, y, **kwargs)
    for key, (h_a, h_p, h_n) in zip(("active_sens", "active_inv"),
                                    triplet_embeddings(params, x, kwargs)):
        hinge = (losses.angular_distance_forward(h_a, h_p)[0]
                 - losses.angular_distance_forward(h_a, h_n)[0] + 0.3)
        assert terms[key] == np.mean(hinge > 0)
    assert 0 < terms["active_sens"] <= 1
    _, _, none = objective(params, x, y, x_adv=kwargs["x_adv"])
    assert none["active_sens"] == none["active_inv"] == 0.0


def test_clean_baseline_is_plain_cross_entropy():
    params, x, y, kwargs = make_case("baseline, clean only", 2, [7, 6, 5, 3], 4, (0, 0, 0), 0.05)
    loss, grads, terms = objective(params, x, y, **kwargs)
    logits, _, cache = mlp.forward(params, x)
    ce, ce_cache = losses.softmax_cross_entropy_forward(logits, y)
    expected, _ = mlp.backward(losses.softmax_cross_entropy_backward(1.0, ce_cache), None, cache)
    assert loss == ce == terms["ce_clean"]
    assert terms["triplet_sens"] == terms["triplet_inv"] == terms["norm"] == 0.0
    for key in params:
        np.testing.assert_allclose(grads[key], expected[key], rtol=1e-12, atol=1e-15)


def test_unused_inputs_change_nothing():
    """x_inv with lambda_inv = 0 (and lambda_norm without triplets) must not enter the loss."""
    params, x, y, kwargs = make_case("baseline, clean + FGSM", 3, [7, 6, 5, 3], 4, (0, 0, 0), 0.05)
    loss, grads, _ = objective(params, x, y, **kwargs)
    extra = dict(x_inv=np.random.default_rng(0).random(x.shape), lambda_norm=0.3)
    loss2, grads2, _ = objective(params, x, y, **kwargs, **extra)
    assert loss2 == loss
    assert all(np.array_equal(grads[k], grads2[k]) for k in params)


def test_missing_inputs_are_named():
    params, x, y, kwargs = make_case("+MLS+MLI source", 4, [7, 6, 5, 3], 4, (0.7, 0.4, 0), 0.05)
    with pytest.raises(ValueError, match="x_adv"):
        objective(params, x, y, lambda_sens=1.0)
    with pytest.raises(ValueError, match="x_inv"):
        objective(params, x, y, lambda_inv=1.0)
    with pytest.raises(ValueError, match="neg_index"):
        objective(params, x, y, x_adv=kwargs["x_adv"], lambda_sens=1.0)


@pytest.mark.parametrize("config", [c for c in CONFIGS if CONFIGS[c]["sens"]])
def test_dead_embeddings_give_no_nan(config):
    """A dead hidden layer makes every embedding exactly zero: finite loss, finite grads."""
    params, x, y, kwargs = make_case(config, 5, [7, 6, 5, 3], 4, (0.7, 0.4, 0.05), 0.3)
    params["b2"][:] = -1e3  # the last hidden layer never fires
    loss, grads, terms = objective(params, x, y, **kwargs)
    assert np.isfinite(loss)
    assert all(np.all(np.isfinite(g)) for g in grads.values())
    assert terms["norm"] == 0.0
    # Zero embeddings have no direction: D = 1 to everything, so each hinge is the margin.
    assert terms["triplet_sens"] == pytest.approx(0.3)
    if CONFIGS[config]["inv"]:
        assert terms["triplet_inv"] == pytest.approx(0.3)
    assert np.all(grads["W1"] == 0)  # nothing flows through a dead layer


# ---- negative mining -------------------------------------------------------------------

def test_hardest_negatives_picks_the_closest_other_class():
    h = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    np.testing.assert_array_equal(hardest_negatives(h, np.array([0, 0, 1, 1])), [3, 3, 1, 1])
    # Eq. 1's |.|: a negated embedding points "the same way", distance 0
    h = np.array([[1.0, 0.0], [-1.0, 0.05], [0.6, 0.8]])
    assert hardest_negatives(h, np.array([0, 1, 2]))[0] == 1


@settings(max_examples=30, deadline=None)
@given(seed=seeds, n=st.integers(2, 8), k=st.integers(1, 5))
def test_hardest_negatives_is_the_argmin_over_other_classes(seed, n, k):
    rng = np.random.default_rng(seed)
    h = np.maximum(rng.standard_normal((n, k)), 0)  # ReLU-like, zero rows included
    y = rng.integers(0, 3, size=n)
    y[:2] = [0, 1]
    neg = hardest_negatives(h, y)
    assert neg.dtype == np.int64 and neg.shape == (n,)
    assert np.all(y[neg] != y)
    for i in range(n):  # brute force, one anchor at a time, through the library's Eq. 1
        others = np.flatnonzero(y != y[i])
        d, _ = losses.angular_distance_forward(np.repeat(h[i:i + 1], len(others), 0), h[others])
        d_chosen, _ = losses.angular_distance_forward(h[i:i + 1], h[neg[i]:neg[i] + 1])
        assert d_chosen[0] <= d.min() + 1e-12


def test_negatives_need_two_classes():
    with pytest.raises(ValueError, match="two classes"):
        hardest_negatives(np.ones((3, 2)), np.array([4, 4, 4]))
    with pytest.raises(ValueError, match="two classes"):
        random_negatives(np.array([4, 4, 4]), np.random.default_rng(0))


def test_random_negatives_are_other_classes_and_reproducible():
    y = np.array([0, 0, 0, 0, 1, 2, 2])
    a = random_negatives(y, np.random.default_rng(9))
    b = random_negatives(y, np.random.default_rng(9))
    assert np.all(y[a] != y) and np.array_equal(a, b) and a.dtype == np.int64


@pytest.mark.parametrize("embed_dim", EMBED_DIMS)
@pytest.mark.parametrize("config", list(CONFIGS))
@settings(max_examples=5, deadline=None)
@given(seed=seeds, sizes=layer_sizes, n=st.integers(2, 5))
def test_a_reused_anchor_forward_changes_nothing(config, embed_dim, seed, sizes, n):
    """Training passes FGSM's forward of the anchors in (anchor_forward): same loss, same terms
    and the same gradients as the objective's own concatenated pass, checked above."""
    params, x, y, kwargs = make_case(config, seed, sizes, n, (0.7, 0.4, 0.05), 0.3, embed_dim)
    loss, grads, terms = fast_objective(params, x, y, **kwargs)
    reused = fast_objective(params, x, y, anchor_forward=mlp.forward(params, x), **kwargs)
    np.testing.assert_allclose(reused[0], loss, rtol=1e-12)
    for key in terms:
        np.testing.assert_allclose(reused[2][key], terms[key], rtol=1e-12, atol=1e-15)
    for key in params:
        np.testing.assert_allclose(reused[1][key], grads[key], rtol=1e-12, atol=1e-15)


# ---- the fast objective against the readable one ---------------------------------------

AGREE = dict(rtol=1e-10, atol=1e-13)  # float64: the two round apart by ~1e-16, no more


@settings(max_examples=150, deadline=None)
@given(seed=seeds, sizes=layer_sizes, n=st.integers(2, 6), embed_dim=st.sampled_from([0, 3]),
       adversarial=st.booleans(), ce_on=st.sampled_from(CE_ON), sens=st.booleans(),
       inv=st.sampled_from([None, "source", "oracle"]), norm=st.booleans(),
       negatives=st.sampled_from(["hardest", "random"]),
       lambdas=st.tuples(st.floats(0.1, 2.0), st.floats(0.1, 2.0), st.floats(0.01, 0.5)),
       margin=st.floats(0.0, 0.5))
def test_fast_objective_agrees_with_the_readable_one(seed, sizes, n, embed_dim, adversarial,
                                                    ce_on, sens, inv, norm, negatives, lambdas,
                                                    margin):
    """Every TrainConfig combination that reaches the objective: embed_dim 0 or k, CE on
    clean + FGSM, FGSM alone or clean + invariance (or clean only, without FGSM images), each
    triplet on or off,
    MLI negatives from the anchors (source) or brought along (oracle), the norm term, hardest
    or random negatives; the fast objective with and without a reused anchor forward (as
    training calls it). Loss, every gradient and every reported term agree to 1e-10."""
    rng = np.random.default_rng(seed)
    params = float64_params(sizes, rng, embed_dim)
    d, c = sizes[0], sizes[-1]
    x = rng.random((n, d))
    y = rng.integers(0, c, size=n)
    y[:2] = [0, 1]  # negatives need a second class in the batch
    lambda_sens, lambda_inv, lambda_norm = lambdas
    kwargs = dict(margin=margin, ce_on=ce_on)
    if adversarial:
        kwargs["x_adv"] = np.clip(x + 0.1 * np.sign(rng.standard_normal((n, d))), 0, 1)
        if sens:
            kwargs["lambda_sens"] = lambda_sens
    if inv is not None:
        kwargs.update(x_inv=rng.random((n, d)), lambda_inv=lambda_inv)
        if inv == "oracle":
            kwargs["x_inv_neg"] = rng.random((n, d))
    elif ce_on == "clean+invariance":  # invariance images for the CE alone
        kwargs["x_inv"] = rng.random((n, d))
    if norm:
        kwargs["lambda_norm"] = lambda_norm
    kwargs["neg_index"] = "hardest" if negatives == "hardest" else random_negatives(y, rng)
    loss, grads, terms = objective(params, x, y, **kwargs)
    assert np.isfinite(loss) and loss == terms["total"]
    for fast in (fast_objective(params, x, y, **kwargs),
                 fast_objective(params, x, y, anchor_forward=mlp.forward(params, x), **kwargs)):
        np.testing.assert_allclose(fast[0], loss, **AGREE)
        assert sorted(fast[2]) == sorted(terms)
        for key in terms:
            np.testing.assert_allclose(fast[2][key], terms[key], **AGREE, err_msg=key)
        assert sorted(fast[1]) == sorted(grads) == sorted(params)
        for key in grads:
            np.testing.assert_allclose(fast[1][key], grads[key], **AGREE, err_msg=key)


def test_readable_takes_the_fast_objectives_arguments_but_a_given_forward():
    fast = inspect.signature(fast_objective).parameters
    reference = inspect.signature(objective).parameters
    assert list(reference) == [name for name in fast if name != "anchor_forward"]
    assert all(reference[name].default == fast[name].default for name in reference)
    params, x, y, kwargs = make_case("+MLS", 1, [5, 4, 3], 3, (0.5, 0, 0), 0.05)
    with pytest.raises(TypeError, match="anchor_forward"):
        objective(params, x, y, anchor_forward=mlp.forward(params, x), **kwargs)


def test_fast_gradient_matches_numerical(assert_grad_ok):
    """The fast objective is also checked against centred differences on its own (in one
    configuration; the hypothesis test above ties it to the readable one in all of them)."""
    params, x, y, kwargs = make_case("+MLS+MLI oracle with norm", 5, [7, 6, 5, 3], 4,
                                     (0.7, 0.4, 0.05), 0.3, embed_dim=3)
    assert min_abs_preactivation(params, all_images(x, kwargs)) > KINK_GAP
    assert min_abs_hinge(params, x, kwargs) > KINK_GAP
    _, grads, terms = fast_objective(params, x, y, **kwargs)
    assert terms["triplet_sens"] > 0 and terms["triplet_inv"] > 0
    f = lambda: fast_objective(params, x, y, **kwargs)[0]  # noqa: E731
    for key in params:
        assert_grad_ok(f"fast objective {key}", grads[key], numerical_gradient(f, params[key]))


def test_eq2_terms_say_which_groups_each_term_reads():
    full = eq2_terms(adversarial=True, lambda_sens=0.5, lambda_inv=0.5, lambda_norm=1e-3)
    assert [(t.name, t.weight, t.groups) for t in full] == [
        ("ce_clean", 0.5, ("anchor",)), ("ce_adv", 0.5, ("adv",)),
        ("triplet_sens", 0.5, ("anchor", "adv", "neg")),
        ("triplet_inv", 0.5, ("anchor", "inv", "neg")),
        ("norm", 1e-3, ("adv", "anchor", "inv", "neg"))]
    assert stacked_groups(full) == trained_groups(full) == ["anchor", "adv", "inv"]
    oracle = eq2_terms(adversarial=True, lambda_inv=0.5, inv_negatives=True)
    assert oracle[-1].groups == ("anchor", "inv", "inv_neg")
    assert stacked_groups(oracle) == ["anchor", "adv", "inv", "inv_neg"]
    # The authors' baseline: CE on FGSM images only, so the anchors' rows carry no gradient.
    authors = eq2_terms(adversarial=True, ce_on="fgsm", lambda_norm=1e-3)  # no triplet: no norm
    assert [t.name for t in authors] == ["ce_clean", "ce_adv"]
    assert stacked_groups(authors) == ["anchor", "adv"] and trained_groups(authors) == ["adv"]
    assert [t.groups for t in eq2_terms(adversarial=False, lambda_sens=0.5)] == [("anchor",)]
