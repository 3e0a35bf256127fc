"""Kaggle run-length encoding of binary masks.

Pixels are numbered from 1, top to bottom, then left to right (column-major, i.e.
Fortran order). A mask is written as space-separated ``start length`` pairs in
increasing order; an empty mask gives the empty string.

Both directions avoid per-pixel Python and, for masks with few runs, the
column-major copy of the mask: :func:`encode` finds the run edges from vertical
differences of the row-major mask (plus the wrap from the bottom of one column to
the top of the next) and sorts the few edges into column-major order; :func:`decode`
writes the runs straight into a row-major mask. Long run lists are formatted and
parsed with vectorised digit arithmetic, one 8-byte word per number, instead of
``str``/``int`` per number; long decodes toggle bytes at the run edges and take
their running parity eight bytes per word. Large temporaries are updated in place:
on a machine where a fresh page costs microseconds, each extra 800 KB array costs
more than the arithmetic. ``tests/test_rle.py`` checks both directions against a
pure-Python encoder and ``int()``; ``benchmarks/bench_rle.py`` times them.
"""

from __future__ import annotations

import sys

import numpy as np

#: Up to this many numbers, Python's str() per number is faster than the vectorised digit code.
_SMALL_FORMAT = 640
#: Up to this many vertical changes, sorting the edges beats a column-major pass over the mask.
_SMALL_SORT = 1024
#: Up to this many runs, decode assigns slices per run.
_SMALL_DECODE = 16
#: Up to this many characters, decode parses with int() per field; up to _LONG_PARSE, with
#: numpy's C parser; above, with word arithmetic.
_SMALL_PARSE = 400
_LONG_PARSE = 6000
#: Up to 1/_SPARSE of the pixels in the foreground, decode writes the foreground pixels' indices
#: (work per foreground pixel); above, it toggles bytes at the run edges (work per pixel).
_SPARSE = 10
_POW10 = 10 ** np.arange(19, dtype=np.int64)
_SPACE, _ZERO = ord(" "), ord("0")
#: The word tricks read and write 8-byte words as little-endian; elsewhere the plain paths run.
_LITTLE = sys.byteorder == "little"
_EVERY_BYTE = np.uint64(0x0101010101010101)  # 1 in each byte of a word
_ASCII_ZEROS = np.uint64(0x3030303030303030)  # b"00000000" as a little-endian word
_LOW_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)


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


def _format(values: np.ndarray, *, consume: bool = False) -> str:
    """Non-negative integers as decimal strings joined by single spaces.

    ``consume=True`` lets a uint64 ``values`` be overwritten (no copy).
    """
    if len(values) <= _SMALL_FORMAT or not _LITTLE or int(values.max()) >= _POW10[7]:
        return " ".join(map(str, values.tolist()))
    # Each number becomes one 8-byte word: 7 digits with leading zeros, then a space. The
    # digits come from splitting the number in halves, quarters, eighths inside the word
    # (divisions by 10**4, 100, 10 as multiply-shift per lane); then the leading zeros go.
    # Every step writes into x, high or low: three arrays in all.
    x = values if consume and values.dtype == np.uint64 else values.astype(np.uint64)
    high = x // 10_000
    low = high * 10_000
    x -= low
    x <<= 32
    x |= high  # lanes of 32 bits: first 4 digits, last 4
    np.multiply(x, 5243, out=high)
    high >>= 19
    high &= 0x0000007F0000007F  # // 100 in each lane (exact below 43,699)
    np.multiply(high, 100, out=low)
    x -= low
    x <<= 16
    x |= high  # lanes of 16 bits, 2 digits each
    np.multiply(x, 103, out=high)
    high >>= 10
    high &= 0x000F000F000F000F  # // 10 in each lane (exact below 179)
    np.multiply(high, 10, out=low)
    x -= low
    x <<= 8
    x |= high  # one digit per byte, the first digit in the lowest byte
    x >>= 8  # values < 10**7: drop the leading 0 of 8 digits
    # leading zero digits = trailing zero bytes of x: the bits below its lowest set bit, counted
    np.negative(x, out=low)
    low &= x
    low -= 1
    zero_bits = np.bitwise_count(low)  # 8 * zero bytes + the set bit's place in its byte; 64 for 0
    zero_bits &= 0xF8
    np.minimum(zero_bits, 48, out=zero_bits)  # at least one digit (0 is "0")
    # the bytes kept: the digits and the space, 1 in each kept byte of a word
    keep = np.left_shift(_EVERY_BYTE, zero_bits, out=low)
    x += _ASCII_ZEROS >> 8
    x |= np.uint64(_SPACE) << 56
    text = np.compress(keep.view(np.bool_), x.view(np.uint8))
    return str(memoryview(text)[:-1], "ascii")


