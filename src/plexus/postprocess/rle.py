"""Kaggle run-length encoding of binary masks.

Pixels are numbered from 1, top to bottom, then left to right (column-major, i.e.
Fortran order). A mask is written as space-separated ``start length`` pairs in
increasing order; an empty mask gives the empty string.

Both directions avoid per-pixel Python and, for masks with few runs, the
column-major copy of the mask: :func:`encode` finds the run edges from vertical
differences of the row-major mask (plus the wrap from the bottom of one column to
the top of the next) and sorts the few edges into column-major order; :func:`decode`
writes the runs straight into a row-major mask. Long run lists are formatted with
vectorised digit arithmetic (one 8-byte word per number) and parsed by numpy's C
parser instead of ``str``/``int`` per number. ``tests/test_rle.py`` checks both
against a pure-Python encoder; ``benchmarks/bench_rle.py`` times them.
"""

from __future__ import annotations

import numpy as np

#: Up to this many numbers, Python's str() per number is faster than the vectorised digit code.
_SMALL_FORMAT = 640
#: Up to this many vertical changes, sorting the edges beats a column-major pass over the mask.
_SMALL_SORT = 1024
#: Up to this many runs, decode assigns slices per run.
_SMALL_DECODE = 16
_POW10 = 10 ** np.arange(19, dtype=np.int64)
_SPACE, _ZERO = ord(" "), ord("0")


def _edges(mask: np.ndarray) -> np.ndarray:
    """Column-major flat indices (0-based) where a run starts or ends (one past it), ascending, alternating."""
    rows, cols = mask.shape
    if mask.dtype != np.bool_:
        mask = mask != 0
    if not mask.any():
        return np.empty(0, dtype=np.int64)
    vertical = mask[1:] != mask[:-1]  # row-major: no transposed copy of the mask
    if np.count_nonzero(vertical) > _SMALL_SORT:
        # many runs: sorting their edges would cost more than the column-major pass
        flat = np.zeros(rows * cols + 2, dtype=np.bool_)
        flat[1:-1].reshape(cols, rows)[...] = mask.T
        return np.flatnonzero(flat[1:] != flat[:-1])
    # inside a column: pixel (r, c) differs from (r - 1, c); flat index c * rows + r
    changed = np.flatnonzero(vertical)
    r = changed // cols  # floor_divide by a scalar is vectorised, divmod is not
    inner = (changed - r * cols) * rows + (r + 1)
    # the top of column c follows the bottom of column c - 1 (column 0 follows a background pixel)
    top = np.flatnonzero(mask[0] != np.concatenate(([False], mask[-1, :-1]))) * rows
    last = np.array([rows * cols] if mask[-1, -1] else [], dtype=np.int64)  # a run ending at the last pixel
    edges = np.concatenate((inner, top, last))
    edges.sort()
    return edges


_ASCII_ZEROS = np.uint64(0x3030303030303030)  # b"00000000" as a little-endian word


def _keep_table(width: int) -> np.ndarray:
    """Per digit count: a little-endian word, bytes 1 where a ``width``-digit field plus a space keeps a byte."""
    keep = np.arange(8) >= (width - np.arange(width + 1))[:, None]
    keep[:, width + 1:] = False
    return np.ascontiguousarray(keep.astype(np.uint8)).view(np.uint64)[:, 0]


def _format(values: np.ndarray) -> str:
    """Non-negative integers as decimal strings joined by single spaces."""
    if len(values) <= _SMALL_FORMAT or int(values.max()) >= _POW10[7]:
        return " ".join(map(str, values.tolist()))
    # Each number becomes one 8-byte word: 7 digits with leading zeros, then a space. The
    # digits come from splitting the number in halves, quarters, eighths inside the word
    # (divisions by 10**4, 100, 10 as multiply-shift per lane); then the leading zeros go.
    v = values.astype(np.uint64)
    high = v // 10_000
    x = high | ((v - high * 10_000) << 32)  # lanes of 32 bits: first 4 digits, last 4
    high = ((x * 5243) >> 19) & 0x0000007F0000007F  # // 100 in each lane (exact below 43,699)
    x = high | ((x - high * 100) << 16)  # lanes of 16 bits, 2 digits each
    high = ((x * 103) >> 10) & 0x000F000F000F000F  # // 10 in each lane (exact below 179)
    x = high | ((x - high * 10) << 8)  # one digit per byte, the first digit in the lowest byte
    x >>= 8  # values < 10**7: drop the leading 0 of 8 digits
    # leading zero digits = trailing zero bytes of x: count the trailing zero bits with a popcount
    zero_bytes = np.bitwise_count((x & (~x + 1)) - 1) >> 3
    digits = np.maximum(7 - zero_bytes.astype(np.intp), 1)
    words = (x + (_ASCII_ZEROS >> 8)) | (np.uint64(_SPACE) << 56)
    keep = _keep_table(7)[digits].view(np.bool_)
    return np.compress(keep, words.view(np.uint8))[:-1].tobytes().decode("ascii")


