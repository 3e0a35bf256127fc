"""Seeded synthetic datasets for the generic 2-D segmentation workflow, each described by a sample sheet.

Two generators write a small, fully deterministic dataset with its sample sheet
(:mod:`plexus.data.sheet`), so the sheet-driven workflow (several classes, several
channels, missing channels, mixed image sizes) can be run and tested end to end on a
laptop CPU. Like the nerve stand-in (:mod:`plexus.data.synthetic`), every subject has
its own anatomy and appearance, every image its own jitter, contrast and noise; the
structures are learnable by a small U-Net but not by an intensity threshold.

:func:`generate_multiclass`: X-ray-like, three classes
    ``images/{image_id}.tif``: one 16-bit grayscale TIFF (uint16, about 3,000..60,000):
    a smooth background ramp with soft-tissue texture and bright bone-like bands,
    multiplicative speckle and Gaussian noise of a few thousand units.
    ``masks/{image_id}.png``: 8-bit mask, :data:`MULTICLASS_VALUES`: 0 background,
    128 ``nerve``, 255 ``artery`` (where both are drawn the artery wins).
    The *artery* is a bright round or elliptical lumen inside a darker wall (the mask
    covers lumen and wall, so a bright-pixel threshold misses the wall); the *nerve* is
    a textured ellipse (a bright rim, a slightly dark interior holding small dark and
    bright fascicle dots) usually right next to the artery. A bright rimless elongated
    "vein" appears in some images. ``NO_NERVE_SHARE`` (25%) of each subject's images
    show no nerve, ``NO_ARTERY_SHARE`` (15%) no artery.

:func:`generate_multichannel`: brain-MRI-like, one class over several channels
    ``{channel}/{image_id}.png`` for each channel (8-bit grayscale; ``t1``, ``t2``,
    ``flair`` by default, any non-empty subset of :data:`CHANNEL_NAMES`) and
    ``masks/{image_id}.png``, :data:`MULTICHANNEL_VALUES`: 0 background, 255 ``lesion``.
    A head (scalp, skull, gray and white matter with a gyral texture, cerebrospinal
    fluid in the ventricles and around the cortex) holding 0-2 irregular lesions;
    ``NO_LESION_SHARE`` (40%) of each subject's images have none. Each channel shows
    only part of the truth (:data:`CHANNEL_CONTRAST`): the lesion is bright on flair,
    bright but fainter on t2 (where the fluid is brighter still) and slightly dark on
    t1; flair also shows bright lesion-like spots that are normal on t2, and some
    spots are bright on every channel, t1 included, so that all channels together beat
    any single one. About ``missing_rate`` of the rows of each split lack exactly one
    channel (chosen at random): that file is not written and its sheet cell is empty.

Both write, under ``out_dir``:

* ``sheet.tsv`` (:func:`plexus.data.sheet.write_sheet`), columns ``image_id, subject,
  split, <channel columns>, mask`` (the channel column is ``image`` for the multiclass
  set), paths relative to ``out_dir``, the test rows without a mask. Train image ids
  are ``s03_007`` (subject ``s03``, image 7), test ids ``t01_004`` (subject ``t01``).
* ``synthetic_summary.json``: the arguments, the image counts per split, the image
  size of each subject, the per-class pixel fractions and the share of train images
  containing each class, and the missing channel counts per split.

Each subject has one image size from ``sizes`` (taken in turn from a seeded start, so
a set with as many subjects as sizes has them all). Random draws come from
``numpy.random.default_rng([seed, dataset, split, subject, image])`` (image 0: the
subject's own draws; subject 0: the draws of the whole split), so every image can be
made on its own and a rerun with the same arguments writes the same bytes. The
defaults make about a hundred small images per dataset in about a second.

A generator writes only into a missing or empty folder or over a previous synthetic
output (a folder holding ``synthetic_summary.json``, or the ``.synthetic_incomplete``
marker of an interrupted run), whose images, masks, sheet and summary it removes
first; any other non-empty folder is refused with a :class:`ValueError`.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import tifffile
from PIL import Image
from scipy import ndimage

from plexus.data.sheet import RATER2_COLUMN, sheet_frame, write_sheet
from plexus.io.atomic import atomic_path, write_json

__all__ = [
    "CHANNEL_CONTRAST", "CHANNEL_NAMES", "MULTICHANNEL_VALUES", "MULTICLASS_VALUES", "SHEET_NAME",
    "SUMMARY_NAME", "generate_multichannel", "generate_multiclass",
]

MULTICLASS_VALUES = {"background": 0, "nerve": 128, "artery": 255}
MULTICHANNEL_VALUES = {"background": 0, "lesion": 255}
SHEET_NAME = "sheet.tsv"
SUMMARY_NAME = "synthetic_summary.json"
MARKER_NAME = ".synthetic_incomplete"  # present while a generator runs: an interrupted run may be redone
IMAGE_FOLDER, MASK_FOLDER = "images", "masks"

NO_NERVE_SHARE = 0.25  # share of each subject's multiclass images without a nerve
NO_ARTERY_SHARE = 0.15  # ... without an artery
NO_LESION_SHARE = 0.40  # share of each subject's multichannel images without a lesion
MIN_SIZE = 48  # smallest image height or width

_MULTICLASS, _MULTICHANNEL = 1, 2  # dataset codes in the RNG seeds
_TRAIN, _TEST = 0, 1  # split codes in the RNG seeds
PAD = 12  # canvas margin (pixels) that absorbs the per-image shift of a subject's anatomy

#: Mean 8-bit intensity of each tissue on each channel (before bias field and noise).
TISSUE_LEVELS = {
    "t1": {"air": 4.0, "scalp": 175.0, "skull": 25.0, "gm": 105.0, "wm": 150.0, "csf": 35.0},
    "t2": {"air": 4.0, "scalp": 125.0, "skull": 20.0, "gm": 120.0, "wm": 88.0, "csf": 215.0},
    "flair": {"air": 4.0, "scalp": 140.0, "skull": 20.0, "gm": 118.0, "wm": 98.0, "csf": 28.0},
}
#: Intensity change (8-bit units, drawn uniformly from the range per image) on each channel of
#: a lesion, of a flair-only mimic and of a mimic bright on every channel.
CHANNEL_CONTRAST = {
    "t1": {"lesion": (-30.0, -12.0), "flair_mimic": (-4.0, 4.0), "bright_mimic": (35.0, 65.0)},
    "t2": {"lesion": (28.0, 55.0), "flair_mimic": (-4.0, 8.0), "bright_mimic": (30.0, 60.0)},
    "flair": {"lesion": (60.0, 105.0), "flair_mimic": (55.0, 100.0), "bright_mimic": (45.0, 85.0)},
}
CHANNEL_NAMES = tuple(TISSUE_LEVELS)
MIMIC_CHANCE = {"flair_mimic": 0.6, "bright_mimic": 0.3}  # chance that an image shows one

_ID_FILE = re.compile(r"^\.?[st]\d{2,}_\d{3,}\.(png|tif)(\..*\.tmp\.(png|tif))?$")


# --- helpers ----------------------------------------------------------------------------------


def _rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


def _smooth(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-blurred white noise with zero mean and unit standard deviation (float32)."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma, mode="reflect")
    return (field - field.mean()) / (field.std() + 1e-6)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-np.clip(x, -30.0, 30.0)))


def _grid(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    return np.arange(shape[0], dtype=np.float32)[:, None], np.arange(shape[1], dtype=np.float32)[None, :]


def _ellipse(shape: tuple[int, int], cy: float, cx: float, ry: float, rx: float, angle: float = 0.0,
             wobble: Sequence[tuple[int, float, float]] = ()) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rho, u, v)`` of every pixel: the normalised radius of an ellipse (1 on its outline, which
    ``wobble`` = ``(k, amplitude, phase)`` harmonics make irregular) and the rotated offsets."""
    yy, xx = _grid(shape)
    dy, dx = yy - np.float32(cy), xx - np.float32(cx)
    c, s = np.float32(np.cos(angle)), np.float32(np.sin(angle))
    u, v = c * dx + s * dy, -s * dx + c * dy
    rho = np.sqrt((u / np.float32(rx)) ** 2 + (v / np.float32(ry)) ** 2)
    if wobble:
        theta = np.arctan2(v / np.float32(ry), u / np.float32(rx))
        rho = rho / (1 + sum(np.float32(a) * np.sin(k * theta + np.float32(p)) for k, a, p in wobble))
    return rho, u, v


