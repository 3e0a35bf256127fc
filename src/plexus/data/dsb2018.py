"""Import of the Kaggle Data Science Bowl 2018 nuclei data (its folder layout, checked).

The competition's archives unpack to::

    root/stage1_train/{id}/images/{id}.png   one image (RGBA in the real data)
    root/stage1_train/{id}/masks/*.png       one binary mask per nucleus
    root/stage1_test/{id}/images/{id}.png

:func:`scan_dsb2018` lists the samples and checks everything that later steps rely
on, so a broken download fails here with every problem named at once (raised
together as one :class:`Dsb2018Error`) and not as a crash deep in training. Plain
files directly in a split folder and hidden entries (``.DS_Store``) are ignored;
``stage1_test`` may be missing (an empty test table). A training image may have an
empty ``masks/`` folder (no nucleus); every mask file must hold a nucleus.

Images are read as RGB (:func:`read_image`): 3 channels, whatever the file holds.
The alpha of the real RGBA images is constant 255 and carries nothing, so it is
dropped, not composited; grayscale files are repeated to 3 channels so that every
image fits one network input. Masks are single-channel PNGs (8-bit grayscale or
1-bit) with 0 as background and one other value as the nucleus. Masks of one image
must not overlap; the scan checks that too, as :func:`instance_labels` does.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image

from plexus.errors import DataError
from plexus.io import atomic

__all__ = ["Dsb2018Error", "instance_labels", "read_image", "read_mask", "scan_dsb2018"]

TRAIN, TEST = "stage1_train", "stage1_test"
COLUMNS = ["image_id", "image_path", "mask_paths", "height", "width", "channels"]
#: Problems listed in full in an error message; the rest are counted.
MAX_LISTED = 20
_IMAGE_MODES = {"1", "L", "LA", "P", "PA", "RGB", "RGBA"}
_MASK_MODES = {"1", "L"}


class Dsb2018Error(DataError):
    """Problems found in a DSB2018 folder; ``problems`` holds one line per problem."""

    def __init__(self, problems: Sequence[str], where: str = ""):
        self.problems = list(problems)
        head = f"{len(self.problems)} problem(s) in {where}" if where else f"{len(self.problems)} problem(s)"
        lines = [f"  - {p}" for p in self.problems[:MAX_LISTED]]
        if len(self.problems) > MAX_LISTED:
            lines.append(f"  ... and {len(self.problems) - MAX_LISTED} more")
        super().__init__("\n".join([head + ":", *lines]))


def _visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _open_png(path: Path) -> tuple[Image.Image | None, str | None]:
    """The decoded image, or None and why not."""
    try:
        with open(path, "rb") as handle:
            if handle.read(8) != b"\x89PNG\r\n\x1a\n":
                return None, f"{path}: not a PNG file"
        image = Image.open(path)
        image.load()  # decode now: a truncated file fails here, not later
        return image, None
    except Exception as error:  # PIL raises many types for broken files
        return None, f"{path}: unreadable PNG ({type(error).__name__}: {error})"


def _to_rgb(image: Image.Image) -> np.ndarray:
    if image.mode in ("RGBA", "RGB"):
        array = np.asarray(image)[..., :3]
    elif image.mode in ("L", "LA", "1"):
        gray = np.asarray(image.convert("L"))
        array = np.repeat(gray[..., None], 3, axis=2)
    else:  # palettes
        array = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(array, dtype=np.uint8)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """The image as uint8 (H, W, 3): alpha dropped, grayscale repeated, palettes expanded."""
    path = Path(path)
    image, problem = _open_png(path)
    if problem:
        raise Dsb2018Error([problem])
    if image.mode not in _IMAGE_MODES:
        raise Dsb2018Error([f"{path}: unsupported PNG mode {image.mode} (expected 8-bit gray, RGB or RGBA)"])
    return _to_rgb(image)


def _mask_or_problem(path: Path, shape: tuple[int, int]) -> tuple[np.ndarray | None, str | None]:
    """The boolean mask, or None and the problem with the file."""
    if path.suffix.lower() != ".png":
        return None, f"{path}: not a .png file"
    image, problem = _open_png(path)
    if problem:
        return None, problem
    if image.mode not in _MASK_MODES:
        return None, f"{path}: mask must be a single-channel PNG, got mode {image.mode}"
    values = np.asarray(image)
    if values.shape != tuple(shape):
        return None, f"{path}: mask shape {values.shape} differs from the image shape {tuple(shape)}"
    present = np.unique(values)
    foreground = present[present != 0]
    if len(foreground) == 0:
        return None, f"{path}: empty mask (no nonzero pixel)"
    if len(foreground) > 1:
        shown = ", ".join(map(str, foreground[:6].tolist())) + (", ..." if len(foreground) > 6 else "")
        return None, f"{path}: mask is not binary: values 0 and {len(foreground)} others ({shown})"
    return values != 0, None


def read_mask(path: str | os.PathLike, shape: tuple[int, int]) -> np.ndarray:
    """One nucleus mask as bool (H, W); raises :class:`Dsb2018Error` if it is unusable."""
    mask, problem = _mask_or_problem(Path(path), shape)
    if problem:
        raise Dsb2018Error([problem])
    return mask


def _scan_split(folder: Path, with_masks: bool, problems: list[str]) -> pd.DataFrame:
    rows = []
    for sample in _visible(folder):
        if not sample.is_dir():
            continue
        image_id = sample.name
        images = sample / "images"
        if not images.is_dir():
            problems.append(f"{sample}: no images/ folder")
            continue
        expected = images / f"{image_id}.png"
        others = [p for p in _visible(images) if p != expected]
        for other in others:
            problems.append(f"{other}: unexpected file; the image must be named images/{image_id}.png")
        if not expected.is_file():
            if not others:
                problems.append(f"{images}: no {image_id}.png")
            continue
        image, problem = _open_png(expected)
        if problem:
            problems.append(problem)
            continue
        if image.mode not in _IMAGE_MODES:
            problems.append(f"{expected}: unsupported PNG mode {image.mode} (expected 8-bit gray, RGB or RGBA)")
            continue
        shape = (image.height, image.width)
        row = {"image_id": image_id, "image_path": str(expected), "height": shape[0], "width": shape[1],
               "channels": len(image.getbands())}
        if with_masks:
            masks = sample / "masks"
            if not masks.is_dir():
                problems.append(f"{sample}: no masks/ folder")
                continue
            paths = _visible(masks)
            problems.extend(_label_masks(paths, shape)[1])
            row["mask_paths"] = [str(p) for p in paths]
        rows.append(row)
    columns = COLUMNS if with_masks else [c for c in COLUMNS if c != "mask_paths"]
    return pd.DataFrame(rows, columns=columns)


def scan_dsb2018(root: str | os.PathLike, parts=("train", "test")) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Train and test tables (image_id, image_path, [mask_paths,] height, width, channels), sorted by id.

    ``parts``: the image sets read; a set left out gives an empty table (the workflow converts
    ``stage1_train`` and ``stage1_test`` in jobs of their own).

    ``mask_paths`` (train only) lists each sample's mask files in sorted file-name
    order, the order :func:`instance_labels` numbers them. ``channels`` is what the
    file stores (4 for RGBA, 1 for gray); :func:`read_image` always gives 3.
    Raises :class:`Dsb2018Error` listing every problem found.
    """
    root = Path(root)
    problems: list[str] = []
    if "train" in parts and not (root / TRAIN).is_dir():
        raise Dsb2018Error([f"{root / TRAIN}: no such folder"], str(root))
    train = _scan_split(root / TRAIN, True, problems) if "train" in parts else pd.DataFrame(columns=COLUMNS)
    test = _scan_split(root / TEST, False, problems) if "test" in parts and (root / TEST).is_dir() else \
        pd.DataFrame(columns=[c for c in COLUMNS if c != "mask_paths"])
    if problems:
        raise Dsb2018Error(problems, str(root))
    return train.reset_index(drop=True), test.reset_index(drop=True)


