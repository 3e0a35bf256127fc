"""Reading the 2-D images and masks of any dataset: TIFF, PNG, JPEG, BMP and GIF, 8- or 16-bit.

:func:`read_image` returns what the file holds, with only these normalisations:

* shape ``(H, W)`` for one channel, ``(H, W, C)`` for several (RGB: ``C = 3``);
* dtype ``uint8`` or ``uint16``, the file's bit depth (never rescaled); 1-, 2- and
  4-bit grayscale (PNG and 1-bit TIFF) become ``uint8`` scaled to 0..255, so a 1-bit
  mask reads as {0, 255} like the Kaggle masks;
* an alpha channel is dropped, not composited (RGBA -> RGB, gray+alpha -> gray):
  segmentation inputs carry no meaning in it, and the DSB2018 import does the same;
* a palette PNG is expanded: to ``(H, W)`` gray values when every palette entry is
  gray (a black/white mask saved with a palette), else to RGB ``(H, W, 3)``; class
  indices of a colour palette are therefore not kept;
* TIFF sample values are returned as stored: a MINISWHITE photometric is not inverted.

* JPEG, BMP and GIF are decoded by Pillow with the same rules (1-bit to {0, 255},
  palettes expanded, alpha dropped); a GIF of several frames is an error (an
  animation is not one 2-D image). JPEG is lossy: a JPEG *mask* is snapped to the
  nearest class value by :func:`plexus.data.dataset.read_class_mask`.

``read_image(path, alpha="check")`` refuses an alpha channel that is not constant
(a varying alpha may hide part of the image); ``"drop"`` (the default) drops it.

:func:`read_mask` reads a *mask*: a palette file gives its palette indices (the labels
annotation tools write), an RGB mask whose three channels are equal gives one channel,
any other RGB mask stays ``(H, W, 3)`` (a colour-coded mask, matched to the classes'
colours). Alpha is dropped.

Everything else is an :class:`ImageError` whose message names the file: another
suffix, a missing or unreadable file, a multi-page TIFF or GIF, float or signed
TIFFs, palette/CMYK/Lab TIFFs, more than 4 samples per pixel.

:func:`image_info` gives ``(height, width, channels, dtype)`` of what
:func:`read_image` would return, from the file header alone (no pixel decoding).
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import tifffile

from plexus.errors import DataError
from plexus.io.tiff import TiffLayoutError, read_tiff

__all__ = ["IMAGE_SUFFIXES", "LOSSY_SUFFIXES", "ImageError", "image_info", "is_lossy", "palette_gray_values",
           "read_image", "read_mask"]

TIFF_SUFFIXES = (".tif", ".tiff")
PNG_SUFFIXES = (".png",)
#: read by Pillow alone (PNG and TIFF have readers of their own for 16-bit and multi-page rules)
PIL_SUFFIXES = (".jpg", ".jpeg", ".bmp", ".gif")
IMAGE_SUFFIXES = TIFF_SUFFIXES + PNG_SUFFIXES + PIL_SUFFIXES
#: lossy formats: a mask stored so holds values near, not at, the class values
LOSSY_SUFFIXES = (".jpg", ".jpeg")
#: Pillow modes read by the Pillow path: mode -> (channels, dtype, alpha band or None)
_PIL_MODES = {"1": (1, np.uint8, None), "L": (1, np.uint8, None), "LA": (1, np.uint8, 1),
              "I;16": (1, np.uint16, None), "I;16L": (1, np.uint16, None), "I;16B": (1, np.uint16, None),
              "RGB": (3, np.uint8, None), "RGBA": (3, np.uint8, 3), "RGBX": (3, np.uint8, None)}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# PNG colour types (IHDR): 0 gray, 2 RGB, 3 palette, 4 gray+alpha, 6 RGBA
_PNG_CHANNELS = {0: 1, 2: 3, 4: 1, 6: 3}
# TIFF photometric interpretations read: MINISWHITE, MINISBLACK, RGB
_TIFF_PHOTOMETRIC = {0, 1, 2}


class ImageError(DataError):
    """An image file that cannot be read as a 2-D 8- or 16-bit image; the message names the file."""


def _check_path(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in IMAGE_SUFFIXES:
        raise ImageError(f"{path}: unsupported image type {path.suffix!r} (supported: {', '.join(IMAGE_SUFFIXES)})")
    if not path.exists():
        raise ImageError(f"{path}: no such file")
    if not path.is_file():
        raise ImageError(f"{path}: not a file")
    return suffix


def is_lossy(path: str | os.PathLike) -> bool:
    """True for a file of a lossy format (JPEG), whose masks need snapping to the class values."""
    return Path(path).suffix.lower() in LOSSY_SUFFIXES


def read_image(path: str | os.PathLike, *, alpha: str = "drop") -> np.ndarray:
    """The image as ``uint8``/``uint16`` ``(H, W)`` (one channel) or ``(H, W, C)``; see the module doc.

    ``alpha="check"``: an alpha channel that is not constant is an :class:`ImageError`.
    """
    if alpha not in ("drop", "check"):
        raise ValueError(f"alpha must be 'drop' or 'check', got {alpha!r}")
    path = Path(path)
    suffix = _check_path(path)
    if suffix in TIFF_SUFFIXES:
        array, band = _read_tiff(path)
    elif suffix in PNG_SUFFIXES:
        array, band = _read_png(path)
    else:
        array, band = _read_pil(path)
    if alpha == "check" and band is not None and band.size and band.min() != band.max():
        raise ImageError(f"{path}: the alpha channel is not constant ({int(band.min())}..{int(band.max())}); "
                         "plexus does not composite images: save them without alpha")
    return array


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """A mask file: palette indices of a palette file, one channel of an RGB mask whose channels
    are equal, else what :func:`read_image` gives (a colour-coded mask stays ``(H, W, 3)``)."""
    path = Path(path)
    suffix = _check_path(path)
    if suffix not in TIFF_SUFFIXES and _pil_mode(path) == "P":
        with _open_pil(path) as image:
            _single_frame(image, path)
            try:
                array = np.asarray(image)  # the indices; never expanded
            except Exception as exc:
                raise ImageError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from exc
        return np.ascontiguousarray(array, dtype=np.uint8)
    array = read_image(path)
    if array.ndim == 3 and (array == array[..., :1]).all():
        array = np.ascontiguousarray(array[..., 0])
    return array


def palette_gray_values(path: str | os.PathLike) -> np.ndarray | None:
    """The gray level of each palette index of a palette file whose palette is all gray, else None.

    A 0/255 mask saved as GIF or palette PNG has indices {0, 1} and a gray palette; when the
    classes are given as {0, 255}, the gray levels are what was meant.
    """
    path = Path(path)
    if path.suffix.lower() in TIFF_SUFFIXES or _pil_mode(path) != "P":
        return None
    with _open_pil(path) as image:
        palette = image.getpalette(rawmode="RGB") or []
    rgb = np.asarray(palette, dtype=np.int64).reshape(-1, 3)
    if not len(rgb) or not ((rgb[:, 0] == rgb[:, 1]) & (rgb[:, 1] == rgb[:, 2])).all():
        return None
    return np.pad(rgb[:, 0], (0, 256 - len(rgb))).astype(np.uint8)


def image_info(path: str | os.PathLike) -> tuple[int, int, int, np.dtype]:
    """``(height, width, channels, dtype)`` of :func:`read_image`'s result, from the header only.

    A file whose header is fine but whose pixel data is truncated passes here and
    fails in :func:`read_image`.
    """
    path = Path(path)
    suffix = _check_path(path)
    if suffix in TIFF_SUFFIXES:
        return _tiff_layout(path)[0]
    if suffix in PNG_SUFFIXES:
        return _png_layout(path)[0]
    return _pil_layout(path)[0]


# --- TIFF -------------------------------------------------------------------------------------


def _tiff_layout(path: Path) -> tuple[tuple[int, int, int, np.dtype], bool, bool]:
    """``((H, W, channels, dtype), planar_separate, drop_alpha)`` from the TIFF's tags."""
    try:
        with tifffile.TiffFile(path) as tif:
            if len(tif.pages) != 1:
                raise ImageError(f"{path}: multi-page TIFF ({len(tif.pages)} pages), expected exactly one image")
            page = tif.pages[0]
            shape, dtype, photometric = tuple(page.shape), page.dtype, int(page.photometric)
            samples, planar, extras = int(page.samplesperpixel), int(page.planarconfig), len(page.extrasamples)
    except ImageError:
        raise
    except Exception as exc:  # tifffile raises many types for corrupt files
        raise ImageError(f"{path}: unreadable TIFF ({type(exc).__name__}: {exc})") from exc
    if dtype is None or dtype.kind not in "bu" or dtype.itemsize > 2:
        raise ImageError(f"{path}: {dtype} TIFF not supported (expected 8- or 16-bit unsigned integers)")
    if photometric not in _TIFF_PHOTOMETRIC:
        raise ImageError(f"{path}: TIFF photometric interpretation {photometric} not supported "
                         "(expected grayscale or RGB; palette, CMYK and Lab TIFFs are not read)")
    separate = samples > 1 and planar == 2
    height, width = (shape[1], shape[2]) if separate else (shape[0], shape[1])
    if len(shape) != (2 if samples == 1 else 3):
        raise ImageError(f"{path}: TIFF of shape {shape} not supported (expected one 2-D image)")
    colour = 3 if photometric == 2 else 1
    if samples not in (colour, colour + 1) or (samples == colour + 1 and extras != 1):
        raise ImageError(f"{path}: {samples} samples per pixel with photometric {photometric} not supported "
                         "(expected gray, gray+alpha, RGB or RGBA)")
    out_dtype = np.dtype(np.uint8) if dtype.kind == "b" else dtype
    return (int(height), int(width), colour, out_dtype), separate, samples == colour + 1


