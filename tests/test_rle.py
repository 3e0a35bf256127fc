import numpy as np
import pytest

from plexus.io import rle
from references import python_rle_encode


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
        expected = python_rle_encode(mask.tolist())
        assert rle.encode(mask) == expected
        assert rle.encode(mask.astype(np.uint8) * 255) == expected  # any nonzero value is foreground
        assert rle.encode(np.asfortranarray(mask)) == expected  # memory order does not matter
        np.testing.assert_array_equal(rle.decode(expected, shape), mask)


def test_encode_corners_and_column_wraps():
    mask = np.zeros((4, 3), dtype=bool)
    mask[3, 0] = mask[0, 1] = True  # the bottom of column 0 and the top of column 1: one run
    mask[3, 2] = True  # the very last pixel
    assert rle.encode(mask) == "4 2 12 1" == python_rle_encode(mask.tolist())
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
    assert text == python_rle_encode(mask.tolist())
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


@pytest.mark.parametrize(
    "text", ["1 2 x", "1.5 2", "-1 2", "1 2 " * 40 + "3", "1 2 " * 200 + "3", "1 2 " * 2000 + "3", "1 2 " * 2000 + "x"]
)
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
        text = python_rle_encode(mask.tolist())
        decoded = rle.decode(text, mask.shape)
        assert decoded.dtype == np.uint8 and decoded.flags.c_contiguous
        np.testing.assert_array_equal(decoded, mask)


# --- the parsers and the toggle writer ----------------------------------------------------------------------------


def _int_fields(text):
    """What decode's parser must return: int() per whitespace-separated field, as an int64 array."""
    return np.asarray([int(f) for f in text.split()], dtype=np.int64)


def _python_decode(text, shape):
    """Kaggle RLE pixel by pixel into a row-major uint8 mask."""
    rows, cols = shape
    flat = [0] * (rows * cols)
    values = [int(f) for f in text.split()]
    for start, length in zip(values[0::2], values[1::2]):
        for index in range(start - 1, start - 1 + length):
            flat[index] = 1
    return np.array(flat, dtype=np.uint8).reshape(cols, rows).T


def _random_fields(rng, n, max_digits=8, leading_zeros=True):
    """``n`` random digit strings of 1 to ``max_digits`` characters (some with leading zeros)."""
    widths = rng.integers(1, max_digits + 1, n)
    fields = ["".join(map(str, rng.integers(0, 10, w))) for w in widths]
    if not leading_zeros:
        fields = [f.lstrip("0") or "0" for f in fields]
    return fields


def _join_randomly(rng, fields):
    """Fields joined by 1 to 3 spaces, with 0 to 3 spaces in front and behind."""
    gaps = [" " * k for k in rng.integers(1, 4, len(fields))]
    body = "".join(f + g for f, g in zip(fields, gaps))[:-1] if fields else ""
    return " " * int(rng.integers(0, 4)) + body + " " * int(rng.integers(0, 4))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("n", [30, 400, 3000])  # short: int(); middle: numpy's parser; long: word arithmetic
def test_parse_random_digit_strings_like_int(seed, n):
    rng = np.random.default_rng([seed, n])
    text = _join_randomly(rng, _random_fields(rng, n))
    np.testing.assert_array_equal(rle._parse(text), _int_fields(text))
    if len(text) > rle._LONG_PARSE:
        np.testing.assert_array_equal(rle._parse_words(text), _int_fields(text))


def test_parse_words_every_width_and_digit():
    # every digit in every place of fields of 1 to 8 digits, single spaces, no padding
    fields = [str(d) * w for w in range(1, 9) for d in range(10)] + ["10000000", "99999999", "1", "0", "00000000"]
    text = " ".join(fields * 40)
    assert len(text) > rle._LONG_PARSE
    np.testing.assert_array_equal(rle._parse_words(text), _int_fields(text))
    np.testing.assert_array_equal(rle._parse(text), _int_fields(text))


@pytest.mark.parametrize("long_field", ["123456789", "000000000007", "999999999999999999", "4611686018427387904"])
def test_parse_long_fields_fall_back(long_field):
    """A field of 9 or more characters: numpy's parser, or int() once the value may have saturated."""
    rng = np.random.default_rng(0)
    fields = _random_fields(rng, 3000)
    fields[1234] = long_field
    text = " ".join(fields)
    assert rle._parse_words(text) is None
    np.testing.assert_array_equal(rle._parse(text), _int_fields(text))


