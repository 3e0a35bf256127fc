"""Probabilities to instance label maps, and the tuning of how, on constructed cases."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from plexus.evaluation.instances import average_precision, match_iou
from plexus.postprocess.instances import (
    InstanceSettings,
    cross_fitted_instances,
    foreground_mask,
    instance_grid,
    label_instances,
    remove_small_instances,
    tune_instances,
)
from references import components

SHAPE = (48, 72)


def _disc(r0, c0, radius, shape=SHAPE):
    rr, cc = np.mgrid[:shape[0], :shape[1]]
    return (rr - r0) ** 2 + (cc - c0) ** 2 <= radius ** 2


def _partition(labels):
    """The objects of a label map as a set of frozensets of flat pixel indices (label values forgotten)."""
    flat = np.asarray(labels).ravel()
    return {frozenset(np.flatnonzero(flat == v).tolist()) for v in np.unique(flat[flat > 0])}


def _components(mask):
    """8-connected components by breadth-first search, as a partition of flat pixel indices."""
    return {frozenset(r * mask.shape[1] + c for r, c in comp) for comp in components(mask)}


def _consecutive(labels):
    return np.array_equal(np.unique(labels[labels > 0]), np.arange(1, labels.max() + 1))


def _touching_pair():
    """Two equal discs whose outlines overlap a little (centres 22 apart, radius 12)."""
    return _disc(24, 24, 12), _disc(24, 46, 12)


def _dumbbell():
    """One object: two discs joined by a thin bar."""
    mask = _disc(24, 18, 10) | _disc(24, 54, 10)
    mask[23:26, 18:54] = True
    return mask


# --- label_instances ----------------------------------------------------------------------------------------------


def test_touching_discs_are_one_component_without_watershed_and_two_with_it():
    a, b = _touching_pair()
    prob = np.where(a | b, 0.9, 0.05)
    merged = label_instances(prob)
    assert merged.dtype == np.int32 and merged.max() == 1
    split = label_instances(prob, watershed=True, min_distance=5)
    assert split.max() == 2 and _consecutive(split)
    np.testing.assert_array_equal(split > 0, a | b)  # the split loses no foreground pixel
    for disc in (a, b):
        values, counts = np.unique(split[disc], return_counts=True)
        assert counts.max() / disc.sum() > 0.95  # each disc is (nearly all) one object
    assert set(np.unique(split[a & ~b])) != set(np.unique(split[b & ~a]))


def test_watershed_splits_unequal_discs_at_the_neck():
    big, small = _disc(24, 22, 15), _disc(24, 43, 7)
    labels = label_instances(np.where(big | small, 1.0, 0.0), watershed=True)
    assert labels.max() == 2
    small_label = np.bincount(labels[small & ~big]).argmax()
    # the small disc keeps (almost) exactly its own pixels: nearness to the seeds would hand it part of the big one
    assert abs(int((labels == small_label).sum()) - int((small & ~big).sum())) <= 3


def test_plateau_gives_one_seed():
    # a long bar: its distance maximum is a flat ridge many pixels long
    mask = np.zeros(SHAPE, dtype=bool)
    mask[20:29, 5:65] = True
    assert label_instances(mask.astype(float), watershed=True, min_distance=3).max() == 1


def test_boundary_map_splits_along_it_and_keeps_all_foreground():
    a, b = _touching_pair()
    boundary = np.zeros(SHAPE)
    boundary[:, 34:36] = 0.9  # the contact line of the two discs
    lone = _disc(40, 66, 2)
    boundary[lone] = 0.95  # an object that is all boundary: no seed, kept whole
    prob = np.where(a | b | lone, 0.9, 0.0)
    labels = label_instances(prob, boundary=boundary)
    assert labels.max() == 3 and _consecutive(labels)
    np.testing.assert_array_equal(labels > 0, a | b | lone)
    left, right = np.unique(labels[:, :34]), np.unique(labels[:, 36:])
    assert len(set(left) - {0}) == 1 and len(set(right) - {0}) == 2  # right: the disc and the lone blob
    assert len(np.unique(labels[lone])) == 1
    with pytest.raises(ValueError, match="boundary shape"):
        label_instances(prob, boundary=boundary[:-1])


@pytest.mark.parametrize("seed", range(6))
def test_invariants_on_random_maps(seed):
    rng = np.random.default_rng(seed)
    prob = ndimage.gaussian_filter(rng.random((40, 56)), 2.5)
    prob = (prob - prob.min()) / np.ptp(prob)
    mask = prob > 0.55
    plain = label_instances(prob, cutoff=0.55)
    assert _partition(plain) == _components(mask)  # plain labelling = 8-connected components
    split = label_instances(prob, cutoff=0.55, watershed=True, min_distance=3)
    np.testing.assert_array_equal(split > 0, mask)
    assert _consecutive(split) and split.max() >= plain.max()
    components = _components(mask)
    for v in range(1, split.max() + 1):  # every object lies inside one component
        pixels = frozenset(np.flatnonzero(split.ravel() == v).tolist())
        assert sum(pixels <= comp for comp in components) == 1


def test_hysteresis_keeps_faint_object_touching_a_bright_seed_and_drops_an_isolated_one():
    prob = np.zeros(SHAPE)
    prob[_disc(15, 15, 6)] = 0.45  # faint, touching the bright core below
    prob[_disc(15, 15, 2)] = 0.9
    prob[_disc(35, 50, 6)] = 0.45  # faint, alone
    labels = label_instances(prob, method="hysteresis", low=0.3, high=0.7)
    assert labels.max() == 1
    np.testing.assert_array_equal(labels > 0, _disc(15, 15, 6))
    np.testing.assert_array_equal(foreground_mask(prob, "hysteresis", cutoff=0.3, high=0.7), labels > 0)
    with pytest.raises(ValueError, match="high"):
        label_instances(prob, method="hysteresis")


def test_min_size_removes_small_objects_and_relabels_consecutively():
    mask = _disc(10, 10, 5) | _disc(30, 10, 1) | _disc(10, 40, 4) | _disc(40, 60, 1) | _disc(30, 40, 6)
    sizes = sorted(len(c) for c in _components(mask))
    assert sizes == [5, 5, 49, 81, 113]
    labels = label_instances(mask * 0.8, min_size=6)
    assert labels.max() == 3 and _consecutive(labels)
    assert sorted(np.bincount(labels.ravel())[1:].tolist()) == [49, 81, 113]
    assert label_instances(mask * 0.8, min_size=50).max() == 2
    assert label_instances(mask * 0.8, min_size=49).max() == 3  # a size equal to min_size stays
    kept = remove_small_instances(np.array([[0, 7, 7], [3, 0, 9]]), 2)
    np.testing.assert_array_equal(kept, [[0, 1, 1], [0, 0, 0]])


def test_otsu_picks_a_threshold_between_two_modes():
    rng = np.random.default_rng(0)
    objects = _disc(15, 20, 7) | _disc(30, 50, 9)
    prob = np.clip(np.where(objects, 0.75, 0.2) + rng.normal(0, 0.04, SHAPE), 0, 1)
    mask = foreground_mask(prob, "otsu")
    # the threshold lies between the modes (0.2 and 0.75): every object pixel passes, and at most the
    # background's noise tail (3 sd above its mode) may reach the bin that holds the threshold
    assert mask[objects].all()
    assert (mask & ~objects).sum() <= 3 and prob[mask & ~objects].min(initial=1.0) > 0.2 + 2.5 * 0.04
    assert label_instances(prob, method="otsu", min_size=2).max() == 2
    # a fixed cutoff of 0.8 would lose most of the objects
    assert label_instances(prob, cutoff=0.8).astype(bool).sum() < objects.sum() / 2


def test_otsu_of_a_constant_map_is_the_default_cutoff():
    assert foreground_mask(np.full((5, 6), 0.7), "otsu").all()
    assert not foreground_mask(np.full((5, 6), 0.3), "otsu").any()


def test_hysteresis_grows_weak_regions_through_edges_not_corners():
    # scikit-image's apply_hysteresis_threshold: a weak pixel that touches the strong one only at a corner is dropped
    prob = np.zeros((5, 5))
    prob[1, 1] = 0.9  # strong
    prob[1, 2] = prob[1, 3] = 0.5  # weak, edge-connected to it
    prob[2, 4] = 0.5  # weak, touching the weak row at a corner only
    prob[3, 0] = 0.5  # weak, alone
    mask = foreground_mask(prob, "hysteresis", cutoff=0.3, high=0.7)
    np.testing.assert_array_equal(np.argwhere(mask), [[1, 1], [1, 2], [1, 3]])


def test_distance_watershed_keeps_one_seed_per_blob_of_a_row():
    # four separate discs and one touching pair: five components, six objects
    mask = _disc(10, 10, 6) | _disc(10, 30, 6) | _disc(10, 50, 6) | _disc(35, 10, 6)
    a, b = _disc(35, 40, 8), _disc(35, 54, 8)
    labels = label_instances(np.where(mask | a | b, 0.9, 0.0), watershed=True, min_distance=4)
    assert labels.max() == 6 and _consecutive(labels)
    assert len(np.unique(labels[_disc(35, 36, 3)])) == 1 and len(np.unique(labels[_disc(35, 58, 3)])) == 1
    assert labels[35, 36] != labels[35, 58]


@pytest.mark.parametrize("kwargs", [{}, {"watershed": True}, {"method": "otsu"}, {"boundary": np.ones((6, 7))},
                                    {"method": "hysteresis", "high": 0.9}])
def test_empty_map_gives_no_object(kwargs):
    labels = label_instances(np.zeros((6, 7)), **kwargs)
    assert labels.dtype == np.int32 and labels.shape == (6, 7) and not labels.any()


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown method"):
        label_instances(np.zeros((4, 4)), method="magic")


# --- settings, grid -----------------------------------------------------------------------------------------------


def test_settings_round_trip_and_validation():
    s = InstanceSettings(method="hysteresis", low=0.3, high=0.7, min_size=12, watershed=True, min_distance=4)
    assert InstanceSettings.from_dict(s.to_dict()) == s
    assert InstanceSettings.from_dict({}) == InstanceSettings()
    with pytest.raises(ValueError, match="unknown InstanceSettings keys"):
        InstanceSettings.from_dict({"cutof": 0.4})
    with pytest.raises(ValueError):
        InstanceSettings(method="hysteresis")
    prob = np.where(_dumbbell(), 0.9, 0.0)
    np.testing.assert_array_equal(s.apply(prob), label_instances(prob, **s.to_dict()))


def test_grid_order_and_size():
    grid = list(instance_grid())
    assert len(grid) == len(set(grid)) == 30
    assert grid[0] == InstanceSettings(method="cutoff", cutoff=0.4, min_size=0, watershed=False)
    assert grid[1] == InstanceSettings(method="cutoff", cutoff=0.4, min_size=16, watershed=False)
    assert grid[2] == InstanceSettings(method="cutoff", cutoff=0.4, min_size=0, watershed=True, min_distance=4)
    assert grid[-1] == InstanceSettings(method="hysteresis", low=0.3, high=0.7, min_size=16, watershed=True,
                                        min_distance=7)
    assert {s.min_distance for s in grid if not s.watershed} == {InstanceSettings.min_distance}
    small = list(instance_grid(cutoffs=(0.5,), otsu=False, hysteresis_pairs=(), min_sizes=(0,), watershed=(True,),
                               min_distances=(3,)))
    assert small == [InstanceSettings(watershed=True, min_distance=3)]


# --- tuning and cross-fitting --------------------------------------------------------------------------------------

PLAIN = InstanceSettings()
SPLIT = InstanceSettings(watershed=True)


def _pair_case():
    """Two touching discs that are two nuclei: the watershed is right."""
    a, b = _touching_pair()
    truth = a.astype(np.int32)
    truth[b & ~a] = 2
    return np.where(a | b, 0.9, 0.0), truth


def _dumbbell_case():
    """One nucleus shaped like a dumbbell: the watershed wrongly splits it."""
    return np.where(_dumbbell(), 0.9, 0.0), _dumbbell().astype(np.int32)


def test_constructed_cases_prefer_what_they_should():
    prob, truth = _pair_case()
    # the merged object overlaps the left disc (all of it) with IoU in (0.50, 0.55): TP 1, FN 1 at t = 0.5 only
    assert 0.5 < match_iou(truth, PLAIN.apply(prob))[0, 0] < 0.55
    assert average_precision(truth, PLAIN.apply(prob))[0] == pytest.approx(0.05)
    assert average_precision(truth, SPLIT.apply(prob))[0] > 0.8
    prob, truth = _dumbbell_case()
    assert average_precision(truth, PLAIN.apply(prob))[0] == 1.0
    assert average_precision(truth, SPLIT.apply(prob))[0] == 0.0


def test_tuning_picks_the_known_best_setting_and_reports_groups():
    cases = [_pair_case(), _pair_case(), _dumbbell_case()]
    probs, trues = [p for p, _ in cases], [t for _, t in cases]
    best, table = tune_instances(probs, trues, ["pair", "pair", "dumbbell"], [PLAIN, SPLIT])
    assert best == SPLIT
    assert table["setting"].tolist() == [0, 1] and table["watershed"].tolist() == [False, True]
    expected = [np.mean([average_precision(t, s.apply(p))[0] for p, t in zip(probs, trues)]) for s in (PLAIN, SPLIT)]
    np.testing.assert_allclose(table["mean_ap"], expected)
    assert table["mean_ap[dumbbell]"].tolist() == [1.0, 0.0]
    assert table["mean_ap[pair]"].tolist()[0] == pytest.approx(0.05)
    best, _ = tune_instances(probs[2:], trues[2:], None, [SPLIT, PLAIN])
    assert best == PLAIN


def test_tuning_ties_go_to_the_first_setting_in_grid_order():
    prob, truth = _dumbbell_case()
    same = InstanceSettings(min_size=3)  # removes nothing here: same labels as PLAIN
    assert tune_instances([prob], [truth], None, [PLAIN, same])[0] == PLAIN
    assert tune_instances([prob], [truth], None, [same, PLAIN])[0] == same
    with pytest.raises(ValueError, match="empty"):
        tune_instances([prob], [truth], None, [])


def test_cross_fitting_chooses_each_fold_on_the_other_folds_only():
    pair, dumbbell = _pair_case(), _dumbbell_case()
    # fold "a" alone prefers PLAIN (a dumbbell), but the others hold three pairs and one dumbbell: SPLIT.
    # fold "b" alone prefers SPLIT (two pairs), but the others hold two dumbbells and one pair: PLAIN.
    cases = [dumbbell, pair, pair, pair, dumbbell]
    folds = ["a", "b", "b", "c", "c"]
    probs, trues = [p for p, _ in cases], [t for _, t in cases]
    table, chosen = cross_fitted_instances(probs, trues, folds, [PLAIN, SPLIT])
    assert chosen == {"a": SPLIT, "b": PLAIN, "c": SPLIT}
    for fold in "abc":  # each fold's choice is what tuning on the other folds alone picks
        others = [i for i, f in enumerate(folds) if f != fold]
        own = [i for i, f in enumerate(folds) if f == fold]
        assert tune_instances([probs[i] for i in others], [trues[i] for i in others], None, [PLAIN, SPLIT])[0] \
            == chosen[fold]
        assert tune_instances([probs[i] for i in own], [trues[i] for i in own], None, [PLAIN, SPLIT])[0] \
            != chosen[fold] or fold == "c"
    assert table["image"].tolist() == [0, 1, 2, 3, 4] and table["fold"].tolist() == folds
    assert table["setting"].tolist() == [1, 0, 0, 1, 1]
    assert table["watershed"].tolist() == [True, False, False, True, True]
    expected = [average_precision(t, chosen[f].apply(p))[0] for p, t, f in zip(probs, trues, folds)]
    np.testing.assert_allclose(table["mean_ap"], expected)
    np.testing.assert_allclose(table["mean_ap"][:3], [0.0, 0.05, 0.05])  # the honest cost of tuning elsewhere
    with pytest.raises(ValueError, match="two folds"):
        cross_fitted_instances(probs, trues, ["a"] * 5, [PLAIN, SPLIT])