def _read_tiff(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    (_, _, channels, _), separate, drop_alpha = _tiff_layout(path)
    try:
        array = read_tiff(path)
    except TiffLayoutError as exc:
        raise ImageError(str(exc)) from exc
    except Exception as exc:
        raise ImageError(f"{path}: unreadable TIFF ({type(exc).__name__}: {exc})") from exc
    if separate:
        array = np.moveaxis(array, 0, -1)
    band = None
    if drop_alpha:
        array, band = array[..., :channels], array[..., channels]
    if channels == 1 and array.ndim == 3:
        array = array[..., 0]
    if array.dtype == bool:
        array = array.astype(np.uint8) * np.uint8(255)
    return np.ascontiguousarray(array), band


# --- PNG --------------------------------------------------------------------------------------


def _png_header(path: Path) -> tuple[int, int, int, int]:
    """``(width, height, bit depth, colour type)`` from the IHDR chunk."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(29)
    except OSError as exc:
        raise ImageError(f"{path}: unreadable PNG ({type(exc).__name__}: {exc})") from exc
    if len(head) < 29 or head[:8] != _PNG_SIGNATURE or head[12:16] != b"IHDR":
        raise ImageError(f"{path}: not a PNG file")
    return struct.unpack(">IIBB", head[16:26])


def _open_pil(path: Path):
    from PIL import Image

    try:
        return Image.open(path)
    except Exception as exc:  # PIL raises many types for broken files
        raise ImageError(f"{path}: unreadable {path.suffix.lstrip('.').upper()} "
                         f"({type(exc).__name__}: {exc})") from exc


def _gray_palette(image) -> bool:
    palette = image.getpalette(rawmode="RGB") or []
    return all(palette[i] == palette[i + 1] == palette[i + 2] for i in range(0, len(palette) - 2, 3))


def _png_layout(path: Path) -> tuple[tuple[int, int, int, np.dtype], str]:
    """``((H, W, channels, dtype), how)``: ``how`` is how :func:`_read_png` decodes the file."""
    width, height, depth, colour = _png_header(path)
    if colour == 3:
        with _open_pil(path) as image:
            gray = _gray_palette(image)
        return (height, width, 1 if gray else 3, np.dtype(np.uint8)), "palette-gray" if gray else "palette-rgb"
    if colour not in _PNG_CHANNELS or depth not in (1, 2, 4, 8, 16):
        raise ImageError(f"{path}: PNG colour type {colour} with bit depth {depth} not supported")
    dtype = np.dtype(np.uint16 if depth == 16 else np.uint8)
    # Pillow silently reduces 16-bit RGB, RGBA and gray+alpha PNGs to 8 bits: those go to imagecodecs
    how = "imagecodecs" if depth == 16 and colour != 0 else "pil"
    return (height, width, _PNG_CHANNELS[colour], dtype), how


def _read_png(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    (height, width, channels, dtype), how = _png_layout(path)
    try:
        if how == "imagecodecs":
            import imagecodecs

            array = imagecodecs.png_decode(path.read_bytes())
        else:
            with _open_pil(path) as image:
                image.load()  # decode now: a truncated file fails here
                if how == "palette-gray":
                    image = image.convert("RGB").getchannel("R")
                elif how == "palette-rgb":
                    image = image.convert("RGB")
                elif image.mode == "1":
                    image = image.convert("L")  # {0, 255}
                array = np.asarray(image)
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{path}: unreadable PNG ({type(exc).__name__}: {exc})") from exc
    band = None
    if array.ndim == 3 and array.shape[2] > channels:
        array, band = array[..., :channels], array[..., channels]  # drop alpha
    if channels == 1 and array.ndim == 3:
        array = array[..., 0]
    array = np.ascontiguousarray(array)
    if array.shape[:2] != (height, width) or array.dtype != dtype:
        raise ImageError(f"{path}: decoded as {array.dtype} {array.shape}, header says {dtype} ({height}, {width})")
    return array, band


# --- JPEG, BMP, GIF (Pillow) ------------------------------------------------------------------


def _pil_mode(path: Path) -> str:
    with _open_pil(path) as image:
        return image.mode


def _single_frame(image, path: Path) -> None:
    frames = getattr(image, "n_frames", 1)
    if frames != 1:
        raise ImageError(f"{path}: {frames} frames (an animation), expected exactly one image")


def _pil_layout(path: Path) -> tuple[tuple[int, int, int, np.dtype], str]:
    """``((H, W, channels, dtype), mode)`` of a JPEG, BMP or GIF from its header."""
    with _open_pil(path) as image:
        _single_frame(image, path)
        mode, (width, height) = image.mode, image.size
        gray = mode == "P" and _gray_palette(image)
    if mode == "P":
        return (height, width, 1 if gray else 3, np.dtype(np.uint8)), "palette-gray" if gray else "palette-rgb"
    if mode not in _PIL_MODES:
        raise ImageError(f"{path}: image mode {mode} not supported (expected gray, RGB or a palette)")
    channels, dtype, _ = _PIL_MODES[mode]
    return (height, width, channels, np.dtype(dtype)), mode


def _read_pil(path: Path) -> tuple[np.ndarray, np.ndarray | None]:
    (height, width, channels, dtype), how = _pil_layout(path)
    band = None
    try:
        with _open_pil(path) as image:
            image.load()
            if how == "palette-gray":
                array = np.asarray(image.convert("RGB").getchannel("R"))
            elif how == "palette-rgb":
                array = np.asarray(image.convert("RGB"))
            elif how == "1":
                array = np.asarray(image.convert("L"))  # {0, 255}
            else:
                array = np.asarray(image)
                alpha = _PIL_MODES[how][2]
                if alpha is not None:
                    array, band = array[..., :alpha], array[..., alpha]
                    if channels == 1:
                        array = array[..., 0]
                elif how == "RGBX":
                    array = array[..., :3]
    except ImageError:
        raise
    except Exception as exc:
        raise ImageError(f"{path}: unreadable image ({type(exc).__name__}: {exc})") from exc
    array = np.ascontiguousarray(array, dtype=dtype)
    if array.shape[:2] != (height, width):
        raise ImageError(f"{path}: decoded as {array.shape}, header says ({height}, {width})")
    return array, band