def encode(mask: np.ndarray) -> str:
    """Encode a 2-D binary mask (any nonzero value is foreground) as Kaggle RLE."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    edges = _edges(mask)
    pairs = np.empty_like(edges)
    pairs[0::2] = edges[0::2] + 1
    pairs[1::2] = edges[1::2] - edges[0::2]
    return _format(pairs)


def _parse(text: str) -> np.ndarray:
    """Whitespace-separated non-negative integers, as ``int()`` per field would read them."""
    if len(text) > 64 and text.isascii():
        chars = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
        digit = (chars - np.uint8(_ZERO)) < 10
        if np.all(digit | (chars == _SPACE)):
            # only digits and spaces: numpy's C parser reads them as int() would, one number per digit run
            fields = np.count_nonzero(digit[1:] & ~digit[:-1]) + bool(digit[0])
            if fields == 0:
                return np.empty(0, dtype=np.int64)
            values = np.fromstring(text, dtype=np.int64, sep=" ")
            if len(values) == fields and values.max() < _POW10[18]:  # longer fields may have saturated
                return values
    return np.asarray([int(f) for f in text.split()], dtype=np.int64)


def decode(text: str, shape: tuple[int, int]) -> np.ndarray:
    """Decode Kaggle RLE into a uint8 mask of ``shape`` with values {0, 1}.

    Raises ValueError on an odd number of fields, a non-positive start or length,
    runs out of order or overlapping, or runs that leave the image.
    """
    rows, cols = shape
    size = rows * cols
    text = str(text) if text is not None and str(text) != "nan" else ""
    values = _parse(text)
    if len(values) % 2:
        raise ValueError(f"RLE has an odd number of fields ({len(values)})")
    starts, lengths = values[0::2] - 1, values[1::2]
    if (starts < 0).any() or (lengths <= 0).any():
        raise ValueError("RLE starts must be >= 1 and lengths >= 1")
    ends = starts + lengths
    if len(starts) and (ends[-1] > size or (starts[1:] < ends[:-1]).any()):
        raise ValueError(f"RLE runs overlap, are out of order or exceed {size} pixels")
    out = np.zeros((rows, cols), dtype=np.uint8)
    if len(starts) <= _SMALL_DECODE:
        # few runs: one slice assignment per column a run touches
        for start, end in zip(starts.tolist(), ends.tolist()):
            c0, r0 = divmod(start, rows)
            c1, r1 = divmod(end - 1, rows)
            if c0 == c1:
                out[r0:r1 + 1, c0] = 1
            else:
                out[r0:, c0] = 1
                out[:, c0 + 1:c1] = 1
                out[:r1 + 1, c1] = 1
    elif lengths.sum() <= size // 4:
        # many short runs: the foreground pixels' column-major indices, mapped to row-major
        offsets = np.cumsum(lengths) - lengths
        flat = np.repeat(starts - offsets, lengths) + np.arange(int(lengths.sum()))
        col = flat // rows  # floor_divide by a scalar is vectorised, divmod is not
        out.reshape(-1)[(flat - col * rows) * cols + col] = 1
    else:
        # much foreground: toggle at every run edge, accumulate in column-major order, transpose
        toggles = np.zeros(size + 1, dtype=np.int8)
        toggles[starts] = 1
        toggles[ends] -= 1  # a run that starts where the previous one ends cancels the toggle
        out[...] = np.cumsum(toggles[:-1], dtype=np.int8).reshape(cols, rows).T
    return out