def _id(prefix: str, subject: int, image: int, n_subjects: int, n_images: int) -> tuple[str, str]:
    """``(image_id, subject)``, e.g. ``("s03_007", "s03")``."""
    name = f"{prefix}{subject:0{max(2, len(str(n_subjects)))}d}"
    return f"{name}_{image:0{max(3, len(str(n_images)))}d}", name


def _absent(rng: np.random.Generator, n: int, share: float) -> np.ndarray:
    """A boolean vector with exactly ``round(share * n)`` True entries at random places."""
    out = np.zeros(n, bool)
    out[rng.permutation(n)[: int(round(share * n))]] = True
    return out


def _write_png(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8)).save(tmp, format="PNG", compress_level=1)


def _write_tiff16(path: Path, array: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        tifffile.imwrite(tmp, np.ascontiguousarray(array, dtype=np.uint16), photometric="minisblack")


# --- arguments and the output folder ----------------------------------------------------------


def _check_counts(**counts: int) -> None:
    for name, value in counts.items():
        low = 1 if name in ("n_subjects", "images_per_subject") else 0
        if isinstance(value, bool) or int(value) != value or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    return int(seed)


def _check_sizes(sizes: Iterable[Sequence[int]]) -> list[tuple[int, int]]:
    out = []
    for size in sizes:
        if len(size) != 2 or any(int(v) != v or v < MIN_SIZE for v in size):
            raise ValueError(f"sizes: {size!r} is not a (height, width) pair of integers >= {MIN_SIZE}")
        out.append((int(size[0]), int(size[1])))
    if not out:
        raise ValueError("sizes: at least one (height, width) is needed")
    return out


def _has_files(folder: Path) -> bool:
    return any(p.is_file() or p.is_symlink() for p in folder.rglob("*"))


def _prepare(out: Path) -> None:
    """Check that ``out`` may be written (see the module doc), mark it in progress and remove
    the files of a previous synthetic output."""
    if out.exists() and not out.is_dir():
        raise ValueError(f"{out}: exists and is not a folder")
    previous = (out / SUMMARY_NAME).is_file() or (out / MARKER_NAME).is_file()
    if out.is_dir() and not previous and _has_files(out):
        raise ValueError(f"{out}: the folder holds files and no {SUMMARY_NAME}, so it is not a previous "
                         "synthetic output; refusing to write into it (choose a new or empty folder)")
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER_NAME).write_text("a synthetic dataset is being written here\n")
    if not previous:
        return
    for name in (SHEET_NAME, SUMMARY_NAME):
        (out / name).unlink(missing_ok=True)
    for folder in (IMAGE_FOLDER, MASK_FOLDER, *CHANNEL_NAMES):
        path = out / folder
        if not path.is_dir():
            continue
        for file in path.iterdir():
            if _ID_FILE.match(file.name) and file.is_file():
                file.unlink()
        if not any(path.iterdir()):
            path.rmdir()