def encode(mask: np.ndarray) -> str:
    """Encode a 2-D binary mask (any nonzero value is foreground) as Kaggle RLE."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {mask.shape}")
    pairs = _edges(mask).view(np.uint64)  # a new array, non-negative: the pairs are written into it
    np.subtract(pairs[1::2], pairs[0::2], out=pairs[1::2])  # lengths
    pairs[0::2] += 1  # 1-based starts
    return _format(pairs, consume=True)


def _parse(text: str) -> np.ndarray:
    """Whitespace-separated non-negative integers, as ``int()`` per field would read them."""
    values = None
    if len(text) > _SMALL_PARSE and text.isascii():
        if len(text) > _LONG_PARSE and _LITTLE:
            values = _parse_words(text)
        if values is None:
            values = _parse_numpy(text)
    if values is None:
        values = np.asarray([int(f) for f in text.split()], dtype=np.int64)
    return values


def _parse_numpy(text: str) -> np.ndarray | None:
    """Digits and spaces only, by numpy's C parser; None for anything else or a value of 19+ digits."""
    chars = np.frombuffer(text.encode("ascii"), dtype=np.uint8)
    digit = (chars - np.uint8(_ZERO)) < 10
    if not np.all(digit | (chars == _SPACE)):
        return None
    # numpy's C parser reads them as int() would, one number per digit run
    fields = np.count_nonzero(digit[1:] & ~digit[:-1]) + bool(digit[0])
    if fields == 0:
        return np.empty(0, dtype=np.int64)
    values = np.fromstring(text, dtype=np.int64, sep=" ")
    if len(values) == fields and values.max() < _POW10[18]:  # longer fields may have saturated
        return values
    return None


def _parse_words(text: str) -> np.ndarray | None:
    """Digits and spaces only, fields of at most 8 digits, by word arithmetic; None for anything else."""
    data = b"        " + text.encode("ascii") + b" "  # 8 spaces in front, one behind
    chars = np.frombuffer(data, dtype=np.uint8)
    spaces = np.flatnonzero(chars == _SPACE)
    if np.count_nonzero((chars - np.uint8(_ZERO)) < 10) + len(spaces) != len(chars):
        return None
    # spaces[7] is the last one in front
    widths = np.diff(spaces[7:])  # 1 + the digits between a space and the next one
    ends = spaces[8:]  # the space after each field
    if widths.min() < 2:  # two spaces in a row: no field between them
        fields = widths > 1
        widths, ends = widths[fields], ends[fields]
    if len(widths) == 0:
        return np.empty(0, dtype=np.int64)
    if widths.max() > 9:
        return None
    return _parse_digits(data, ends, widths)