def _label_masks(paths: Sequence[Path], shape: tuple[int, int]) -> tuple[np.ndarray, list[str]]:
    """Label map of the usable masks (1..N in sorted file-name order) and the problems found."""
    paths = sorted(paths, key=lambda p: p.name)
    labels = np.zeros(shape, dtype=np.int32)
    problems = []
    for k, path in enumerate(paths, start=1):
        mask, problem = _mask_or_problem(path, shape)
        if problem:
            problems.append(problem)
            continue
        shared = np.bincount(labels[mask], minlength=k)
        for other in np.flatnonzero(shared[1:]) + 1:
            problems.append(f"image {path.parent.parent.name}: masks {paths[other - 1].name} and {path.name} "
                            f"overlap in {int(shared[other])} pixel(s)")
        labels[mask & (labels == 0)] = k
    return labels, problems


def instance_labels(mask_paths: Sequence[str | os.PathLike], shape: tuple[int, int]) -> np.ndarray:
    """Label map (int32) of one image: the masks numbered 1..N in sorted file-name order.

    Overlapping masks raise :class:`Dsb2018Error` naming the image, both mask files
    and the number of shared pixels (every overlapping pair is listed); so does an
    unusable mask file.
    """
    labels, problems = _label_masks([Path(p) for p in mask_paths], tuple(shape))
    if problems:
        raise Dsb2018Error(problems)
    return labels


