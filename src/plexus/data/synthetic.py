"""A seeded synthetic stand-in for the Kaggle "Ultrasound Nerve Segmentation" data.

:func:`generate_dataset` writes ``train/{S}_{I}.tif``, ``train/{S}_{I}_mask.tif`` and
``test/{N}.tif`` (420x580 uint8, LZW) plus ``synthetic_summary.json``, small enough
for the workflow to train tiny U-Nets on a laptop CPU in minutes, and shaped like the
real set in the ways that matter to its methods (cross-validation by subject, an
empty/non-empty decision, cutoff and minimum-area tuning).

Generative model
----------------
*Subject* (``default_rng([seed, kind, subject, 0])``, ``kind`` 0 train, 1 test) owns a
fixed *echo map*, the mean brightness of the tissue before speckle, on a canvas a
little larger than the frame: dark muscle with faint horizontal fibre streaks,
attenuating with depth below a bright skin line; 4-6 long, roughly horizontal,
wavy fascia bands of varying strength (the strongest saturate at 255); 1-2 anechoic
vessels with a specular wall and posterior enhancement; a few small dark round
blobs. It also owns a *nerve*: an ellipse (area log-normal, median 7,000 px,
irregular outline) in the upper half, holding a packed cluster of dark round
fascicles (radius 6-12 px) separated by bright septa inside a bright rim (the
"honeycomb"), and a *look-alike*: a small rimless partial honeycomb elsewhere.

*Frame* (``default_rng([seed, kind, subject, image])``) = the subject's echo map seen
through probe motion (an integer shift of a few pixels plus a column-wise vertical
wobble), the look-alike shown in some frames, the nerve (jittered in place, +-5%
in scale, with random contrast and, sometimes, one side faded out) when the frame is
*positive*, all multiplied by fresh, fully developed speckle (the envelope of
blurred complex Gaussian noise: Rayleigh, grain 2-4 px) and clipped to uint8.

Each subject has its own positive rate, a stratified draw from Beta(1.3, 1.7) (mean
0.43) clipped to [0.02, 0.89], like the real 2-89% spread; exactly
``max(1, round(rate * n))`` of its frames show the nerve. The mask of such a frame is
the nerve ellipse, except for label noise: 4% of the frames that show the nerve
(chosen across the whole set) are labelled empty. The other frames show no nerve,
but the distractors (vessels, dark blobs, look-alike) are in every frame alike. Test
frames come from separate subjects and are numbered in a seeded shuffled order.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from scipy import ndimage, stats

from plexus.data.ingest import KAGGLE_SHAPE
from plexus.io.atomic import write_json
from plexus.io.tiff import write_tiff

__all__ = ["generate_dataset"]

H, W = KAGGLE_SHAPE  # the Kaggle layout's size, which its importer checks
PAD = 24  # canvas margin that absorbs probe motion (pixels)
RATE_BETA = (1.3, 1.7)  # per-subject positive rate ~ Beta, clipped to RATE_CLIP
RATE_CLIP = (0.02, 0.89)
LABEL_NOISE = 0.04  # P(nerve visible but mask empty)
AREA_MEDIAN, AREA_SIGMA, AREA_CLIP = 7000.0, 0.26, (3300.0, 16000.0)


def _smooth_1d(rng, n: int, scale: float, lo: float, hi: float) -> np.ndarray:
    """A smooth random curve of length ``n`` with values in [lo, hi]."""
    f = ndimage.gaussian_filter1d(rng.standard_normal(n + 200), scale, mode="wrap")[100:-100]
    f = (f - f.min()) / (np.ptp(f) + 1e-9)
    return lo + (hi - lo) * f


def _pack_fascicles(rng, a: float, b: float, r_lo: float, r_hi: float, tries: int) -> np.ndarray:
    """Non-overlapping circles (u, v, r) inside the ellipse with semi-axes a, b."""
    out: list[tuple[float, float, float]] = []
    for _ in range(tries):
        r = rng.uniform(r_lo, r_hi)
        t, s = rng.uniform(0, 2 * np.pi), np.sqrt(rng.uniform())
        u, v = s * max(a - r - 4, 1) * np.cos(t), s * max(b - r - 4, 1) * np.sin(t)
        if all((u - p) ** 2 + (v - q) ** 2 > (r + rr + 3) ** 2 for p, q, rr in out):
            out.append((u, v, r))
    return np.array(out, dtype=np.float32).reshape(-1, 3)


def _disc(canvas: np.ndarray, cy: float, cx: float, ry: float, rx: float, fn) -> None:
    """Apply ``fn(canvas_window, normalised_radius)`` around an ellipse, in place."""
    y0, y1 = int(max(cy - 3 * ry, 0)), int(min(cy + 3 * ry + 1, canvas.shape[0]))
    x0, x1 = int(max(cx - 3 * rx, 0)), int(min(cx + 3 * rx + 1, canvas.shape[1]))
    yy, xx = np.ogrid[y0:y1, x0:x1]
    rho = np.sqrt(((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2).astype(np.float32)
    canvas[y0:y1, x0:x1] = fn(canvas[y0:y1, x0:x1], rho)


def _subject(rng, area: float) -> dict:
    """Draw one subject's anatomy: echo map on the padded canvas, the nerve (of about
    ``area`` px) and the look-alike."""
    ch, cw = H + 2 * PAD, W + 2 * PAD
    y = np.arange(ch, dtype=np.float32)[:, None] - PAD
    x = np.arange(cw, dtype=np.float32)[None, :] - PAD
    # Nerve first, so that the rest can keep clear of it.
    q = rng.uniform(1.15, 1.8)
    a, b = np.sqrt(area * q / np.pi), np.sqrt(area / (q * np.pi))
    nerve = dict(
        cy=rng.uniform(max(90, b + 30), 230), cx=rng.uniform(a + 60, W - a - 60),
        a=a, b=b, angle=rng.uniform(-0.35, 0.35),
        harm=rng.normal(0, 0.05, 3), phase=rng.uniform(0, 2 * np.pi, 3),
        fasc=_pack_fascicles(rng, a, b, 6, 12, 400),
        sep=rng.uniform(125, 175), dark=rng.uniform(15, 35), rim=rng.uniform(190, 250),
    )
    # Muscle: base level, depth attenuation, faint horizontal fibre streaks.
    level = rng.uniform(80, 96)
    fat = rng.uniform(25, 60)
    depth = np.exp(-rng.uniform(0.1, 0.5) * np.clip(y, 0, None) / H)
    fibres = ndimage.gaussian_filter(rng.standard_normal((ch, cw)).astype(np.float32), (2, 20))
    echo = level * depth * np.clip(1 + 6.0 * fibres, 0.3, None) * np.where(y < fat, 0.75, 1.0)
    echo += 200 * np.exp(-0.5 * ((y - rng.uniform(2, 8)) / 3) ** 2)  # skin line
    # Fascia: long, wavy, roughly horizontal bands; one just above and one below the nerve.
    rows = [nerve["cy"] - b - rng.uniform(8, 25), nerve["cy"] + b + rng.uniform(10, 40)]
    rows += list(rng.uniform(fat, H - 20, rng.integers(2, 5)))
    xs = x[0] - W / 2
    for k, y0 in enumerate(rows):
        centre = y0 + rng.normal(0, 0.08) * xs + rng.uniform(3, 12) * np.sin(
            2 * np.pi * xs / rng.uniform(250, 900) + rng.uniform(0, 2 * np.pi))
        strength = rng.uniform(80, 210) * _smooth_1d(rng, cw, rng.uniform(20, 60), 0.2 if k > 1 else 0.6, 1.0)
        thick = rng.uniform(3, 8)
        echo += strength[None, :] * np.exp(-0.5 * ((y - centre[None, :]) / thick) ** 2)
    # Vessels (anechoic, bright wall, brighter below) and small dark blobs, away from the nerve.
    def away(r_min):
        while True:
            cy, cx = rng.uniform(40, H - 40), rng.uniform(40, W - 40)
            if np.hypot((cy - nerve["cy"]) / (b + r_min), (cx - nerve["cx"]) / (a + r_min)) > 1.3:
                return cy, cx
    for _ in range(rng.integers(1, 3)):
        r, (cy, cx) = rng.uniform(10, 24), away(30)
        echo[int(cy) + PAD:, int(cx - r) + PAD:int(cx + r) + PAD] *= 1.25  # posterior enhancement
        _disc(echo, cy + PAD, cx + PAD, r * 0.8, r,
              lambda e, rho: np.where(rho < 1, e * 0.08, e + 150 * np.exp(-0.5 * ((rho - 1) / 0.12) ** 2)))
    for _ in range(rng.integers(3, 8)):
        r, (cy, cx) = rng.uniform(4, 10), away(15)
        _disc(echo, cy + PAD, cx + PAD, r, r, lambda e, rho: e * (1 - 0.75 / (1 + np.exp((rho - 1) / 0.1))))
    la_cy, la_cx = away(40)
    lookalike = dict(cy=la_cy, cx=la_cx, a=28.0, b=20.0, angle=rng.uniform(-0.5, 0.5),
                     harm=np.zeros(3), phase=np.zeros(3),
                     fasc=_pack_fascicles(rng, 28, 20, 5, 9, 12), sep=rng.uniform(110, 150),
                     dark=rng.uniform(20, 40), rim=0.0)
    gain = rng.uniform(0.9, 1.1)
    return dict(echo=(echo * gain).astype(np.float32), nerve=nerve, lookalike=lookalike,
                p_lookalike=rng.uniform(0.2, 0.7))


def _render_nerve(echo: np.ndarray, n: dict, cy: float, cx: float, scale: float, contrast: float,
                  rng, fade: bool, want_mask: bool) -> np.ndarray | None:
    """Blend a honeycomb (ellipse of fascicles, septa and rim) into ``echo`` in place."""
    a, b = n["a"] * scale, n["b"] * scale
    half = int(max(a, b) * 1.3 + 12)
    y0, y1 = max(int(cy) - half, 0), min(int(cy) + half, H)
    x0, x1 = max(int(cx) - half, 0), min(int(cx) + half, W)
    yy, xx = np.ogrid[y0:y1, x0:x1]
    dy, dx = (yy - cy).astype(np.float32), (xx - cx).astype(np.float32)
    c, s = np.cos(n["angle"]), np.sin(n["angle"])
    u, v = c * dx + s * dy, -s * dx + c * dy
    theta = np.arctan2(v / b, u / a)
    wobble = 1 + sum(h * np.sin((k + 2) * theta + p) for k, (h, p) in enumerate(zip(n["harm"], n["phase"])))
    rho = np.sqrt((u / a) ** 2 + (v / b) ** 2) / wobble
    f = n["fasc"]
    fu, fv = f[:, 0] * scale + rng.normal(0, 1.0, len(f)), f[:, 1] * scale + rng.normal(0, 1.0, len(f))
    fr = f[:, 2] * scale * rng.uniform(0.85, 1.15, len(f))
    dmin = np.full(rho.shape, 9.0, np.float32)
    for pu, pv, pr in zip(fu, fv, fr):
        dmin = np.minimum(dmin, np.sqrt((u - pu) ** 2 + (v - pv) ** 2) / pr)
    inside = 1 / (1 + np.exp(np.clip((dmin - 1) * 8, -30, 30)))  # 1 in a fascicle
    tissue = n["sep"] * (1 - inside) + n["dark"] * inside
    radius = np.sqrt(a * b)
    w = contrast / (1 + np.exp(np.clip((rho - 1) * radius / 1.5, -30, 30)))
    if fade:  # one side of the nerve lost in shadow / out of plane
        t = rng.uniform(0, 2 * np.pi)
        w = w * np.clip(0.5 + (np.cos(t) * u + np.sin(t) * v) / radius * rng.uniform(1, 2), 0.1, 1)
    win = echo[y0:y1, x0:x1]
    win += w * (tissue - win)
    if n["rim"]:
        ring = contrast * np.exp(-0.5 * ((rho - 1) * radius / 4.0) ** 2)
        win += ring * (n["rim"] - win) * 0.8
    if not want_mask:
        return None
    mask = np.zeros((H, W), np.uint8)
    mask[y0:y1, x0:x1] = np.where(rho < 1, 255, 0)
    return mask


def _speckle(rng) -> np.ndarray:
    """Unit-mean Rayleigh speckle with a grain of a few pixels (wider laterally).

    The envelope of blurred complex white noise. Uniform noise is drawn (6x faster than
    normal); after the blur, which averages ~18 samples, it is Gaussian to the eye.
    """
    z = rng.random((2, H, W), dtype=np.float32) - np.float32(0.5)
    z = ndimage.gaussian_filter(z, (0.9, 1.6), truncate=2.0, axes=(1, 2))
    s = np.sqrt(z[0] * z[0] + z[1] * z[1])
    return s / s.mean()


def _frame(sub: dict, rng, positive: bool, noisy: bool) -> tuple[np.ndarray, np.ndarray, bool]:
    """Render one frame of a subject: (image uint8, mask uint8 {0,255}, nerve visible).

    ``noisy`` (label noise): the nerve is shown but the mask is left empty."""
    dy, dx = np.clip(np.rint(rng.normal(0, 5, 2)), -PAD + 4, PAD - 4).astype(int)
    wob = np.rint(rng.uniform(-3, 3) * np.sin(2 * np.pi * np.arange(W) / rng.uniform(300, 900)
                                              + rng.uniform(0, 2 * np.pi))).astype(int)
    rows = np.arange(H)[:, None] + dy + wob[None, :] + PAD
    echo = sub["echo"][rows, np.arange(W)[None, :] + dx + PAD]

    def place(obj):
        col = int(np.clip(obj["cx"] - dx, 0, W - 1))
        return obj["cy"] - dy - wob[col] + rng.normal(0, 2), obj["cx"] - dx + rng.normal(0, 2)

    if rng.uniform() < sub["p_lookalike"]:
        cy, cx = place(sub["lookalike"])
        _render_nerve(echo, sub["lookalike"], cy, cx, 1.0, rng.uniform(0.5, 0.9), rng, False, False)
    mask = np.zeros((H, W), np.uint8)
    if positive:
        cy, cx = place(sub["nerve"])
        scale = np.exp(rng.normal(0, 0.05))
        m = _render_nerve(echo, sub["nerve"], cy, cx, scale, rng.uniform(0.45, 1.0),
                          rng, rng.uniform() < 0.25, True)
        if not noisy:
            mask = m
    image = np.clip(echo * _speckle(rng), 0, 255).astype(np.uint8)
    return image, mask, positive


def _draws(seed: int, kind: int, n: int, frames: int) -> list[dict]:
    """Per-subject draws made jointly, so that even a handful of subjects spans the
    distributions: positive rate and nerve area (quantiles from random strata), the
    number of frames showing the nerve, and how many of those are labelled empty
    (``round(LABEL_NOISE * total)`` spread at random over all such frames)."""
    rng = np.random.default_rng([seed, kind, 0, 0])
    u = (rng.permutation(n) + rng.uniform(size=n)) / n
    v = (rng.permutation(n) + rng.uniform(size=n)) / n
    rates = np.clip(stats.beta.ppf(u, *RATE_BETA), *RATE_CLIP)
    areas = np.clip(AREA_MEDIAN * np.exp(AREA_SIGMA * stats.norm.ppf(v)), *AREA_CLIP)
    n_pos = np.maximum(1, np.rint(rates * frames)).astype(int)
    owner = np.repeat(np.arange(n), n_pos)
    noisy = rng.choice(owner.size, int(round(LABEL_NOISE * owner.size)), replace=False)
    n_noisy = np.bincount(owner[noisy], minlength=n)
    return [dict(rate=float(r), area=float(a), n_pos=int(p), n_noisy=int(k))
            for r, a, p, k in zip(rates, areas, n_pos, n_noisy)]


def _subject_frames(seed: int, kind: int, s: int, n: int, d: dict):
    """Yield (image number, image, mask, visible) for the ``n`` frames of subject ``s``."""
    rng = np.random.default_rng([seed, kind, s, 0])
    sub = _subject(rng, d["area"])
    order = rng.permutation(n)
    positive, noisy = np.zeros(n, bool), np.zeros(n, bool)
    positive[order[: d["n_pos"]]] = True
    noisy[order[: d["n_noisy"]]] = True
    for i in range(1, n + 1):
        frame_rng = np.random.default_rng([seed, kind, s, i])
        yield (i, *_frame(sub, frame_rng, bool(positive[i - 1]), bool(noisy[i - 1])))


def _write_train_subject(out: Path, seed: int, s: int, n: int, d: dict) -> tuple[dict, list, np.ndarray]:
    """Write subject ``s``'s training frames; their mask areas, visibility and intensity histogram."""
    areas, visible, hist = {}, [], np.zeros(256, np.int64)
    for i, image, mask, vis in _subject_frames(seed, 0, s, n, d):
        write_tiff(out / "train" / f"{s}_{i}.tif", image)
        write_tiff(out / "train" / f"{s}_{i}_mask.tif", mask)
        areas[f"{s}_{i}"] = int(np.count_nonzero(mask))
        visible.append(vis)
        hist += np.bincount(image.ravel(), minlength=256)
    return areas, visible, hist