def test_parse_beyond_int64_raises_as_before():
    text = " ".join(["12"] * 3000 + ["99999999999999999999"])
    with pytest.raises(OverflowError):
        rle._parse(text)


@pytest.mark.parametrize("odd", ["\t", "\n", "+7", "1_000", "\u0661\u0662", "x", "-3", "1.5", "\x00"])
def test_parse_other_characters_like_int(odd):
    """Anything besides ASCII digits and spaces goes to int() per field: same values, same errors."""
    fields = _random_fields(np.random.default_rng(1), 3000)
    fields[17] = odd if odd.strip() else "5" + odd + "6"
    text = " ".join(fields)
    try:
        expected = _int_fields(text)
    except ValueError:
        with pytest.raises(ValueError):
            rle._parse(text)
        return
    if text.isascii():  # _parse reads only ASCII text with numpy
        assert rle._parse_words(text) is None
    np.testing.assert_array_equal(rle._parse(text), expected)


@pytest.mark.parametrize("text", ["", " ", " " * 7000, " ".join(["0"] * 4000), "0" * 4000, " " * 7000 + "0" * 4000])
def test_parse_blank_and_zero_texts(text):
    np.testing.assert_array_equal(rle._parse(text), _int_fields(text))


def _long_rle(rng, shape, touching):
    """A valid RLE text with thousands of runs (and runs that start where the previous one ends)."""
    size = shape[0] * shape[1]
    edges = np.unique(rng.choice(size, 6001, replace=False))[:6000]
    starts, ends = edges[0::2], edges[1::2]
    if touching:
        starts = np.concatenate(([starts[0]], np.where(rng.random(len(starts) - 1) < 0.5, ends[:-1], starts[1:])))
    return " ".join(f"{s + 1} {e - s}" for s, e in zip(starts.tolist(), ends.tolist()))


@pytest.mark.parametrize("touching", [False, True])
@pytest.mark.parametrize("shape", [(420, 580), (101, 99)])
def test_decode_toggles_against_python(touching, shape, monkeypatch):
    calls = []
    toggle_runs = rle._toggle_runs
    monkeypatch.setattr(rle, "_toggle_runs", lambda *a: calls.append(a[1]) or toggle_runs(*a))
    text = _long_rle(np.random.default_rng(shape[0]), shape, touching)
    assert len(text) > rle._LONG_PARSE
    decoded = rle.decode(text, shape)
    assert calls == [touching]
    assert decoded.dtype == np.uint8 and decoded.flags.c_contiguous
    np.testing.assert_array_equal(decoded, _python_decode(text, shape))


def test_decode_run_to_the_last_pixel_by_toggles(monkeypatch):
    rows, cols = 41, 37
    mask = np.random.default_rng(0).random((rows, cols)) < 0.5
    mask[-1, -1] = True
    text = rle.encode(mask)
    start, length = map(int, text.split()[-2:])
    assert start + length - 1 == rows * cols  # a toggle one past the last pixel
    toggle_runs = rle._toggle_runs
    spy = []
    monkeypatch.setattr(rle, "_toggle_runs", lambda *a: spy.append(1) or toggle_runs(*a))
    np.testing.assert_array_equal(rle.decode(text, mask.shape), mask)
    assert spy == [1]


@pytest.mark.parametrize(
    "change",
    [
        lambda v: v[:-1],  # an odd number of fields
        lambda v: np.concatenate((v[:9], [0], v[10:])),  # a length of 0
        lambda v: np.concatenate(([0], v[1:])),  # a start of 0
        lambda v: np.concatenate((v[:10], [v[8]], v[11:])),  # a run starting inside the previous one
        lambda v: np.concatenate((v[:10], v[12:14], v[10:12], v[14:])),  # runs out of order
        lambda v: np.concatenate((v[:-1], [10**7])),  # the last run leaves the image
        lambda v: np.concatenate((v[:-2], [420 * 580 + 1, 1])),  # a start beyond the image
        lambda v: np.concatenate((v[:-2], [2**62 + 1, 2**62])),  # a run whose end overflows int64
    ],
)
def test_decode_rejects_bad_long_rle(change):
    rng = np.random.default_rng(0)
    text = rle.encode(rng.random((420, 580)) < 0.3)
    values = np.asarray(text.split(), dtype=np.int64)
    bad = " ".join(map(str, change(values).tolist()))
    with pytest.raises(ValueError):
        rle.decode(bad, (420, 580))