def _splits(n_subjects: int, images_per_subject: int, n_test_subjects: int,
            test_images_per_subject: int) -> list[tuple[str, int, str, int, int]]:
    """``(split, split code, id prefix, subjects, images per subject)`` of each split that has images."""
    splits = [("train", _TRAIN, "s", n_subjects, images_per_subject),
              ("test", _TEST, "t", n_test_subjects, test_images_per_subject)]
    return [split for split in splits if split[3] and split[4]]


def _subject_sizes(seed: int, dataset: int, split: int, n: int, sizes: list[tuple[int, int]]) -> list:
    start = int(_rng(seed, dataset, split).integers(len(sizes)))
    return [sizes[(start + s) % len(sizes)] for s in range(n)]


#: the second rater's masks of the sheet datasets (a share of the training images)
RATER2_FOLDER = "masks_rater2"
RATER2_SHARE = 0.5
_RATER2 = 9  # its RNG stream: independent of the images and masks, which stay as they were


def rater2_mask(mask: np.ndarray, rng: np.random.Generator, omit: bool = False) -> np.ndarray:
    """A second expert's version of a label mask (gray values, 0 the background): each foreground
    class's outline moved by one pixel (dilated or eroded at random, painted in value order), and
    with ``omit`` the smallest component of one class missed."""
    from scipy import ndimage

    values = [int(v) for v in np.unique(mask) if v != 0]
    out = np.zeros_like(mask)
    for value in values:
        region = mask == value
        moved = ndimage.binary_dilation(region) if rng.random() < 0.5 else ndimage.binary_erosion(region)
        out[moved] = value
    if omit and values:
        value = values[int(rng.integers(len(values)))]
        labels, n = ndimage.label(out == value)
        if n:
            sizes = np.bincount(labels.ravel())[1:]
            out[labels == int(np.argmin(sizes)) + 1] = 0
    return out


def _add_rater2(out: Path, rows: list[dict], seed: int, code: int, share: float = RATER2_SHARE) -> int:
    """Write a second rater's masks for ``share`` of the training rows (``mask_rater2``; "" elsewhere);
    about one in eight misses a component. Returns how many were written."""
    from PIL import Image

    folder = out / RATER2_FOLDER
    if folder.is_dir():
        for stale in folder.iterdir():
            stale.unlink()
    rng = _rng(seed, _RATER2, code, 0, 0)
    train = [row for row in rows if row["split"] == "train"]
    chosen = set(rng.choice(len(train), size=int(round(share * len(train))), replace=False).tolist())
    for row in rows:
        row["mask_rater2"] = ""
    for k, row in enumerate(train):
        if k in chosen:
            mask = np.asarray(Image.open(out / row["mask"]))
            row["mask_rater2"] = f"{RATER2_FOLDER}/{row['image_id']}.png"
            _write_png(out / row["mask_rater2"], rater2_mask(mask, rng, omit=rng.random() < 1 / 8))
    return len(chosen)


def _finish(out: Path, rows: list[dict], channels: Sequence[str], summary: dict) -> pd.DataFrame:
    """Write the sheet and the summary; return the sheet frame with absolute paths (what
    :func:`plexus.data.sheet.read_sheet` gives for the sheet)."""
    write_sheet(sheet_frame(rows, channels=channels), out / SHEET_NAME)
    write_json(out / SUMMARY_NAME, summary)
    (out / MARKER_NAME).unlink()
    base = out.expanduser().absolute()
    resolved = [{k: str(base / v) if k in (*channels, "mask", RATER2_COLUMN) and v else v for k, v in row.items()}
                for row in rows]
    return sheet_frame(resolved, channels=channels)