def _parse_digits(data: bytes, ends: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """The fields of 1 to 8 digits of ``data`` that end before ``ends``, ``widths - 1`` digits each, as int64.

    Each field is read as the 8-byte word ending at its last digit (``data`` starts with 8
    spaces), the bytes in front of the field are cleared, and the digits are combined in
    pairs, quadruples, octets by multiply-shift inside the word.
    """
    words = np.ndarray((len(data) - 7,), dtype=np.uint64, buffer=data, strides=(1,))  # a word at every byte
    ends -= 8
    x = words.take(ends)  # the field's digits in the top bytes, the first in the lowest of them
    widths *= -8
    widths += 72  # bits in front of the field: 8 * (8 - digits)
    x &= np.left_shift(_LOW_NIBBLES, widths.view(np.uint64))  # digit values; leading zeros in front
    x *= 10 * 256 + 1
    x >>= 8
    x &= 0x00FF00FF00FF00FF  # 2-digit numbers in 16-bit lanes
    x *= 100 * 2**16 + 1
    x >>= 16
    x &= 0x0000FFFF0000FFFF  # 4-digit numbers in 32-bit lanes
    x *= 10_000 * 2**32 + 1
    x >>= 32
    return x.view(np.int64)


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
    if not len(values):
        return np.zeros((rows, cols), dtype=np.uint8)
    exceed = f"RLE runs overlap, are out of order or exceed {size} pixels"
    if values.min() < 1:
        raise ValueError("RLE starts must be >= 1 and lengths >= 1")
    if values.max() > size:  # a start or a length beyond the image (and no overflow below)
        raise ValueError(exceed)
    edges = np.empty_like(values)  # 0-based starts and ends (one past the run), interleaved
    starts, ends, lengths = edges[0::2], edges[1::2], values[1::2]
    np.subtract(values[0::2], 1, out=starts)
    np.add(starts, lengths, out=ends)
    gap = (starts[1:] - ends[:-1]).min() if len(starts) > 1 else 1  # 0: a run starts where one ends
    if ends[-1] > size or gap < 0:
        raise ValueError(exceed)
    if len(starts) <= _SMALL_DECODE:
        # few runs: one slice assignment per column a run touches
        out = np.zeros((rows, cols), dtype=np.uint8)
        for start, end in zip(starts.tolist(), ends.tolist()):
            c0, r0 = divmod(start, rows)
            c1, r1 = divmod(end - 1, rows)
            if c0 == c1:
                out[r0:r1 + 1, c0] = 1
            else:
                out[r0:, c0] = 1
                out[:, c0 + 1:c1] = 1
                out[:r1 + 1, c1] = 1
        return out
    foreground = int(lengths.sum())
    if foreground * _SPARSE <= size or not _LITTLE:
        # short runs: the foreground pixels' column-major indices, mapped to row-major
        out = np.zeros((rows, cols), dtype=np.uint8)
        offsets = np.cumsum(lengths) - lengths
        flat = np.repeat(starts - offsets, lengths) + np.arange(foreground)
        col = flat // rows  # floor_divide by a scalar is vectorised, divmod is not
        out.reshape(-1)[(flat - col * rows) * cols + col] = 1
        return out
    return _toggle_runs(edges, gap == 0, rows, cols)


def _toggle_runs(edges: np.ndarray, touching: bool, rows: int, cols: int) -> np.ndarray:
    """The mask from its sorted run edges: a byte 1 at every edge, its running parity, transposed.

    The running parity is taken eight bytes at a time: multiplying a word by 0x0101...01
    gives in each byte the sum of the bytes up to it (at most 8, so no carry between bytes),
    its lowest bit the parity; the words' totals carry the parity from word to word.
    """
    size = rows * cols
    toggles = np.zeros(size // 8 + 1, dtype=np.uint64)  # a byte per pixel and one past the last
    flat = toggles.view(np.uint8)
    if touching:  # a run starts where the previous one ends: the two toggles cancel
        flat[edges[0::2]] = 1
        flat[edges[1::2]] ^= 1
    else:
        flat[edges] = 1
    toggles *= _EVERY_BYTE  # byte k: the toggles in bytes 0..k of the word
    total = toggles >> 56
    before = np.cumsum(total)
    before -= total  # toggles in the words before
    before &= 1
    before *= _EVERY_BYTE
    toggles &= _EVERY_BYTE
    toggles ^= before
    out = np.empty((rows, cols), dtype=np.uint8)
    out[...] = flat[:size].reshape(cols, rows).T
    return out
