"""The authors' code's pieces (tinyadv/authors_code.py): values, edge cases, gradients.

Gradient checks run in float64 away from every kink: embeddings with norms >= 0.1, hinges at
least KINK_GAP from 0, and mining with a clear winner (the chosen positive, negative and
row maximum each beat the runner-up by KINK_GAP) -- and inside the numerical gradient every
perturbed forward must mine the same indices as the unperturbed one, which is asserted.
"""
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tinyadv import attacks, authors_code as ac, losses, mlp, network
from tinyadv.fast.network import FAST
from tinyadv.gradcheck import compare, numerical_gradient, numerical_gradient_array

from nets import float64_params, min_abs_preactivation

GRADCHECK = settings(max_examples=20, deadline=None)
seeds = st.integers(0, 2 ** 32 - 1)
KINK_GAP = 1e-3  # far beyond what a step of h = 1e-6 can move a distance, hinge or norm
MEAN, STD = network.INPUT_NORMS["authors"]


def batch_case(seed, n, k, classes, scale=1.0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, size=n)
    nat, pert = scale * rng.standard_normal((2, n, k))
    return nat, pert, y


def runner_up_gap(values, chosen):
    """How far values[chosen] is from the nearest other entry (inf for a single entry)."""
    others = np.delete(values, chosen)
    return np.min(np.abs(others - values[chosen])) if others.size else np.inf


def mining_is_clear(nat, pert, y, margin):
    """No kink within KINK_GAP: norms, hinges, and every argmax/argmin the mining takes."""
    if min(np.linalg.norm(nat, axis=1).min(), np.linalg.norm(pert, axis=1).min()) < 0.1:
        return False
    D, _ = ac.angular_distance_matrix_forward(nat, pert)
    mined = ac.mine_hard_angular(D, y)
    if np.min(np.abs(mined.d_pos - mined.d_neg + margin)) < KINK_GAP:
        return False
    same = y[:, None] == y[None, :]
    for i in range(len(y)):
        candidates = same[i].copy()
        candidates[i] = False
        P = np.where(candidates, D[i], 0.0)
        # A row without candidates is all exact zeros whatever the inputs: column 0, stably.
        if candidates.any() and runner_up_gap(P, mined.pos_index[i]) < KINK_GAP:
            return False
        A = D[i] + D[i].max() * same[i]
        if runner_up_gap(A, mined.neg_index[i]) < KINK_GAP:
            return False
        if mined.neg_raised[i] and runner_up_gap(D[i], mined.rowmax_index[i]) < KINK_GAP:
            return False
    return True


def same_mining(nat, pert, y, expected):
    """Mine again and assert it picked what ``expected`` (a Mined) picked."""
    D, _ = ac.angular_distance_matrix_forward(nat, pert)
    mined = ac.mine_hard_angular(D, y)
    for field in ("pos_index", "neg_index", "rowmax_index"):
        assert np.array_equal(getattr(mined, field), getattr(expected, field)), field


# ---- the distance matrix ----------------------------------------------------------------

def test_distance_matrix_values_have_no_absolute_value():
    nat = np.array([[1.0, 0.0], [0.0, 2.0]])
    pert = np.array([[3.0, 0.0], [-1.0, 0.0], [1.0, 1.0]])
    D, _ = ac.angular_distance_matrix_forward(nat, pert)
    # parallel 0, opposite 2 (Eq. 1's |cos| would say 0), 45 degrees; orthogonal 1
    np.testing.assert_allclose(D, [[0.0, 2.0, 1 - 1 / np.sqrt(2)],
                                   [1.0, 1.0, 1 - 1 / np.sqrt(2)]], atol=1e-15)


def test_distance_matrix_of_a_zero_embedding_divides_by_the_floor():
    nat = np.array([[0.0, 0.0], [1.0, 2.0]])
    pert = np.array([[2.0, 1.0], [0.0, 3.0]])
    D, cache = ac.angular_distance_matrix_forward(nat, pert)
    assert np.all(D[0] == 1.0)  # cos = 0 / 1e-8 = 0
    G = np.array([[1.0, -2.0], [0.5, 0.25]])
    dnat, dpert = ac.angular_distance_matrix_backward(G, cache)
    # Their autograd: d(1 - dot / 1e-8) / da = -b / 1e-8, nothing through the zero norm.
    np.testing.assert_allclose(dnat[0], -(G[0] / ac.DISTANCE_FLOOR) @ pert, rtol=1e-12)
    assert np.all(np.isfinite(dpert))


@GRADCHECK
@given(seed=seeds, n=st.integers(1, 6), m=st.integers(1, 6), k=st.integers(2, 8),
       scale=st.floats(0.2, 5.0))