def _class_stats(pixels: np.ndarray, images: np.ndarray, n_images: int, classes: dict[str, int]) -> dict:
    total = max(int(pixels.sum()), 1)
    return {
        "class_pixel_fraction": {name: float(pixels[i] / total) for i, name in enumerate(classes)},
        "class_image_share": {name: float(images[i] / max(n_images, 1)) for i, name in enumerate(classes)},
        "class_image_count": {name: int(images[i]) for i, name in enumerate(classes)},
    }


def _count_classes(mask: np.ndarray, classes: dict[str, int]) -> np.ndarray:
    counts = np.bincount(mask.ravel(), minlength=256)
    return counts[list(classes.values())]


# --- multiclass (X-ray-like: nerve and artery) ------------------------------------------------


def _multiclass_subject(rng: np.random.Generator, shape: tuple[int, int]) -> dict:
    """One subject: the background on a padded canvas, and the nominal artery, nerve and vein."""
    h, w = shape
    ch, cw = h + 2 * PAD, w + 2 * PAD
    yy, xx = _grid((ch, cw))
    t = rng.uniform(0, 2 * np.pi)
    base = rng.uniform(15000, 23000) + rng.uniform(5000, 13000) * (
        np.float32(np.cos(t)) * (xx / cw - 0.5) + np.float32(np.sin(t)) * (yy / ch - 0.5))
    base = base + rng.uniform(2000, 4000) * _smooth(rng, (ch, cw), rng.uniform(5, 10))
    base = base + 1200 * _smooth(rng, (ch, cw), 1.5)  # fine soft-tissue texture
    for _ in range(int(rng.integers(1, 3))):  # bright bone-like bands, as bright as an artery
        py, px, phi = rng.uniform(0, ch), rng.uniform(0, cw), rng.uniform(0, np.pi)
        bend = rng.uniform(-0.006, 0.006)
        along = (xx - px) * np.float32(np.cos(phi)) + (yy - py) * np.float32(np.sin(phi))
        across = -(xx - px) * np.float32(np.sin(phi)) + (yy - py) * np.float32(np.cos(phi)) + bend * along ** 2
        width = rng.uniform(2.5, 5.5)
        base = base + rng.uniform(9000, 18000) * np.exp(-0.5 * (across / np.float32(width)) ** 2)
    size = min(h, w)
    r = rng.uniform(0.075, 0.11) * size
    artery = dict(cy=rng.uniform(0.3, 0.7) * h, cx=rng.uniform(0.3, 0.7) * w, r=r, aspect=rng.uniform(1.0, 1.3),
                  angle=rng.uniform(0, np.pi), lumen=rng.uniform(12000, 20000), wall=rng.uniform(5000, 9000),
                  wall_width=rng.uniform(0.22, 0.34))
    toward_centre = np.arctan2(h / 2 - artery["cy"], w / 2 - artery["cx"])
    a = rng.uniform(0.08, 0.12) * size
    n_dots = int(rng.integers(5, 9))
    nerve = dict(a=a, b=a / rng.uniform(1.2, 1.7), angle=rng.uniform(0, np.pi),
                 direction=toward_centre + rng.uniform(-1.3, 1.3),
                 gap=rng.uniform(1, 4) + (rng.uniform(8, 16) if rng.uniform() < 0.15 else 0.0),
                 interior=rng.uniform(4000, 6500), rim=rng.uniform(5000, 8500),
                 wobble=[(k, rng.normal(0, 0.05), rng.uniform(0, 2 * np.pi)) for k in (2, 3)],
                 dots=np.column_stack([rng.uniform(0, 2 * np.pi, n_dots), np.sqrt(rng.uniform(0, 0.55, n_dots)),
                                       rng.uniform(1.6, 2.8, n_dots),
                                       np.where(rng.uniform(size=n_dots) < 0.7, -1.0, 1.0)
                                       * rng.uniform(5000, 9000, n_dots)]))
    vein = dict(rx=rng.uniform(0.06, 0.1) * size, aspect=rng.uniform(2.0, 3.2), angle=rng.uniform(0, np.pi),
                level=rng.uniform(9000, 16000), chance=rng.uniform(0.2, 0.7))
    return dict(shape=shape, base=base.astype(np.float32), artery=artery, nerve=nerve, vein=vein,
                noise=rng.uniform(1200, 2500), speckle=rng.uniform(0.03, 0.07))


def _inside(value: float, radius: float, limit: int) -> float:
    return float(np.clip(value, radius + 2, limit - radius - 3))