def _write_test_subject(out: Path, seed: int, s: int, n: int, d: dict, numbers) -> None:
    """Write test subject ``s``'s frames as ``{number}.tif``, numbers in frame order."""
    for (_, image, _, _), number in zip(_subject_frames(seed, 1, s, n, d), numbers):
        write_tiff(out / "test" / f"{number}.tif", image)


def generate_dataset(out_dir, *, n_subjects=10, images_per_subject=24, n_test_subjects=3,
                     test_images_per_subject=16, seed=0, threads: int = 1) -> dict:
    """Write the synthetic dataset under ``out_dir`` and return its summary.

    Files this call generates are overwritten; nothing else in ``out_dir`` is touched.
    The summary (also written to ``out_dir/synthetic_summary.json``) holds the counts,
    the fraction of non-empty train masks, the per-subject rates, every train mask's
    area and the intensity statistics of the train images. ``threads`` subjects are
    rendered at once; every frame has its own seed, so the files do not depend on it.
    """
    if int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    for name, v, low in [("n_subjects", n_subjects, 1), ("images_per_subject", images_per_subject, 1),
                         ("n_test_subjects", n_test_subjects, 0),
                         ("test_images_per_subject", test_images_per_subject, 0)]:
        if int(v) != v or v < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {v!r}")
    seed = int(seed)
    out = Path(out_dir)
    (out / "train").mkdir(parents=True, exist_ok=True)
    (out / "test").mkdir(parents=True, exist_ok=True)

    order = np.random.default_rng([seed, 1, 0, 1]).permutation(n_test_subjects * test_images_per_subject) + 1
    train_draws = _draws(seed, 0, n_subjects, images_per_subject)
    test_draws = _draws(seed, 1, n_test_subjects, test_images_per_subject)
    # numpy's generators, the blur and the TIFF encoder release the GIL: threads render subjects in parallel
    with ThreadPoolExecutor(max(1, int(threads))) as pool:
        train_parts = [pool.submit(_write_train_subject, out, seed, s, images_per_subject, d)
                       for s, d in enumerate(train_draws, start=1)]
        test_parts = [pool.submit(_write_test_subject, out, seed, s, test_images_per_subject, d,
                                  order[(s - 1) * test_images_per_subject: s * test_images_per_subject])
                      for s, d in enumerate(test_draws, start=1)]
        train_results = [part.result() for part in train_parts]
        for part in test_parts:
            part.result()

    areas: dict[str, int] = {}
    subjects: dict[str, dict] = {}
    hist = np.zeros(256, np.int64)
    n_noise = 0
    for s, (d, (subject_areas, visible, subject_hist)) in enumerate(zip(train_draws, train_results), start=1):
        areas.update(subject_areas)
        hist += subject_hist
        px = np.array(list(subject_areas.values()))
        vis = np.array(visible, bool)
        nonempty = int(np.count_nonzero(px))
        n_noise += int(np.count_nonzero(vis & (px == 0)))
        subjects[str(s)] = dict(n_images=images_per_subject, n_nonempty=nonempty, n_visible=int(vis.sum()),
                                rate=nonempty / images_per_subject,
                                drawn_rate=d["rate"], drawn_area=d["area"])
    test_subject = {str(int(number)): f"T{s}" for s in range(1, n_test_subjects + 1)
                    for number in order[(s - 1) * test_images_per_subject: s * test_images_per_subject]}
    k = len(test_subject)

    nz = np.array([v for v in areas.values() if v > 0])
    levels = np.arange(256)
    mean = float((hist * levels).sum() / hist.sum())
    cdf = np.cumsum(hist) / hist.sum()
    rates = [v["rate"] for v in subjects.values()]
    summary = dict(
        seed=seed, n_subjects=n_subjects, images_per_subject=images_per_subject,
        n_test_subjects=n_test_subjects, test_images_per_subject=test_images_per_subject,
        n_train=len(areas), n_test=k, n_nonempty=int(len(nz)), fraction_nonempty=len(nz) / len(areas),
        n_label_noise=int(n_noise), subject_rate_min=min(rates), subject_rate_max=max(rates),
        subjects=subjects, mask_area=areas, test_subject=test_subject,
        area_stats={p: float(np.percentile(nz, q)) if len(nz) else None
                    for p, q in [("min", 0), ("p5", 5), ("median", 50), ("p95", 95), ("max", 100)]},
        intensity=dict(mean=mean, std=float(np.sqrt((hist * (levels - mean) ** 2).sum() / hist.sum())),
                       median=int(np.searchsorted(cdf, 0.5)), p1=int(np.searchsorted(cdf, 0.01)),
                       fraction_255=float(hist[255] / hist.sum())),
    )
    write_json(out / "synthetic_summary.json", summary)
    return summary


if __name__ == "__main__":  # python -m plexus.data.synthetic OUT_DIR [SEED]
    import sys

    result = generate_dataset(sys.argv[1], seed=int(sys.argv[2]) if len(sys.argv) > 2 else 0)
    print({k: result[k] for k in ("n_train", "n_test", "fraction_nonempty", "area_stats", "intensity")})