def test_distance_matrix_backward_matches_numerical(seed, n, m, k, scale, assert_grad_ok):
    rng = np.random.default_rng(seed)
    nat, pert = scale * rng.standard_normal((n, k)), scale * rng.standard_normal((m, k))
    assume(min(np.linalg.norm(nat, axis=1).min(), np.linalg.norm(pert, axis=1).min()) > 0.1)
    dD = rng.standard_normal((n, m))
    dnat, dpert = ac.angular_distance_matrix_backward(
        dD, ac.angular_distance_matrix_forward(nat, pert)[1])
    f = lambda: ac.angular_distance_matrix_forward(nat, pert)[0]  # noqa: E731
    assert_grad_ok("distance matrix dnat", dnat, numerical_gradient_array(f, nat, dD))
    assert_grad_ok("distance matrix dpert", dpert, numerical_gradient_array(f, pert, dD))


# ---- mining and the triplet: reference against vectorized -------------------------------

@settings(max_examples=40, deadline=None)
@given(seed=seeds, n=st.integers(2, 16), k=st.integers(2, 8), classes=st.integers(1, 5),
       margin=st.floats(0.0, 0.5))
def test_reference_and_vectorized_triplet_agree(seed, n, k, classes, margin):
    nat, pert, y = batch_case(seed, n, k, classes)
    loss_ref, mined_ref = ac.hard_angular_triplet_reference(nat, pert, y, margin)
    loss, cache = ac.hard_angular_triplet_forward(nat, pert, y, margin)
    mined = ac.triplet_mined(cache)
    for field in ("pos_index", "neg_index", "rowmax_index", "pos_valid", "neg_raised"):
        assert np.array_equal(getattr(mined, field), getattr(mined_ref, field)), field
    np.testing.assert_allclose(mined.d_pos, mined_ref.d_pos, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(mined.d_neg, mined_ref.d_neg, rtol=1e-12, atol=1e-14)
    assert loss == pytest.approx(loss_ref, rel=1e-12, abs=1e-14)


def exact_tie_case():
    """Axis-aligned embeddings: every distance is exactly 0, 1 or 2."""
    e = np.eye(3)
    nat = np.array([e[0], e[0], e[0], e[1], e[1]])
    pert = np.array([e[1], e[2], e[1], e[0], -e[0]])
    y = np.array([0, 0, 0, 1, 1])
    return nat, pert, y


def test_ties_go_to_the_first_column_in_both_versions():
    nat, pert, y = exact_tie_case()
    D, _ = ac.angular_distance_matrix_forward(nat, pert)
    np.testing.assert_array_equal(D, [[1, 1, 1, 0, 2]] * 3 + [[0, 1, 0, 1, 1]] * 2)
    mined = ac.mine_hard_angular(D, y)
    # Anchor 0: positives 1 and 2 tie at 1 -> column 1. Anchor 1: columns 0 and 2 -> 0.
    # Negatives of class 0: other-class columns 3 (D = 0) and 4 (2) -> 3.
    # Anchor 3 (class 1): positive column 4 at D = 1; negatives: columns 0 and 2 tie at 0 -> 0.
    np.testing.assert_array_equal(mined.pos_index, [1, 0, 0, 4, 3])
    np.testing.assert_array_equal(mined.neg_index, [3, 3, 3, 0, 0])
    assert mined.pos_valid.all() and not mined.neg_raised.any()
    loss_ref, mined_ref = ac.hard_angular_triplet_reference(nat, pert, y, 0.05)
    np.testing.assert_array_equal(mined_ref.pos_index, mined.pos_index)
    np.testing.assert_array_equal(mined_ref.neg_index, mined.neg_index)
    loss, _ = ac.hard_angular_triplet_forward(nat, pert, y, 0.05)
    assert loss == loss_ref == pytest.approx(1.05)  # every hinge: 1 - 0 + 0.05


def test_own_perturbed_copy_is_never_the_positive():
    # Anchor 0's own perturbed copy is opposite to it (D = 2, the farthest); its class-mate's
    # is at 45 degrees. Their mask picks the class-mate; Eq. 2 would have used the copy.
    nat = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    pert = np.array([[-1.0, 0.0], [1.0, 1.0], [1.0, 0.1]])
    y = np.array([0, 0, 1])
    mined = ac.mine_hard_angular(ac.angular_distance_matrix_forward(nat, pert)[0], y)
    assert mined.pos_index[0] == 1 and mined.pos_valid[0]
    assert mined.d_pos[0] == pytest.approx(1 - 1 / np.sqrt(2))


def test_anchor_alone_in_its_class_gets_column_zero_and_no_positive_gradient():
    rng = np.random.default_rng(1)
    nat, pert = rng.standard_normal((2, 4, 3))
    y = np.array([0, 0, 1, 0])  # anchor 2 has no class-mate
    loss, cache = ac.hard_angular_triplet_forward(nat, pert, y, 0.05)
    mined = ac.triplet_mined(cache)
    assert mined.pos_index[2] == 0 and not mined.pos_valid[2] and mined.d_pos[2] == 0.0
    # Its triplet still counts, with d_pos = 0; its gradient reaches only its negative.
    D = ac.angular_distance_matrix_forward(nat, pert)[0]
    assert mined.d_neg[2] == D[2, mined.neg_index[2]]
    norm, _ = ac.embedding_norms_forward(nat, pert, mined.pos_index, mined.neg_index)
    expected = np.mean(np.linalg.norm(pert, axis=1) + np.linalg.norm(nat[mined.neg_index], axis=1)
                       + np.linalg.norm(nat[mined.pos_index], axis=1))
    assert norm == pytest.approx(expected, rel=1e-12)  # anchor 2 reads ||nat_0||


def test_same_class_distances_at_zero_lose_to_a_masked_entry():
    # Anchor 1's only class-mate (2) has its perturbed embedding exactly parallel: D = 0,
    # which ties with the masked zeros; the first column (0, another class) wins.
    nat = np.array([[0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    pert = np.array([[0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    y = np.array([1, 0, 0])
    mined = ac.mine_hard_angular(ac.angular_distance_matrix_forward(nat, pert)[0], y)
    assert mined.pos_index[1] == 0 and not mined.pos_valid[1] and mined.d_pos[1] == 0.0


def test_single_class_batch_raises_every_negative():
    rng = np.random.default_rng(7)
    nat, pert = rng.standard_normal((2, 5, 3))
    y = np.full(5, 4)
    D, _ = ac.angular_distance_matrix_forward(nat, pert)
    mined = ac.mine_hard_angular(D, y)
    assert mined.neg_raised.all()
    np.testing.assert_array_equal(mined.neg_index, D.argmin(axis=1))  # own copy included
    np.testing.assert_allclose(mined.d_neg, D.min(axis=1) + D.max(axis=1), rtol=1e-15)


def test_hinge_exactly_at_zero_passes_half_the_gradient():
    # Every distance is exactly 1 (all perturbed embeddings orthogonal to all natural ones):
    # d_pos - d_neg = 0, so margin 0 puts every hinge exactly at the kink. The margin does
    # not enter the mining, so margin 0.5 (every hinge active) mines the same triplets.
    e = np.eye(4)
    nat = np.array([e[0], e[0], e[1], e[1]])
    pert = np.array([e[2], e[2], e[3], e[3]])
    y = np.array([0, 0, 1, 1])
    _, cache_tie = ac.hard_angular_triplet_forward(nat, pert, y, margin=0.0)
    _, cache_on = ac.hard_angular_triplet_forward(nat, pert, y, margin=0.5)
    assert np.all(cache_tie[2] == 0.0) and np.all(cache_on[2] == 0.5)
    g_tie = ac.hard_angular_triplet_backward(1.0, cache_tie)
    g_on = ac.hard_angular_triplet_backward(1.0, cache_on)
    assert np.max(np.abs(g_on[0])) > 0.1
    # torch.max(x, 0) passes half the gradient at x == 0 (their hinge); tinyadv's losses.py
    # would pass none.
    np.testing.assert_array_equal(g_tie[0], 0.5 * g_on[0])
    np.testing.assert_array_equal(g_tie[1], 0.5 * g_on[1])


# ---- the triplet's, the norms' and a block's gradients ----------------------------------

labels_and_shapes = dict(seed=seeds, n=st.integers(2, 16), k=st.integers(2, 8),
                         classes=st.integers(1, 5))


@GRADCHECK
@given(**labels_and_shapes, margin=st.floats(0.0, 0.5), dloss=st.floats(0.1, 3.0))
def test_triplet_backward_matches_numerical(seed, n, k, classes, margin, dloss, assert_grad_ok):
    nat, pert, y = batch_case(seed, n, k, classes)
    assume(mining_is_clear(nat, pert, y, margin))
    loss, cache = ac.hard_angular_triplet_forward(nat, pert, y, margin)
    mined = ac.triplet_mined(cache)
    dnat, dpert = ac.hard_angular_triplet_backward(dloss, cache)

    def f():
        same_mining(nat, pert, y, mined)  # the perturbation stayed inside one mining
        return dloss * ac.hard_angular_triplet_forward(nat, pert, y, margin)[0]
    assert_grad_ok("their triplet dnat", dnat, numerical_gradient(f, nat))
    assert_grad_ok("their triplet dpert", dpert, numerical_gradient(f, pert))


def test_single_class_batch_gradient_goes_through_the_row_max(assert_grad_ok):
    # Every negative is raised by max_k D_ik, which carries a gradient of its own.
    nat, pert, y = batch_case(11, 6, 3, classes=1)
    assert mining_is_clear(nat, pert, y, 0.05)
    loss, cache = ac.hard_angular_triplet_forward(nat, pert, y, 0.05)
    mined = ac.triplet_mined(cache)
    assert mined.neg_raised.all() and np.any(mined.rowmax_index != mined.neg_index)
    dnat, dpert = ac.hard_angular_triplet_backward(1.0, cache)
    f = lambda: ac.hard_angular_triplet_forward(nat, pert, y, 0.05)[0]  # noqa: E731
    assert_grad_ok("single-class dnat", dnat, numerical_gradient(f, nat))
    assert_grad_ok("single-class dpert", dpert, numerical_gradient(f, pert))


@GRADCHECK
@given(**labels_and_shapes, only=st.booleans(), dvalue=st.floats(0.1, 3.0))
def test_norms_backward_matches_numerical(seed, n, k, classes, only, dvalue, assert_grad_ok):
    nat, pert, _ = batch_case(seed, n, k, classes)
    assume(min(np.linalg.norm(nat, axis=1).min(), np.linalg.norm(pert, axis=1).min()) > 0.1)
    rng = np.random.default_rng(seed + 1)
    pos, neg = rng.integers(0, n, size=(2, n))  # indices repeat: scatter-adds
    _, cache = ac.embedding_norms_forward(nat, pert, pos, neg, only)
    dnat, dpert = ac.embedding_norms_backward(dvalue, cache)
    f = lambda: dvalue * ac.embedding_norms_forward(nat, pert, pos, neg, only)[0]  # noqa: E731
    assert_grad_ok("their norms dpert", dpert, numerical_gradient(f, pert))
    if only:
        assert np.all(dnat == 0)
    else:
        assert_grad_ok("their norms dnat", dnat, numerical_gradient(f, nat))


def test_norms_value_and_reg_only_adv():
    nat = np.array([[3.0, 4.0], [0.0, 1.0], [6.0, 8.0]])
    pert = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    pos, neg = np.array([1, 0, 0]), np.array([2, 2, 1])
    value, _ = ac.embedding_norms_forward(nat, pert, pos, neg)
    # rows: (1 + 10 + 1), (2 + 10 + 5), (0 + 1 + 5)
    assert value == pytest.approx((12 + 17 + 6) / 3, rel=1e-15)
    value, cache = ac.embedding_norms_forward(nat, pert, pos, neg, only_perturbed=True)
    assert value == pytest.approx(1.0, rel=1e-15)  # (1 + 2 + 0) / 3
    dnat, dpert = ac.embedding_norms_backward(1.0, cache)
    assert np.all(dnat == 0) and np.all(dpert[2] == 0)  # a zero row: subgradient 0, no NaN


@GRADCHECK
@given(**labels_and_shapes, only=st.booleans())
def test_block_backward_matches_numerical(seed, n, k, classes, only, assert_grad_ok):
    nat, pert, y = batch_case(seed, n, k, classes)
    assume(mining_is_clear(nat, pert, y, ac.MARGIN))
    value, cache, terms = ac.block_forward(nat, pert, y, only_perturbed_norm=only)
    assert value == pytest.approx(ac.TRIPLET_WEIGHT * terms["triplet"]
                                  + ac.NORM_WEIGHT * terms["norm"], rel=1e-12)
    dnat, dpert = ac.block_backward(1.0, cache)
    mined = ac.triplet_mined(cache[0])

    def f():
        same_mining(nat, pert, y, mined)
        return ac.block_forward(nat, pert, y, only_perturbed_norm=only)[0]
    assert_grad_ok("their block dnat", dnat, numerical_gradient(f, nat))
    assert_grad_ok("their block dpert", dpert, numerical_gradient(f, pert))


def clear_case():
    for seed in range(100):
        nat, pert, y = batch_case(seed, 8, 4, 3)
        if mining_is_clear(nat, pert, y, ac.MARGIN):
            loss, cache = ac.hard_angular_triplet_forward(nat, pert, y)
            if np.mean(cache[2] > 0) >= 0.5:
                return nat, pert, y
    raise AssertionError("no clear case among 100 seeds")


def test_wrong_triplet_and_norm_gradients_fail(assert_wrong_grads_fail):
    nat, pert, y = clear_case()
    _, cache = ac.hard_angular_triplet_forward(nat, pert, y)
    dnat, dpert = ac.hard_angular_triplet_backward(1.0, cache)
    f = lambda: ac.hard_angular_triplet_forward(nat, pert, y)[0]  # noqa: E731
    assert_wrong_grads_fail("their triplet dnat", dnat, numerical_gradient(f, nat))
    assert_wrong_grads_fail("their triplet dpert", dpert, numerical_gradient(f, pert))
    mined = ac.triplet_mined(cache)
    _, n_cache = ac.embedding_norms_forward(nat, pert, mined.pos_index, mined.neg_index)
    dnat, dpert = ac.embedding_norms_backward(1.0, n_cache)
    g = lambda: ac.embedding_norms_forward(  # noqa: E731
        nat, pert, mined.pos_index, mined.neg_index)[0]
    assert_wrong_grads_fail("their norms dnat", dnat, numerical_gradient(g, nat))
    assert_wrong_grads_fail("their norms dpert", dpert, numerical_gradient(g, pert))


def test_eq2_style_gradient_fails_against_their_triplet(assert_grad_ok):
    """The paper's own triplet (own copy as positive, |cos|) is a different function: its
    gradient must not pass as theirs -- the check can tell the two apart."""
    nat, pert, y = clear_case()
    _, cache = ac.hard_angular_triplet_forward(nat, pert, y)
    mined = ac.triplet_mined(cache)
    _, eq2_cache = losses.triplet_loss_forward(nat, pert, pert[mined.neg_index], ac.MARGIN)
    eq2_dnat, _, _ = losses.triplet_loss_backward(1.0, eq2_cache)
    num = numerical_gradient(lambda: ac.hard_angular_triplet_forward(nat, pert, y)[0], nat)
    assert not compare("Eq. 2 as theirs", eq2_dnat, num).passed


def test_float32_stays_float32():
    nat, pert, y = clear_case()
    nat, pert = nat.astype(np.float32), pert.astype(np.float32)
    value, cache, _ = ac.block_forward(nat, pert, y)
    dnat, dpert = ac.block_backward(1.0, cache)
    assert dnat.dtype == dpert.dtype == np.float32


# ---- their FGSM --------------------------------------------------------------------------

def known_net(dtype=np.float64):
    """x_norm -> relu(x_norm W1 + 10) -> logits. With the ReLUs always on, the gradient of
    CE(., y = 0) w.r.t. x_norm is p_1 * (W1[:, 1] - W1[:, 0]) = p_1 * (+1, -1, +1)."""
    return {"W1": np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]], dtype=dtype),
            "b1": np.array([10.0, 10.0], dtype=dtype),
            "W2": np.eye(2, dtype=dtype), "b2": np.zeros(2, dtype=dtype),
            "input_mean": np.array(MEAN, dtype=dtype), "input_std": np.array(STD, dtype=dtype)}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fgsm_known_case_in_pixel_units(dtype):
    x = np.array([[0.0, 0.5, 1.0]], dtype=dtype)
    y = np.array([0])
    theirs = ac.fgsm(known_net(dtype), x, y)
    # x_norm = (-0.4242, 1.1986, 2.8221); + 0.01 * (+1, -1, +1); clamped to [0, 1] in
    # normalised units = (0, 1, 1); back in pixels: (mean, mean + std, mean + std).
    np.testing.assert_allclose(theirs, [[MEAN, MEAN + STD, MEAN + STD]], atol=1e-6)
    clean = ac.fgsm(known_net(dtype), x, y, clamp="pixels")
    # The same step, 0.01 * 0.3081 in pixel units, clipped to [0, 1] in pixel units.
    np.testing.assert_allclose(clean, [[0.01 * STD, 0.5 - 0.01 * STD, 1.0]], atol=1e-6)
    assert theirs.dtype == clean.dtype == dtype


def authors_mlp(seed, dtype=np.float64):
    rng = np.random.default_rng(seed)
    params = network.with_input_norm(mlp.init_params([784, 16, 4, 10], rng, dtype=dtype,
                                                     embed_dim=3), MEAN, STD)
    x = rng.uniform(0, 1, size=(12, 784)).astype(dtype)
    x[:, :300] = 0.0  # a background, as MNIST has
    return params, x, rng.integers(0, 10, size=12)


def test_fgsm_image_lives_in_the_normalised_unit_interval():
    params, x, y = authors_mlp(0)
    x_adv = ac.fgsm(params, x, y)
    assert x_adv.min() >= MEAN - 1e-12 and x_adv.max() <= MEAN + STD + 1e-12
    np.testing.assert_allclose(x_adv[:, :300], MEAN, rtol=1e-12)  # background -> 0.1307
    assert np.abs(x_adv - x).max() > 0.5  # far beyond the 0.0031 the step suggests


def test_fgsm_pixel_clamp_is_tinyadvs_fgsm_at_eps_times_std():
    params, x, y = authors_mlp(1)
    ours = ac.fgsm(params, x, y, eps=0.05, clamp="pixels")
    np.testing.assert_allclose(ours, attacks.fgsm(params, x, y, 0.05 * STD), atol=1e-15)


def test_fgsm_chunks_change_nothing():
    params, x, y = authors_mlp(2)
    np.testing.assert_array_equal(ac.fgsm(params, x, y, chunk_size=5), ac.fgsm(params, x, y))


def test_fgsm_with_leak_returns_the_clean_nll_gradient(assert_grad_ok):
    params, x, y = authors_mlp(3)
    x_adv, nll, grads = ac.fgsm_with_leak(params, x, y)
    np.testing.assert_array_equal(x_adv, ac.fgsm(params, x, y))
    assert set(grads) == set(network.trainable_keys(params))

    def clean_nll():
        return losses.softmax_cross_entropy_forward(network.forward(params, x)[0], y)[0]
    assert nll == pytest.approx(clean_nll(), rel=1e-14)
    for key in ("W2", "b1", "W_emb", "b3"):
        assert_grad_ok(f"leaked d NLL(clean) / d {key}", grads[key],
                       numerical_gradient(clean_nll, params[key]))
    again = ac.fgsm_with_leak(params, x, y, anchor_forward=network.forward(params, x))
    np.testing.assert_array_equal(again[0], x_adv)
    for key in grads:
        np.testing.assert_array_equal(again[2][key], grads[key])


def test_fgsm_runs_any_network_with_the_mlp_contract():
    params, x, y = authors_mlp(4)
    calls = []

    def forward(p, xb):
        calls.append("forward")
        return network.forward(p, xb)

    def backward(dlogits, dh, cache, need_dx, need_param_grads):
        calls.append("backward")
        return network.backward(dlogits, dh, cache, need_dx, need_param_grads)
    net = types.SimpleNamespace(forward=forward, backward=backward)
    np.testing.assert_array_equal(ac.fgsm(params, x, y, net=net), ac.fgsm(params, x, y))
    assert calls == ["forward", "backward"]


# ---- bad input -----------------------------------------------------------------------------

def test_bad_embeddings_labels_and_indices_are_named():
    nat, pert, y = batch_case(0, 4, 3, 2)
    with pytest.raises(ValueError, match="nat, pert: expected the same shape"):
        ac.hard_angular_triplet_forward(nat, pert[:3], y)
    with pytest.raises(ValueError, match="y: expected 4 labels"):
        ac.hard_angular_triplet_forward(nat, pert, y[:3])
    with pytest.raises(TypeError, match="y: expected an integer dtype"):
        ac.hard_angular_triplet_forward(nat, pert, y.astype(float))
    with pytest.raises(ValueError, match="margin: expected a finite number >= 0"):
        ac.hard_angular_triplet_forward(nat, pert, y, margin=-0.1)
    bad = nat.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="nat: contains NaN"):
        ac.block_forward(bad, pert, y)
    with pytest.raises(ValueError, match=r"pos_index: indices must lie in 0..3"):
        ac.embedding_norms_forward(nat, pert, np.array([0, 1, 2, 4]), np.zeros(4, dtype=int))
    with pytest.raises(TypeError, match="pert: expected a numpy array"):
        ac.hard_angular_triplet_reference(nat, pert.tolist(), y)


def test_bad_fgsm_arguments_are_named():
    params, x, y = authors_mlp(5)
    with pytest.raises(ValueError, match="params: their FGSM.*input_mean"):
        ac.fgsm(network.without_input_norm(params), x, y)
    with pytest.raises(ValueError, match=r"x: pixels must lie in \[0, 1\]"):
        ac.fgsm(params, x * 255, y)
    with pytest.raises(ValueError, match="clamp: expected one of"):
        ac.fgsm(params, x, y, clamp="pixel")
    with pytest.raises(ValueError, match="eps: expected a finite number >= 0"):
        ac.fgsm(params, x, y, eps=-0.01)
    with pytest.raises(ValueError, match="y: expected 12 labels, one per image"):
        ac.fgsm(params, x, y[:5])
    with pytest.raises(ValueError, match=r"y: labels must lie in 0..9"):
        ac.fgsm_with_leak(params, x, y + 10)
    with pytest.raises(TypeError, match="net: expected a network"):
        ac.fgsm(params, x, y, net=types.SimpleNamespace(forward=mlp.forward))
    with pytest.raises(ValueError, match="chunk_size: expected a positive integer"):
        ac.fgsm(params, x, y, chunk_size=0)


def test_bad_distance_matrix_arguments_are_named():
    with pytest.raises(ValueError, match="nat, pert: expected the same embedding width"):
        ac.angular_distance_matrix_forward(np.ones((3, 2)), np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"D: expected a square \(N, N\) matrix"):
        ac.mine_hard_angular(np.ones((3, 4)), np.zeros(3, dtype=int))
    with pytest.raises(ValueError, match="y: expected 3 labels, one per row of D"):
        ac.mine_hard_angular(np.ones((3, 3)), np.zeros(4, dtype=int))


# ---- their whole loss (their_loss) and their training step --------------------------------

def objective_case(seed, n=6, dim=6):
    """A small float64 MLP (4-unit signed embedding) and a batch with each class twice."""
    rng = np.random.default_rng(seed)
    params = float64_params([dim, 7, 5, 3], rng, embed_dim=4)
    x = rng.uniform(0, 1, size=(n, dim))
    y = np.repeat(np.arange(n // 2), 2) % 3
    x_adv = np.clip(x + 0.1 * np.sign(rng.standard_normal(x.shape)), 0, 1)
    x_inv = rng.uniform(0, 1, size=x.shape) * 3.0  # "raw": not pixels
    return params, x, y, x_adv, x_inv


OBJECTIVE_CONFIGS = {  # their logged configs, as objective's arguments
    "nll-sensitivity": dict(),
    "nll-ml-sensitivity": dict(lambda_sens=0.5, lambda_norm=1e-3),
    "nll-sensitivity-norm-invar": dict(lambda_image_norm=0.5),
    "nll-ml-invariance": dict(lambda_inv=0.5, lambda_norm=1e-3),
    "nll-ml-sens-invar": dict(lambda_sens=0.5, lambda_inv=0.5, lambda_norm=1e-3),
    "both, CE on clean + FGSM": dict(lambda_sens=0.7, lambda_inv=0.3, lambda_norm=0.05,
                                     ce_on="clean+fgsm"),
}


def objective_kwargs(config, x_adv, x_inv):
    kwargs = dict(OBJECTIVE_CONFIGS[config], x_adv=x_adv)
    if kwargs.get("lambda_inv") or kwargs.get("lambda_image_norm"):
        kwargs["x_inv"] = x_inv
    return kwargs


def objective_is_clear(params, x, y, kwargs):
    """Away from every kink: ReLUs, and each block's mining and hinges (mining_is_clear)."""
    images = [x, kwargs["x_adv"]] + ([kwargs["x_inv"]] if "x_inv" in kwargs else [])
    if min(min_abs_preactivation(params, im) for im in images) < KINK_GAP:
        return False
    h = {name: mlp.forward(params, im)[1] for name, im in (("x", x), ("adv", kwargs["x_adv"]),
                                                           ("inv", kwargs.get("x_inv", x)))}
    blocks = [g for g, lam in (("inv", kwargs.get("lambda_inv")),
                               ("adv", kwargs.get("lambda_sens"))) if lam]
    return all(mining_is_clear(h["x"], h[g], y, ac.MARGIN) for g in blocks)


@pytest.mark.parametrize("config", list(OBJECTIVE_CONFIGS))
# Most random cases put some mining choice or hinge within KINK_GAP of a tie: filtered, on
# purpose (a gradient check there would test the numerical gradient, not the backward).
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(seed=seeds)
def test_objective_gradient_matches_numerical(config, seed, assert_grad_ok):
    params, x, y, x_adv, x_inv = objective_case(seed)
    kwargs = objective_kwargs(config, x_adv, x_inv)
    assume(objective_is_clear(params, x, y, kwargs))
    loss, grads, terms = ac.their_loss(params, x, y, **kwargs)
    assert loss == terms["total"] and sorted(grads) == sorted(params)
    for key in params:
        numeric = numerical_gradient(lambda: ac.their_loss(params, x, y, **kwargs)[0], params[key])
        assert_grad_ok(f"{config}: d loss / d {key}", grads[key], numeric)


def test_objective_is_the_sum_of_its_pieces():
    """CE on the FGSM images, then the invariance block, then the sensitivity block whose norm
    reads only the FGSM embeddings (their reg_only_adv)."""
    params, x, y, x_adv, x_inv = objective_case(5)
    loss, _, terms = ac.their_loss(params, x, y, **objective_kwargs("nll-ml-sens-invar",
                                                                   x_adv, x_inv))
    logits_adv, h_adv, _ = mlp.forward(params, x_adv)
    h_x, h_inv = mlp.forward(params, x)[1], mlp.forward(params, x_inv)[1]
    ce = losses.softmax_cross_entropy_forward(logits_adv, y)[0]
    inv = ac.block_forward(h_x, h_inv, y, triplet_weight=0.5)[0]
    sens = ac.block_forward(h_x, h_adv, y, triplet_weight=0.5, only_perturbed_norm=True)[0]
    assert loss == pytest.approx(ce + inv + sens, rel=1e-12)
    assert terms["ce"] == pytest.approx(ce, rel=1e-12) and terms["ce_clean"] == 0.0


def test_the_image_norm_term_is_a_constant():
    """nll-sensitivity-norm-invar (the paper's printed "+ MLS + MLI"): the loss grows by
    0.5 * ||x_inv||, the gradients are the Baseline's exactly."""
    params, x, y, x_adv, x_inv = objective_case(6)
    base_loss, base_grads, _ = ac.their_loss(params, x, y, x_adv=x_adv)
    loss, grads, terms = ac.their_loss(params, x, y, x_adv=x_adv, x_inv=x_inv,
                                      lambda_image_norm=0.5)
    assert loss == pytest.approx(base_loss + 0.5 * np.linalg.norm(x_inv), rel=1e-12)
    for key in grads:
        np.testing.assert_array_equal(grads[key], base_grads[key])


def test_a_reused_anchor_forward_changes_nothing():
    params, x, y, x_adv, x_inv = objective_case(7)
    for config in OBJECTIVE_CONFIGS:
        kwargs = objective_kwargs(config, x_adv, x_inv)
        plain = ac.their_loss(params, x, y, **kwargs)
        reused = ac.their_loss(params, x, y, anchor_forward=FAST.forward(params, x), **kwargs)
        assert reused[0] == pytest.approx(plain[0], rel=1e-12)
        for key in params:
            np.testing.assert_allclose(reused[1][key], plain[1][key], rtol=1e-12, atol=1e-15)


def test_objective_wrong_gradients_fail(assert_wrong_grads_fail):
    params, x, y, x_adv, x_inv = objective_case(8)
    kwargs = objective_kwargs("nll-ml-sens-invar", x_adv, x_inv)
    for seed in range(8, 40):  # the first clear case
        if objective_is_clear(params, x, y, kwargs):
            break
        params, x, y, x_adv, x_inv = objective_case(seed)
        kwargs = objective_kwargs("nll-ml-sens-invar", x_adv, x_inv)
    _, grads, _ = ac.their_loss(params, x, y, **kwargs)
    numeric = numerical_gradient(lambda: ac.their_loss(params, x, y, **kwargs)[0], params["W_emb"])
    assert_wrong_grads_fail("their loss, d / d W_emb", grads["W_emb"], numeric)


def test_objective_bad_arguments_are_named():
    params, x, y, x_adv, x_inv = objective_case(9)
    with pytest.raises(ValueError, match="^ce_on:"):
        ac.their_loss(params, x, y, x_adv=x_adv, ce_on="clean")
    with pytest.raises(ValueError, match="^x_adv:"):
        ac.their_loss(params, x, y, lambda_sens=0.5)
    with pytest.raises(ValueError, match="^x_inv:"):
        ac.their_loss(params, x, y, x_adv=x_adv, lambda_inv=0.5)


def test_as_fed_raw_reaches_the_network_as_0_to_255():
    params, x, y = authors_mlp(10, dtype=np.float32)
    fed = ac.as_fed_raw(x, params)
    seen = (fed - params["input_mean"]) / params["input_std"]  # the network's first operation
    np.testing.assert_allclose(seen, x * 255, rtol=2e-6, atol=2e-4)
    np.testing.assert_array_equal(ac.as_fed_raw(x, network.without_input_norm(params)),
                                  x * np.float32(255))


def test_their_training_step_adds_the_clean_gradient_to_their_loss(monkeypatch):
    """authors_step with their choices: their FGSM, their loss, plus CE(clean)'s gradient."""
    from tinyadv import optim, train
    config = train.TrainConfig(sizes=(784, 16, 4, 10), embed_dim=3, input_norm="authors",
                               ce_on="fgsm", fgsm_eps=0.01 * STD, lambda_sens=0.5,
                               lambda_norm=1e-3)
    options = ac.AuthorsOptions(fgsm_clamp="normalised", leak_clean_grad=True, triplet="authors")
    options.check(config)
    params, x, y = authors_mlp(11)
    y = np.repeat(np.arange(6), 2)
    seen = {}
    opt = optim.SGD(params, lr=1.0)
    monkeypatch.setattr(opt, "step", lambda p, grads: seen.update(grads))
    ac.authors_step(options)(params, opt, config, train.Batch(x, y), np.random.default_rng(0))
    x_adv, _, leak = ac.fgsm_with_leak(params, x, y)  # eps 0.01 normalised, their clamp
    _, grads, _ = ac.their_loss(params, x, y, x_adv=x_adv, lambda_sens=0.5, lambda_norm=1e-3)
    for key in grads:
        np.testing.assert_allclose(seen[key], grads[key] + leak[key], rtol=1e-10, atol=1e-13)


def test_their_choices_are_checked_fields():
    from tinyadv.lab.configs import RunConfig
    from tinyadv.train import TrainConfig
    for field, value in (("fgsm_clamp", "clip"), ("triplet", "eq2"),
                         ("invariance_input", "255"), ("lambda_image_norm", -1.0),
                         ("leak_clean_grad", 1)):
        with pytest.raises(ValueError, match=f"^{field}:"):
            ac.AuthorsOptions(**{field: value})
    with pytest.raises(ValueError, match="^input_norm:"):  # their FGSM needs their normalisation
        ac.AuthorsOptions(fgsm_clamp="normalised").check(TrainConfig())
    with pytest.raises(ValueError, match="^protocol:"):
        ac.AuthorsOptions(triplet="authors").check(TrainConfig(protocol="oracle"))
    with pytest.raises(ValueError, match="^input_norm:"):  # a run's config checks them too
        RunConfig.from_dict({"leak_clean_grad": True})
    assert ac.AuthorsOptions().is_paper() and not ac.AuthorsOptions(triplet="authors").is_paper()
    # at their defaults the new fields stay out of a config's dict: saved runs keep their keys
    assert "triplet" not in RunConfig().to_dict()
    assert RunConfig.from_dict({"triplet": "authors"}).to_dict()["triplet"] == "authors"
    assert "fgsm_clamp" not in {f for f in TrainConfig.__dataclass_fields__}


def test_their_fgsm_squashes_the_contrast_of_mnist(mnist_test):
    """Item 1 of the audit, measured: on the 10,000 test images their FGSM image differs from
    the clean one by 0.168 on average and 0.561 at most (pixel units) -- the clamp's doing,
    not the step's (0.01 * 0.3081 = 0.0031): an untrained network's gradient signs give the
    same numbers as a trained one's to three digits."""
    X, y = mnist_test
    params = network.with_input_norm(mlp.init_params([784, 32, 10], np.random.default_rng(0)),
                                     MEAN, STD)
    change = np.abs(ac.fgsm(params, X, y) - X)
    assert change.mean() == pytest.approx(0.168, abs=5e-4)
    assert change.max() == pytest.approx(1 - MEAN - STD, abs=1e-6)  # white ink -> 0.4388: 0.5612
    assert np.abs(attacks.fgsm(params, X, y, ac.FGSM_EPS * STD) - X).max() <= 0.0031  # the step