def _multiclass_image(sub: dict, rng: np.random.Generator, nerve_on: bool,
                      artery_on: bool) -> tuple[np.ndarray, np.ndarray]:
    """One image of a subject: ``(uint16 image, uint8 mask)``."""
    h, w = sub["shape"]
    dy, dx = np.clip(np.rint(rng.normal(0, 3, 2)), -PAD, PAD).astype(int)
    image = sub["base"][PAD + dy:PAD + dy + h, PAD + dx:PAD + dx + w].copy()
    image += 800 * _smooth(rng, (h, w), 3.0)
    mask = np.zeros((h, w), np.uint8)
    scale = float(np.exp(rng.normal(0, 0.08)))
    art, ner = sub["artery"], sub["nerve"]
    ry, rx = art["r"] * scale, art["r"] * art["aspect"] * scale
    cy = _inside(art["cy"] - dy + rng.normal(0, 1.5), max(ry, rx), h)
    cx = _inside(art["cx"] - dx + rng.normal(0, 1.5), max(ry, rx), w)
    # Nerve first (the artery is drawn over it), beside the artery in the subject's direction.
    a, b = ner["a"] * scale * rng.uniform(0.9, 1.1), ner["b"] * scale * rng.uniform(0.9, 1.1)
    direction = ner["direction"] + rng.normal(0, 0.25)
    reach = np.sqrt(ry * rx) + np.sqrt(a * b) + ner["gap"]
    ny = _inside(cy + reach * np.sin(direction), max(a, b), h)
    nx = _inside(cx + reach * np.cos(direction), max(a, b), w)
    if nerve_on:
        angle = ner["angle"] + rng.normal(0, 0.15)
        rho, u, v = _ellipse((h, w), ny, nx, b, a, angle, ner["wobble"])
        radius = np.sqrt(a * b)
        contrast = rng.uniform(0.7, 1.2)
        image -= contrast * ner["interior"] * _sigmoid((1 - rho) * radius / 1.2)
        image += contrast * ner["rim"] * np.exp(-0.5 * ((rho - 1) * radius / 1.3) ** 2)
        for theta, dist, dot_r, amp in ner["dots"]:
            theta += rng.normal(0, 0.2)
            pu, pv = dist * a * np.cos(theta) + rng.normal(0, 0.7), dist * b * np.sin(theta) + rng.normal(0, 0.7)
            image += contrast * amp * np.exp(-0.5 * ((u - pu) ** 2 + (v - pv) ** 2) / np.float32(dot_r) ** 2)
        mask[rho < 1] = MULTICLASS_VALUES["nerve"]
    if artery_on:
        rho, _, _ = _ellipse((h, w), cy, cx, ry, rx, art["angle"] + rng.normal(0, 0.1))
        radius = np.sqrt(ry * rx)
        contrast = rng.uniform(0.75, 1.15)
        lumen = _sigmoid((1 - art["wall_width"] - rho) * radius / 0.8)
        vessel = _sigmoid((1 - rho) * radius / 0.8)
        image += contrast * (art["lumen"] * lumen - art["wall"] * (vessel - lumen))
        mask[rho < 1] = MULTICLASS_VALUES["artery"]
    vein = sub["vein"]
    if rng.uniform() < vein["chance"]:  # a bright rimless elongated vessel, away from the artery and nerve
        for _ in range(20):
            vy, vx = rng.uniform(0.15, 0.85) * h, rng.uniform(0.15, 0.85) * w
            if np.hypot(vy - cy, vx - cx) > reach + vein["rx"] and np.hypot(vy - ny, vx - nx) > 2 * a + vein["rx"]:
                rho, _, _ = _ellipse((h, w), vy, vx, vein["rx"] / vein["aspect"], vein["rx"], vein["angle"])
                image += vein["level"] * rng.uniform(0.8, 1.2) * _sigmoid((1 - rho) * vein["rx"] / vein["aspect"])
                break
    image *= 1 + sub["speckle"] * _smooth(rng, (h, w), 0.7)
    image += sub["noise"] * rng.standard_normal((h, w), dtype=np.float32)
    return np.clip(np.rint(image), 0, 65535).astype(np.uint16), mask


