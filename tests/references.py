"""Brute-force references shared by the unit tests: slow, obvious, independent of plexus."""

from __future__ import annotations

from collections import deque

import numpy as np


def python_rle_encode(mask) -> str:
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


def components(mask) -> list[set[tuple[int, int]]]:
    """8-connected components by breadth-first search, in raster order of their first pixel."""
    mask = np.asarray(mask, dtype=bool)
    seen = np.zeros_like(mask)
    out = []
    for start in zip(*np.nonzero(mask)):
        if seen[start]:
            continue
        queue, comp = deque([start]), set()
        seen[start] = True
        while queue:
            r, c = queue.popleft()
            comp.add((r, c))
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    rr, cc = r + dr, c + dc
                    if 0 <= rr < mask.shape[0] and 0 <= cc < mask.shape[1] and mask[rr, cc] and not seen[rr, cc]:
                        seen[rr, cc] = True
                        queue.append((rr, cc))
        out.append(comp)
    return out