#: Training image sizes of the synthetic data: one size per synthetic "subject" (acquisition type).
SYNTHETIC_SIZES = ((96, 96), (128, 160), (160, 128), (112, 112), (96, 144), (144, 96), (128, 128),
                   (160, 160), (112, 144), (144, 112), (96, 128), (128, 96))
NO_GROUP_MESSAGE = ("CV groups (instances.group: none): each image is its own group, so images of one "
                    "acquisition type may fall in different folds")


# ----------------------------------------------- the sheet of a DSB2018 folder (the workflow's conversion step)


def synthetic_sizes(n: int) -> list[tuple[int, int]]:
    """``n`` distinct image sizes: :data:`SYNTHETIC_SIZES`, then squares from 176 px up."""
    sizes = list(SYNTHETIC_SIZES[:n])
    sizes += [(176 + 16 * k, 176 + 16 * k) for k in range(n - len(sizes))]
    return sizes


def synthesize_stage(raw_dir, settings: dict, fingerprint_json=None) -> dict:
    """The synthetic nuclei data in ``raw_dir`` (DSB2018 layout), its summary and the raw fingerprint.

    ``settings``: the config's ``data.synthetic`` without ``enabled`` and ``kind``. There are
    ``n_subjects`` image sizes (one per synthetic acquisition type, so ``instances.group: size``
    finds ``n_subjects`` groups) of ``images_per_subject`` training images each, and
    ``n_test_subjects * test_images_per_subject`` test images of the same sizes.
    """
    from plexus.data.fingerprint import refresh
    from plexus.data.synthetic_nuclei import generate_nuclei

    raw_dir = Path(raw_dir)
    summary = generate_nuclei(raw_dir, n_images=settings["n_subjects"] * settings["images_per_subject"],
                              n_test=settings["n_test_subjects"] * settings["test_images_per_subject"],
                              sizes=synthetic_sizes(settings["n_subjects"]), seed=settings["seed"])
    atomic.write_json(raw_dir / "synthetic_summary.json", summary)  # marks raw_dir as plexus-generated
    train = summary["stage1_train"]
    print(f"nuclei: {len(train)} train images ({sum(r['nuclei'] for r in train)} nuclei, "
          f"{sum(r['touching_pairs'] for r in train)} touching pairs) and {len(summary['stage1_test'])} test images")
    if fingerprint_json is not None:  # the workflow records each image set itself (plexus.runs.raw_parts)
        refresh(raw_dir, fingerprint_json, subfolders=None)
    return summary


def boundary_pixels(labels: np.ndarray) -> np.ndarray:
    """Nucleus pixels with a 4-neighbour in the background or in another nucleus (bool).

    Outside the image counts as the pixel's own nucleus: a nucleus cut by the image edge has
    no outline along the edge.
    """
    labels = np.asarray(labels)
    padded = np.pad(labels, 1, mode="edge")
    centre = padded[1:-1, 1:-1]
    differs = np.zeros(labels.shape, dtype=bool)
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        differs |= padded[1 + dy:padded.shape[0] - 1 + dy, 1 + dx:padded.shape[1] - 1 + dx] != centre
    return differs & (labels > 0)


def target_map(labels: np.ndarray, boundary: bool) -> np.ndarray:
    """The class-index training target (uint8): 0 background, 1 nucleus, 2 its outline (``boundary``)."""
    target = (np.asarray(labels) > 0).astype(np.uint8)
    if boundary:
        target[boundary_pixels(labels)] = 2
    return target


def write_png(path, array: np.ndarray) -> None:
    """Write a uint8 or uint16 gray (or uint8 RGB) array as PNG, atomically."""
    from PIL import Image

    with atomic.atomic_path(path) as tmp:
        Image.fromarray(np.ascontiguousarray(array)).save(tmp, format="PNG")