def generate_multiclass(out_dir: str | os.PathLike, *, n_subjects: int = 8, images_per_subject: int = 12,
                        n_test_subjects: int = 2, test_images_per_subject: int = 6,
                        sizes: Iterable[Sequence[int]] = ((96, 128), (128, 128), (112, 144)),
                        seed: int = 0) -> pd.DataFrame:
    """Write the X-ray-like nerve/artery dataset under ``out_dir`` (see the module doc).

    Returns the sheet frame (absolute paths, as :func:`plexus.data.sheet.read_sheet` reads
    ``out_dir/sheet.tsv`` with the channel ``image``). Raises :class:`ValueError` for bad
    arguments and for an ``out_dir`` holding other files than a previous synthetic output.
    """
    _check_counts(n_subjects=n_subjects, images_per_subject=images_per_subject, n_test_subjects=n_test_subjects,
                  test_images_per_subject=test_images_per_subject)
    seed, sizes = _check_seed(seed), _check_sizes(sizes)
    out = Path(out_dir)
    _prepare(out)
    classes = MULTICLASS_VALUES
    rows: list[dict] = []
    pixels, images = np.zeros(len(classes), np.int64), np.zeros(len(classes), np.int64)
    subject_sizes: dict[str, list[int]] = {}
    for split, code, prefix, n_sub, n_img in _splits(n_subjects, images_per_subject, n_test_subjects,
                                                      test_images_per_subject):
        for s, shape in enumerate(_subject_sizes(seed, _MULTICLASS, code, n_sub, sizes), start=1):
            rng = _rng(seed, _MULTICLASS, code, s, 0)
            sub = _multiclass_subject(rng, shape)
            no_nerve, no_artery = _absent(rng, n_img, NO_NERVE_SHARE), _absent(rng, n_img, NO_ARTERY_SHARE)
            subject_sizes[_id(prefix, s, 1, n_sub, n_img)[1]] = list(shape)
            for i in range(1, n_img + 1):
                image_id, subject = _id(prefix, s, i, n_sub, n_img)
                image, mask = _multiclass_image(sub, _rng(seed, _MULTICLASS, code, s, i),
                                                not no_nerve[i - 1], not no_artery[i - 1])
                image_path = f"{IMAGE_FOLDER}/{image_id}.tif"
                _write_tiff16(out / image_path, image)
                mask_path = ""
                if split == "train":
                    mask_path = f"{MASK_FOLDER}/{image_id}.png"
                    _write_png(out / mask_path, mask)
                    counts = _count_classes(mask, classes)
                    pixels += counts
                    images += counts > 0
                rows.append(dict(image_id=image_id, subject=subject, split=split, image=image_path, mask=mask_path))
    n_train = sum(r["split"] == "train" for r in rows)
    summary = dict(
        dataset="multiclass",
        arguments=dict(n_subjects=n_subjects, images_per_subject=images_per_subject, n_test_subjects=n_test_subjects,
                       test_images_per_subject=test_images_per_subject, sizes=[list(s) for s in sizes], seed=seed),
        classes=classes, channels=["image"],
        images={"train": n_train, "test": len(rows) - n_train},
        subject_sizes=subject_sizes,
        missing_channels={"train": {"image": 0}, "test": {"image": 0}},
        **_class_stats(pixels, images, n_train, classes),
        rater2_images=_add_rater2(out, rows, seed, _MULTICLASS),
    )
    return _finish(out, rows, ("image",), summary)


# --- multichannel (brain-MRI-like: lesion) ----------------------------------------------------


def _multichannel_subject(rng: np.random.Generator, shape: tuple[int, int], channels: Sequence[str]) -> dict:
    """One subject: head geometry, gyral texture and per-channel tissue levels, bias field and noise."""
    h, w = shape
    ch, cw = h + 2 * PAD, w + 2 * PAD
    head = dict(cy=ch / 2 + rng.normal(0, 2), cx=cw / 2 + rng.normal(0, 2), ry=rng.uniform(0.40, 0.46) * h,
                rx=rng.uniform(0.36, 0.44) * w, angle=rng.normal(0, 0.12),
                wobble=[(k, rng.normal(0, 0.02), rng.uniform(0, 2 * np.pi)) for k in (2, 3)])
    head["rx"] = min(head["rx"], head["ry"] * 1.05)
    ventricle = dict(dy=rng.normal(-0.05, 0.04), dx=rng.uniform(0.08, 0.14), ry=rng.uniform(0.15, 0.25),
                     rx=rng.uniform(0.06, 0.1), tilt=rng.uniform(0.1, 0.4))
    levels, bias, noise = {}, {}, {}
    for name in CHANNEL_NAMES:  # drawn for every channel, so a subset of channels keeps the same images
        levels[name] = {k: v * rng.uniform(0.92, 1.08) for k, v in TISSUE_LEVELS[name].items()}
        bias[name] = (1 + rng.uniform(0.04, 0.12) * _smooth(rng, (ch, cw), 18)).astype(np.float32)
        noise[name] = rng.uniform(3, 7)
    return dict(shape=shape, head=head, ventricle=ventricle, gyri=_smooth(rng, (ch, cw), rng.uniform(1.8, 2.6)),
                levels={c: levels[c] for c in channels}, bias={c: bias[c] for c in channels},
                noise={c: noise[c] for c in channels})


