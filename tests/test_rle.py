import numpy as np
import pytest

from plexus import rle


def test_hand_computed_column_major():
    # 3 rows x 2 columns; column-major numbering:
    # 1 4
    # 2 5
    # 3 6
    mask = np.array([[1, 0], [1, 1], [0, 1]], dtype=np.uint8)
    assert rle.encode(mask) == "1 2 5 2"


def test_empty_and_full():
    assert rle.encode(np.zeros((4, 5))) == ""
    assert rle.encode(np.ones((4, 5))) == "1 20"
    assert rle.decode("", (4, 5)).sum() == 0


@pytest.mark.parametrize("seed", range(5))
def test_round_trip_random(seed):
    rng = np.random.default_rng(seed)
    mask = (rng.random((42, 58)) < rng.random()).astype(np.uint8) * 255
    decoded = rle.decode(rle.encode(mask), mask.shape)
    np.testing.assert_array_equal(decoded, mask != 0)


def test_decode_against_brute_force():
    text = "3 2 10 1"
    expected = np.zeros(4 * 3, dtype=np.uint8)
    expected[[2, 3, 9]] = 1
    np.testing.assert_array_equal(rle.decode(text, (4, 3)), expected.reshape((3, 4)).T)


@pytest.mark.parametrize("text", ["1", "0 2", "1 0", "5 2 1 1", "11 5"])
def test_decode_rejects_bad_rle(text):
    with pytest.raises(ValueError):
        rle.decode(text, (3, 4))
