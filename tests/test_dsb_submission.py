"""DSB2018 submission rows: against a pure-Python encoder, round trips, overlap detection."""

from __future__ import annotations

import io

import numpy as np
import pandas as pd
import pytest

from plexus.postprocess.dsb_submission import decode_submission, encode_instances, submission_rows
from references import python_rle_encode


def _partition(labels):
    flat = np.asarray(labels).ravel()
    return {frozenset(np.flatnonzero(flat == v).tolist()) for v in np.unique(flat[flat > 0])}


def _random_labels(rng, shape):
    """Rectangles with non-consecutive labels painted over each other, plus scattered pixels of one more label."""
    out = np.zeros(shape, dtype=np.int64)
    for value in rng.choice(np.arange(1, 1000), size=int(rng.integers(0, 9)), replace=False):
        r, c = rng.integers(0, shape[0]), rng.integers(0, shape[1])
        h, w = rng.integers(1, shape[0] + 1), rng.integers(1, 8)
        out[r:r + h, c:c + w] = value
    if rng.random() < 0.5:
        out[rng.random(shape) < 0.05] = 5000  # a disconnected object, touching the last row and column too
    return out


def test_hand_computed():
    # 3 rows x 2 columns; column-major numbering 1 4 / 2 5 / 3 6
    labels = np.array([[7, 0], [7, 2], [0, 2]])
    assert encode_instances(labels) == ["5 2", "1 2"]  # ascending labels: 2, then 7
    frame = submission_rows(["x"], [labels])
    assert frame.to_dict("list") == {"ImageId": ["x", "x"], "EncodedPixels": ["5 2", "1 2"]}


@pytest.mark.parametrize("seed", range(10))
def test_against_pure_python_encoder_and_round_trip(seed):
    rng = np.random.default_rng(seed)
    shapes = [(int(rng.integers(1, 20)), int(rng.integers(1, 20))) for _ in range(3)]
    maps = [_random_labels(rng, s) for s in shapes]
    for labels in maps:
        values = [v for v in np.unique(labels) if v]
        assert encode_instances(labels) == [python_rle_encode((labels == v).tolist()) for v in values]
    ids = [f"img{i}" for i in range(3)]
    frame = submission_rows(ids, maps)
    objects = [int((np.unique(m) > 0).sum()) for m in maps]
    assert frame.groupby("ImageId", sort=False).size().tolist() == [max(1, n) for n in objects]
    decoded = decode_submission(frame, dict(zip(ids, shapes)))
    for image_id, labels in zip(ids, maps):
        assert decoded[image_id].dtype == np.int32
        assert _partition(decoded[image_id]) == _partition(labels)
        nonzero = decoded[image_id][decoded[image_id] > 0]
        assert np.array_equal(np.unique(nonzero), np.arange(1, decoded[image_id].max() + 1))


def test_empty_image_gets_one_empty_row_and_survives_a_csv_round_trip():
    full = np.zeros((4, 5), dtype=np.int32)
    full[1:3, 1:4] = 3
    frame = submission_rows(["empty", "one"], [np.zeros((4, 5), dtype=np.int32), full])
    assert frame.to_dict("list") == {"ImageId": ["empty", "one"], "EncodedPixels": ["", "6 2 10 2 14 2"]}
    text = frame.to_csv(index=False)
    assert text.splitlines()[1] == "empty,"
    back = pd.read_csv(io.StringIO(text))  # the empty field comes back as NaN
    decoded = decode_submission(back, {"empty": (4, 5), "one": (4, 5)})
    assert not decoded["empty"].any()
    np.testing.assert_array_equal(decoded["one"], full // 3)


def test_overlapping_nuclei_are_rejected():
    frame = pd.DataFrame({"ImageId": ["a", "b", "a", "a"], "EncodedPixels": ["1 4", "1 1", "9 2", "3 7"]})
    with pytest.raises(ValueError, match=r"image a: rows 1 and 4 overlap in 2 pixel\(s\)"):
        decode_submission(frame, {"a": (4, 4), "b": (4, 4)})
    # touching (adjacent runs) is not overlapping
    frame.loc[3, "EncodedPixels"] = "5 4"
    decoded = decode_submission(frame, {"a": (4, 4), "b": (4, 4)})
    assert decoded["a"].max() == 3 and (decoded["a"] > 0).sum() == 10


def test_ids_must_match_the_test_set():
    frame = submission_rows(["a"], [np.ones((2, 2), dtype=np.int32)])
    with pytest.raises(ValueError, match="no row"):
        decode_submission(frame, {"a": (2, 2), "b": (2, 2)})
    with pytest.raises(ValueError, match="not in the test set"):
        decode_submission(frame, {"c": (2, 2)})
    with pytest.raises(ValueError, match="row 1"):
        decode_submission(pd.DataFrame({"ImageId": ["a"], "EncodedPixels": ["3 9"]}), {"a": (2, 2)})
    with pytest.raises(ValueError, match="unique"):
        submission_rows(["a", "a"], [np.ones((2, 2))] * 2)