def write_instance_map(path, labels: np.ndarray) -> None:
    """An instance label map as a 16-bit PNG (0 background, 1..N objects)."""
    labels = np.asarray(labels)
    if labels.size and labels.max() > np.iinfo(np.uint16).max:
        raise ValueError(f"{path}: {int(labels.max())} objects do not fit a 16-bit label map")
    write_png(path, labels.astype(np.uint16))


def read_instance_map(path) -> np.ndarray:
    """A label map written by :func:`write_instance_map` (or any gray PNG/TIFF of labels), as int32."""
    from plexus.io.images import read_image

    labels = read_image(path)
    if labels.ndim != 2:
        raise ValueError(f"{path}: an instance label map must have one channel, got shape {labels.shape}")
    return labels.astype(np.int32)


def _subject(image_id: str, height: int, width: int, group: str) -> str:
    if group == "none":
        return image_id
    if group == "size":
        return f"{int(height)}x{int(width)}"
    raise ValueError(f"instances.group: unknown rule {group!r} (none or size)")


def _rgb_image(path: str, image_id: str, images_dir: Path) -> str:
    """The image's path if it reads as 3 channels (RGB, or RGBA with the alpha dropped), else an RGB copy's."""
    from plexus.io.images import image_info

    if image_info(path)[2] == 3:
        return str(Path(path).resolve())
    copy = images_dir / f"{image_id}.png"
    write_png(copy, read_image(path))
    return str(copy.resolve())


def nuclei_sheet_stage(raw_dir, *, group: str, boundary: bool, sheet_tsv, labels_dir, targets_dir,
                       images_dir, part: str | None = None) -> pd.DataFrame:
    """The sample sheet of a DSB2018 folder, its instance label maps and class-index targets.

    ``part``: one image set only (``train``, ``test``: the workflow's ``convert`` and
    ``convert_test`` jobs; ``labels_dir`` and ``targets_dir`` may be ``None`` for ``test``).

    Columns: image_id, subject, split, image (absolute path of an RGB image: the raw file, or a
    copy in ``images_dir`` of a gray or palette one), mask (the target PNG; empty for test rows),
    instances (the label map PNG; empty for test rows). Overlapping masks are an error naming
    the image and both files (:func:`plexus.data.dsb2018.scan_dsb2018`).
    """
    from plexus.data.sheet import write_sheet

    train, test = scan_dsb2018(raw_dir, ("train", "test") if part is None else (part,))
    folders = [Path(f) for f in (labels_dir, targets_dir, images_dir) if f is not None]
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
    labels_dir, targets_dir, images_dir = (None if f is None else Path(f)
                                           for f in (labels_dir, targets_dir, images_dir))
    if group == "none":
        print(NO_GROUP_MESSAGE)
    rows, nuclei, outline = [], 0, 0
    for record in train.itertuples():
        labels = instance_labels(record.mask_paths, (record.height, record.width))
        target = target_map(labels, boundary)
        label_path, target_path = labels_dir / f"{record.image_id}.png", targets_dir / f"{record.image_id}.png"
        write_instance_map(label_path, labels)
        write_png(target_path, target)
        nuclei += int(labels.max())
        outline += int((target == 2).sum())
        rows.append({"image_id": record.image_id,
                     "subject": _subject(record.image_id, record.height, record.width, group), "split": "train",
                     "image": _rgb_image(record.image_path, record.image_id, images_dir),
                     "mask": str(target_path.resolve()), "instances": str(label_path.resolve())})
    for record in test.itertuples():
        rows.append({"image_id": record.image_id,
                     "subject": _subject(record.image_id, record.height, record.width, group), "split": "test",
                     "image": _rgb_image(record.image_path, record.image_id, images_dir), "mask": "",
                     "instances": ""})
    sheet = pd.DataFrame(rows, columns=["image_id", "subject", "split", "image", "mask", "instances"])
    write_sheet(sheet, sheet_tsv)
    groups = sheet.loc[sheet["split"] == "train", "subject"]
    if part == "test":
        print(f"{len(test)} test images")
        return sheet
    tests = "" if part == "train" else f", {len(test)} test images"
    print(f"{len(train)} train images ({nuclei} nuclei, {outline} boundary pixels){tests}; "
          f"{groups.nunique()} CV group(s) by instances.group = {group}")
    if group == "size":
        print(groups.value_counts().sort_index().to_string())
    return sheet