def _blob(rng: np.random.Generator, shape: tuple[int, int], brain: np.ndarray, avoid: np.ndarray,
          rho_head: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """An irregular blob inside the brain, clear of ``avoid``: ``(soft weight, hard mask)``."""
    h, w = shape
    r = rng.uniform(0.035, 0.085) * min(h, w)
    candidates = np.argwhere((rho_head < 0.68) & (avoid < 0.05))
    if not len(candidates):
        return None
    for _ in range(10):
        cy, cx = candidates[rng.integers(len(candidates))] + rng.uniform(-0.5, 0.5, 2)
        wobble = [(k, rng.normal(0, 0.25 / k), rng.uniform(0, 2 * np.pi)) for k in (2, 3, 4, 5)]
        rho, _, _ = _ellipse(shape, cy, cx, r, r * rng.uniform(0.7, 1.4), rng.uniform(0, np.pi), wobble)
        hard = (rho < 1) & (brain > 0.5)
        if hard.sum() >= 8 and not (hard & (avoid > 0.3)).any():
            soft = _sigmoid((1 - rho) * r / 0.9) * (brain > 0.5)
            return soft.astype(np.float32), hard
    return None


def _multichannel_image(sub: dict, rng: np.random.Generator, lesion_on: bool) -> tuple[dict, np.ndarray]:
    """One image of a subject: ``({channel: uint8 image}, uint8 mask)``."""
    h, w = sub["shape"]
    dy, dx = np.clip(np.rint(rng.normal(0, 2, 2)), -PAD, PAD).astype(int)
    hd, vt = sub["head"], sub["ventricle"]
    cy, cx = hd["cy"] - PAD - dy, hd["cx"] - PAD - dx
    rho_head, _, _ = _ellipse((h, w), cy, cx, hd["ry"], hd["rx"], hd["angle"], hd["wobble"])
    edge = np.sqrt(hd["ry"] * hd["rx"])
    head = _sigmoid((1 - rho_head) * edge / 0.8)
    inner = _sigmoid((0.93 - rho_head) * edge / 0.8)
    brain = _sigmoid((0.86 - rho_head) * edge / 0.8)
    # Ventricles: a tilted pair beside the midline, their size changing from slice to slice.
    size = rng.uniform(0.6, 1.3)
    ventricles = np.zeros((h, w), np.float32)
    for side in (-1, 1):
        vy = cy + vt["dy"] * hd["ry"]
        vx = cx + side * vt["dx"] * hd["rx"]
        rho, _, _ = _ellipse((h, w), vy, vx, vt["ry"] * hd["ry"] * size, vt["rx"] * hd["rx"] * size,
                             hd["angle"] + side * vt["tilt"])
        ventricles = np.maximum(ventricles, _sigmoid((1 - rho) * 4.0))
    ventricles *= brain
    gyri = 0.75 * sub["gyri"][PAD + dy:PAD + dy + h, PAD + dx:PAD + dx + w] + 0.66 * _smooth(rng, (h, w), 2.2)
    cortex = np.clip((rho_head - 0.55) / 0.31, 0, 1)  # 0 deep, 1 at the brain's edge
    sulci = brain * _sigmoid((gyri - 1.3 + 0.9 * cortex) * 3.0) * cortex
    csf = np.maximum(ventricles, sulci)
    parenchyma = np.clip(brain - csf, 0, 1)
    white = _sigmoid((0.62 - rho_head) * 10 + 0.8 * gyri)
    tissues = dict(air=1 - head, scalp=head - inner, skull=np.clip(inner - brain, 0, 1), csf=csf,
                   wm=parenchyma * white, gm=parenchyma * (1 - white))
    # Lesions (0-2) and mimics (a spot bright on flair only, one bright everywhere), kept apart.
    mask = np.zeros((h, w), np.uint8)
    spots: list[tuple[str, np.ndarray]] = []
    taken = ventricles.copy()
    kinds = (["lesion"] * (1 + (rng.uniform() < 0.25)) if lesion_on else [])
    kinds += [k for k, p in MIMIC_CHANCE.items() if rng.uniform() < p]
    for kind in kinds:
        blob = _blob(rng, (h, w), brain, taken, rho_head)
        if blob is None:
            continue
        soft, hard = blob
        taken = np.maximum(taken, ndimage.binary_dilation(hard, iterations=3).astype(np.float32))
        spots.append((kind, soft * (0.85 + 0.15 * _smooth(rng, (h, w), 1.0))))
        if kind == "lesion":
            mask[hard] = MULTICHANNEL_VALUES["lesion"]
    out = {}
    for name in CHANNEL_NAMES:  # every channel's draws are made, so a subset of channels keeps the same images
        gains = [np.float32(rng.uniform(*CHANNEL_CONTRAST[name][kind])) for kind, _ in spots]
        noise = rng.standard_normal((h, w), dtype=np.float32)
        if name not in sub["levels"]:
            continue
        image = sum(tissues[k] * np.float32(sub["levels"][name][k]) for k in tissues)
        image = image + sum((gain * weight for gain, (_, weight) in zip(gains, spots)), np.float32(0))
        image = image * sub["bias"][name][PAD + dy:PAD + dy + h, PAD + dx:PAD + dx + w]
        out[name] = np.clip(np.rint(image + sub["noise"][name] * noise), 0, 255).astype(np.uint8)
    return out, mask


def _check_channels(channels: Iterable[str], missing_rate: float) -> tuple[str, ...]:
    channels = (channels,) if isinstance(channels, str) else tuple(channels)
    unknown = [c for c in channels if c not in CHANNEL_NAMES]
    if not channels or unknown or len(set(channels)) != len(channels):
        raise ValueError(f"channels: expected distinct names from {CHANNEL_NAMES}, got {channels!r}")
    if not 0 <= missing_rate <= 1:
        raise ValueError(f"missing_rate must be in [0, 1], got {missing_rate!r}")
    if missing_rate > 0 and len(channels) < 2:
        raise ValueError("missing_rate > 0 needs at least two channels (a row keeps at least one)")
    return channels


def generate_multichannel(out_dir: str | os.PathLike, *, n_subjects: int = 8, images_per_subject: int = 12,
                          n_test_subjects: int = 2, test_images_per_subject: int = 6,
                          sizes: Iterable[Sequence[int]] = ((96, 96), (112, 128)),
                          channels: Iterable[str] = ("t1", "t2", "flair"), missing_rate: float = 0.1,
                          seed: int = 0) -> pd.DataFrame:
    """Write the brain-MRI-like lesion dataset under ``out_dir`` (see the module doc).

    Returns the sheet frame (absolute paths, as :func:`plexus.data.sheet.read_sheet` reads
    ``out_dir/sheet.tsv`` with ``channels``; a missing channel's cell is empty). Raises
    :class:`ValueError` for bad arguments and for an ``out_dir`` holding other files than a
    previous synthetic output.
    """
    _check_counts(n_subjects=n_subjects, images_per_subject=images_per_subject, n_test_subjects=n_test_subjects,
                  test_images_per_subject=test_images_per_subject)
    seed, sizes = _check_seed(seed), _check_sizes(sizes)
    channels = _check_channels(channels, float(missing_rate))
    out = Path(out_dir)
    _prepare(out)
    classes = MULTICHANNEL_VALUES
    rows: list[dict] = []
    pixels, images = np.zeros(len(classes), np.int64), np.zeros(len(classes), np.int64)
    subject_sizes: dict[str, list[int]] = {}
    missing = {"train": dict.fromkeys(channels, 0), "test": dict.fromkeys(channels, 0)}
    for split, code, prefix, n_sub, n_img in _splits(n_subjects, images_per_subject, n_test_subjects,
                                                      test_images_per_subject):
        # Which rows lack a channel, and which one: drawn for the whole split at once.
        split_rng = _rng(seed, _MULTICHANNEL, code, 0, 0)
        n_rows = n_sub * n_img
        lacking = np.full(n_rows, -1)
        chosen = split_rng.permutation(n_rows)[: int(round(missing_rate * n_rows))]
        lacking[chosen] = split_rng.integers(len(channels), size=len(chosen))
        for s, shape in enumerate(_subject_sizes(seed, _MULTICHANNEL, code, n_sub, sizes), start=1):
            rng = _rng(seed, _MULTICHANNEL, code, s, 0)
            sub = _multichannel_subject(rng, shape, channels)
            no_lesion = _absent(rng, n_img, NO_LESION_SHARE)
            subject_sizes[_id(prefix, s, 1, n_sub, n_img)[1]] = list(shape)
            for i in range(1, n_img + 1):
                image_id, subject = _id(prefix, s, i, n_sub, n_img)
                planes, mask = _multichannel_image(sub, _rng(seed, _MULTICHANNEL, code, s, i), not no_lesion[i - 1])
                row = dict(image_id=image_id, subject=subject, split=split)
                gone = lacking[(s - 1) * n_img + i - 1]
                for k, name in enumerate(channels):
                    if k == gone:
                        row[name] = ""
                        missing[split][name] += 1
                        continue
                    row[name] = f"{name}/{image_id}.png"
                    _write_png(out / row[name], planes[name])
                row["mask"] = ""
                if split == "train":
                    row["mask"] = f"{MASK_FOLDER}/{image_id}.png"
                    _write_png(out / row["mask"], mask)
                    counts = _count_classes(mask, classes)
                    pixels += counts
                    images += counts > 0
                rows.append(row)
    n_train = sum(r["split"] == "train" for r in rows)
    summary = dict(
        dataset="multichannel",
        arguments=dict(n_subjects=n_subjects, images_per_subject=images_per_subject, n_test_subjects=n_test_subjects,
                       test_images_per_subject=test_images_per_subject, sizes=[list(s) for s in sizes],
                       channels=list(channels), missing_rate=float(missing_rate), seed=seed),
        classes=classes, channels=list(channels),
        images={"train": n_train, "test": len(rows) - n_train},
        subject_sizes=subject_sizes,
        missing_channels=missing,
        rows_missing_a_channel={split: int(sum(counts.values())) for split, counts in missing.items()},
        **_class_stats(pixels, images, n_train, classes),
        rater2_images=_add_rater2(out, rows, seed, _MULTICHANNEL),
    )
    return _finish(out, rows, channels, summary)
