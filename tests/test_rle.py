import numpy as np
import pytest

from plexus.postprocess import rle


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


# --- against a pure-Python encoder ------------------------------------------------------------------------------


def _python_encode(mask) -> str:
    """Kaggle RLE pixel by pixel: column-major, 1-based starts."""
    rows, cols = len(mask), len(mask[0])
    pairs, start = [], None
    for index in range(rows * cols):
        c, r = divmod(index, rows)
        if mask[r][c] and start is None:
            start = index
        elif not mask[r][c] and start is not None:
            pairs += [start + 1, index - start]
            start = None
    if start is not None:
        pairs += [start + 1, rows * cols - start]
    return " ".join(map(str, pairs))


def _random_mask(rng, shape, kind):
    if kind == "speckle":  # many short runs
        return rng.random(shape) < rng.uniform(0.05, 0.95)
    if kind == "blobs":  # a few rectangles, some wrapping from a column's bottom to the next column's top
        mask = np.zeros(shape, dtype=bool)
        for _ in range(rng.integers(1, 6)):
            r, c = rng.integers(0, shape[0]), rng.integers(0, shape[1])
            mask[r:r + rng.integers(1, shape[0] + 1), c:c + rng.integers(1, 4)] = True
        return mask
    if kind == "dense":  # mostly foreground with holes
        return rng.random(shape) < 0.97
    raise ValueError(kind)


@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (3, 4), (42, 58), (130, 90)])
@pytest.mark.parametrize("kind", ["speckle", "blobs", "dense"])
def test_encode_matches_python_encoder(shape, kind):
    rng = np.random.default_rng(hash((shape, kind)) % 2**32)
    for _ in range(4):
        mask = _random_mask(rng, shape, kind)
        expected = _python_encode(mask.tolist())
        assert rle.encode(mask) == expected
        assert rle.encode(mask.astype(np.uint8) * 255) == expected  # any nonzero value is foreground
        assert rle.encode(np.asfortranarray(mask)) == expected  # memory order does not matter
        np.testing.assert_array_equal(rle.decode(expected, shape), mask)


def test_encode_corners_and_column_wraps():
    mask = np.zeros((4, 3), dtype=bool)
    mask[3, 0] = mask[0, 1] = True  # the bottom of column 0 and the top of column 1: one run
    mask[3, 2] = True  # the very last pixel
    assert rle.encode(mask) == "4 2 12 1" == _python_encode(mask.tolist())
    mask[:] = False
    mask[0, 0] = True  # the very first pixel
    assert rle.encode(mask) == "1 1"
    np.testing.assert_array_equal(rle.decode("1 1", (4, 3)), mask)


@pytest.mark.parametrize("seed", range(3))
def test_long_run_lists_take_the_vectorised_paths(seed):
    """Thousands of runs: edges by the column-major pass, digits by word arithmetic, numpy's parser."""
    rng = np.random.default_rng(seed)
    mask = rng.random((420, 580)) < 0.3
    text = rle.encode(mask)
    assert len(text.split()) > 2 * max(rle._SMALL_FORMAT, rle._SMALL_SORT)
    assert text == _python_encode(mask.tolist())
    np.testing.assert_array_equal(rle.decode(text, mask.shape), mask)
    values = np.asarray(text.split(), dtype=np.int64)
    assert rle._format(values) == text


def test_format_numbers_of_every_width():
    rng = np.random.default_rng(0)
    values = np.concatenate([[0, 1, 9, 10, 99, 100, 999_999, 1_000_000, 9_999_999],
                             10 ** rng.integers(0, 7, 2000) + rng.integers(0, 10, 2000)])
    values = np.minimum(values, 9_999_999)
    assert rle._format(values) == " ".join(map(str, values.tolist()))
    big = np.array([5, 10_000_000, 123_456_789_012] + [7] * 1000)  # 8+ digits: str() per number
    assert rle._format(big) == " ".join(map(str, big.tolist()))


def test_starts_beyond_seven_digits():
    mask = np.zeros((4000, 3000), dtype=bool)
    mask[-5:, -1] = True
    mask[::700, 5] = True
    assert rle.encode(mask) == "20001 1 20701 1 21401 1 22101 1 22801 1 23501 1 11999996 5"
    np.testing.assert_array_equal(rle.decode(rle.encode(mask), mask.shape), mask)


@pytest.mark.parametrize("text", [" 1  2\t5 1\n", "0003 2 7 01", "1 2 5 2" + " " * 100, "  ", "\n", " " * 100])
@pytest.mark.parametrize("repeat", [1, 50])  # short text: int() per field; long: numpy's parser
def test_parse_whitespace_and_leading_zeros_like_int(text, repeat):
    text = " ".join([text] * repeat)
    np.testing.assert_array_equal(rle._parse(text), [int(f) for f in text.split()])


@pytest.mark.parametrize("text", ["1 2 x", "1.5 2", "-1 2", "1 2 " * 40 + "3"])
def test_decode_rejects_malformed_long_and_short_text(text):
    with pytest.raises(ValueError):
        rle.decode(text, (420, 580))


@pytest.mark.parametrize("runs", [1, 10, 100, 3000])
def test_decode_paths_agree(runs):
    """Slices per run, foreground indices, toggles: each decoder path against the Python encoder."""
    rng = np.random.default_rng(runs)
    for density in (0.02, 0.5, 0.9):
        mask = np.zeros((60, 70), dtype=bool)
        starts = np.sort(rng.choice(mask.size, size=runs, replace=False))
        for s, e in zip(starts, np.append(starts[1:], mask.size)):
            mask.T.reshape(-1)[s:s + max(1, int((e - s) * density))] = True
        text = _python_encode(mask.tolist())
        decoded = rle.decode(text, mask.shape)
        assert decoded.dtype == np.uint8 and decoded.flags.c_contiguous
        np.testing.assert_array_equal(decoded, mask)
