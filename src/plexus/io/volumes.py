"""Reading and writing 3-D medical volumes: NIfTI (``.nii``, ``.nii.gz``) and MetaImage (``.mha``, ``.mhd``).

:func:`read_volume` gives a :class:`Volume` whose ``array`` is in stored voxel order ``(i, j, k[, c])``
for every format, and whose ``affine`` maps voxel indices to world RAS+ millimetres as nibabel defines
it, so that two volumes of the same scan compare equal whatever file type holds them:

* NIfTI is read by nibabel: ``array`` is ``np.asanyarray(img.dataobj)`` (``scl_slope``/``scl_inter``
  applied), ``affine`` is ``img.affine`` (sform, else qform, else the pixdim fallback); spatial units
  are taken as millimetres, as nibabel does;
* MetaImage is read by SimpleITK: its ``z, y, x`` numpy view is transposed to ``x, y, z`` (``i, j, k``),
  and its LPS ``spacing``/``origin``/``direction`` become the RAS affine by negating the first two
  world axes.

``spacing`` is the length in millimetres of one voxel step along each of the three spatial axes
(the norms of the affine's columns; for MetaImage the stored spacing).

Trailing singleton axes after the third (NIfTI ``(x, y, z, 1)``) are dropped, so such a file is 3-D;
a 4th axis of several entries holds channels (the Medical Segmentation Decathlon's modalities).

:func:`write_label_volume` writes a label map on the grid of a volume read before, with that volume's
affine and header, so viewers overlay it on the scan. ``.mhd`` is read but not written: a header and
its separate data file cannot be replaced in one atomic step.

Every problem with a file is a :class:`VolumeError` whose message starts with the file's path.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.orientations import aff2axcodes

from plexus.errors import DataError
from plexus.io.atomic import atomic_path

__all__ = ["VOLUME_SUFFIXES", "Volume", "VolumeError", "axial_axis", "from_slices", "read_header", "read_volume",
           "same_grid", "to_slices", "volume_suffix", "write_label_volume"]

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd")
_NIFTI_SUFFIXES = (".nii.gz", ".nii")
_WRITE_SUFFIXES = (".nii.gz", ".nii", ".mha")
#: LPS (ITK) <-> RAS (nibabel) world axes: negate x and y
_LPS_RAS = np.diag([-1.0, -1.0, 1.0])
_DECATHLON_HINT = ("(the Medical Segmentation Decathlon stacks its modalities in a 4th axis: "
                   "data.volumes.layout: decathlon reads them as channels)")


class VolumeError(DataError):
    """A volume file that cannot be read or written as asked; the message starts with the file's path."""


@dataclass(frozen=True, eq=False)
class Volume:
    """A volume as read: voxels in ``(i, j, k[, c])`` order, its RAS+ affine, voxel sizes and source header.

    ``header`` is what writing a label map back on this grid needs: the nibabel header for NIfTI, a dict
    of the LPS ``spacing``/``origin``/``direction`` (SimpleITK's tuples) for MetaImage.
    """

    path: str
    array: np.ndarray
    affine: np.ndarray
    spacing: tuple[float, float, float]
    header: object

    @property
    def shape3(self) -> tuple[int, int, int]:
        return tuple(self.array.shape[:3])


def volume_suffix(path: str | os.PathLike) -> str | None:
    """The volume suffix ``path`` ends with (lower case, ``.nii.gz`` before ``.nii``), else None."""
    name = Path(path).name.lower()
    return next((suffix for suffix in VOLUME_SUFFIXES if name.endswith(suffix)), None)


def _checked(path: str | os.PathLike) -> tuple[Path, str]:
    path = Path(path)
    suffix = volume_suffix(path)
    if suffix is None:
        raise VolumeError(f"{path}: unsupported volume type (supported: {', '.join(VOLUME_SUFFIXES)})")
    if not path.exists():
        raise VolumeError(f"{path}: no such file")
    if not path.is_file():
        raise VolumeError(f"{path}: not a file")
    return path, suffix


def _itk_reason(exc: Exception) -> str:
    """The useful part of a SimpleITK exception, on one line.

    ITK's text carries its source file and line, the object's address and often a meaningless
    ``Reason: Success`` (a stale errno); keep the ITK ERROR's own sentence.
    """
    text = str(exc)
    if "ITK ERROR:" in text:
        text = text.split("ITK ERROR:", 1)[1]
    text = re.sub(r"^\s*\w+\(0x[0-9a-fA-F]+\):", "", text.split("Reason:", 1)[0])
    return " ".join(text.split())[:300] or " ".join(str(exc).split())[:300]


def _squeeze_trailing(shape: tuple[int, ...]) -> tuple[int, ...]:
    """``shape`` without singleton axes after the third: NIfTI pads a 3-D volume to ``(x, y, z, 1)`` at times."""
    spatial, rest = tuple(shape[:3]), [n for n in shape[3:] if n != 1]
    return spatial + tuple(rest)


def _affine_from_itk(spacing, origin, direction) -> np.ndarray:
    """The RAS+ voxel-to-world affine of an ITK grid (LPS spacing, origin and row-major direction)."""
    direction = np.asarray(direction, dtype=np.float64).reshape(3, 3)
    affine = np.eye(4)
    affine[:3, :3] = _LPS_RAS @ direction @ np.diag(np.asarray(spacing, dtype=np.float64))
    affine[:3, 3] = _LPS_RAS @ np.asarray(origin, dtype=np.float64)
    return affine


def _itk_from_affine(affine: np.ndarray) -> dict:
    """ITK's LPS spacing, origin and row-major direction of a RAS+ affine (the inverse of :func:`_affine_from_itk`)."""
    lps = _LPS_RAS @ np.asarray(affine, dtype=np.float64)[:3]
    spacing = np.linalg.norm(lps[:, :3], axis=0)
    direction = lps[:, :3] / spacing
    return {"spacing": tuple(float(s) for s in spacing), "origin": tuple(float(o) for o in lps[:, 3]),
            "direction": tuple(float(d) for d in direction.ravel())}


def _spatial3(values, dimension: int) -> tuple:
    """The first three axes of an ITK spacing/origin (length ``dimension``) or direction (``dimension``²)."""
    values = tuple(float(v) for v in values)
    if len(values) == dimension:
        return values[:3]
    return tuple(values[row * dimension + col] for row in range(3) for col in range(3))


def _nifti_image(path: Path):
    try:
        image = nib.load(path, mmap=False)
    except Exception as exc:  # nibabel raises ImageFileError, OSError, EOFError, ValueError... on a bad file
        raise VolumeError(f"{path}: unreadable volume header: {exc}") from exc
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise VolumeError(f"{path}: unreadable volume header: not a NIfTI file ({type(image).__name__})")
    if len(image.shape) < 3:
        raise VolumeError(f"{path}: a {len(image.shape)}-D image {tuple(image.shape)} where a volume is expected")
    return image


def _itk_reader(path: Path):
    import SimpleITK as sitk

    reader = sitk.ImageFileReader()
    reader.SetImageIO("MetaImageIO")
    reader.SetFileName(str(path))
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise VolumeError(f"{path}: unreadable volume header: {_itk_reason(exc)}") from exc
    if reader.GetDimension() < 3:
        size = tuple(reader.GetSize())
        raise VolumeError(f"{path}: a {len(size)}-D image {size} where a volume is expected")
    return reader


def _itk_info(reader) -> tuple[tuple[int, ...], dict]:
    """Shape in ``(i, j, k[, t][, c])`` order and the 3-D LPS grid of a reader that read the header."""
    dimension = reader.GetDimension()
    shape = tuple(int(n) for n in reader.GetSize())
    if reader.GetNumberOfComponents() > 1:
        shape += (int(reader.GetNumberOfComponents()),)
    grid = {"spacing": _spatial3(reader.GetSpacing(), dimension), "origin": _spatial3(reader.GetOrigin(), dimension),
            "direction": _spatial3(reader.GetDirection(), dimension)}
    return shape, grid


def read_header(path: str | os.PathLike) -> tuple[tuple[int, ...], np.ndarray, tuple[float, float, float]]:
    """``(shape, affine, spacing)`` of a volume from its header alone, no voxels decoded.

    ``shape`` is that of the array :func:`read_volume` would return (trailing singleton axes dropped).
    """
    path, suffix = _checked(path)
    if suffix in _NIFTI_SUFFIXES:
        image = _nifti_image(path)
        affine = np.array(image.affine, dtype=np.float64)
        return _squeeze_trailing(image.shape), affine, _column_norms(affine)
    shape, grid = _itk_info(_itk_reader(path))
    return _squeeze_trailing(shape), _affine_from_itk(**grid), grid["spacing"]


def _column_norms(affine: np.ndarray) -> tuple[float, float, float]:
    return tuple(float(n) for n in np.linalg.norm(affine[:3, :3], axis=0))


def _check_ndim(path: Path, shape: tuple[int, ...], ndim: int | None) -> None:
    n = len(shape)
    if ndim == 3 and n != 3:
        hint = f" {_DECATHLON_HINT}" if n == 4 else ""
        raise VolumeError(f"{path}: a {n}-D volume {shape} where a 3-D one is expected{hint}")
    if ndim == 4 and n != 4:
        raise VolumeError(f"{path}: a {n}-D volume {shape} where a 4-D one (channels in the 4th axis) is expected")
    if ndim is None and n not in (3, 4):
        raise VolumeError(f"{path}: a {n}-D volume {shape}; only 3-D volumes and 4-D ones (channels last) are read")


def read_volume(path: str | os.PathLike, *, ndim: int | None = 3) -> Volume:
    """Read a NIfTI or MetaImage volume; ``ndim`` 3 or 4 requires that many axes, None accepts either.

    The dimensionality is checked from the header before any voxel is decoded.
    """
    if ndim not in (3, 4, None):
        raise ValueError(f"ndim must be 3, 4 or None, not {ndim!r}")
    path, suffix = _checked(path)
    if suffix in _NIFTI_SUFFIXES:
        image = _nifti_image(path)
        shape = _squeeze_trailing(image.shape)
        _check_ndim(path, shape, ndim)
        try:
            array = np.asanyarray(image.dataobj)
        except Exception as exc:  # truncated or undecodable voxel data
            raise VolumeError(f"{path}: unreadable voxel data: {exc}") from exc
        affine = np.array(image.affine, dtype=np.float64)
        spacing, header = _column_norms(affine), image.header
    else:
        reader = _itk_reader(path)
        shape, header = _itk_info(reader)
        shape = _squeeze_trailing(shape)
        _check_ndim(path, shape, ndim)
        import SimpleITK as sitk

        try:
            array = sitk.GetArrayFromImage(reader.Execute())
        except RuntimeError as exc:
            hint = " (a .mhd header needs its data file, e.g. the .raw, beside it)" if suffix == ".mhd" else ""
            raise VolumeError(f"{path}: unreadable voxel data: {_itk_reason(exc)}{hint}") from exc
        spatial = reader.GetDimension()
        order = tuple(range(spatial - 1, -1, -1)) + tuple(range(spatial, array.ndim))  # z,y,x[,c] -> x,y,z[,c]
        array = array.transpose(order)
        affine, spacing = _affine_from_itk(**header), header["spacing"]
    array = array.reshape(shape)
    if not array.dtype.isnative:  # big-endian files: torch and others want native byte order
        array = array.astype(array.dtype.newbyteorder("="))
    return Volume(path=str(path), array=array, affine=affine, spacing=spacing, header=header)


def _grid(v) -> tuple[tuple[int, ...], np.ndarray]:
    if isinstance(v, Volume):
        return v.shape3, v.affine
    shape, affine = v
    return tuple(int(n) for n in shape[:3]), np.asarray(affine, dtype=np.float64)


def same_grid(a: Volume | tuple, b: Volume | tuple, *, atol: float = 1e-3) -> bool:
    """Whether two volumes (or ``(shape, affine)`` pairs) have the same 3-D shape and affine within ``atol``."""
    (shape_a, affine_a), (shape_b, affine_b) = _grid(a), _grid(b)
    return shape_a == shape_b and bool(np.allclose(affine_a, affine_b, rtol=0.0, atol=atol))


def axial_axis(affine) -> int:
    """The voxel axis (0, 1 or 2) closest to the superior-inferior world axis."""
    codes = aff2axcodes(np.asarray(affine, dtype=np.float64))
    for axis, code in enumerate(codes):
        if code in ("S", "I"):
            return axis
    raise ValueError(f"no voxel axis maps to superior-inferior in the affine (axis codes {codes})")


def _check_axis(axis: int) -> None:
    if axis not in (0, 1, 2):
        raise ValueError(f"axis must be a spatial axis 0, 1 or 2, not {axis!r}")


def to_slices(array: np.ndarray, axis: int) -> np.ndarray:
    """``(n, h, w[, c])`` slices of a volume along ``axis``: slice ``k`` is ``array`` at index ``k`` of ``axis``."""
    _check_axis(axis)
    return np.ascontiguousarray(np.moveaxis(array, axis, 0))


def from_slices(slices: np.ndarray, axis: int) -> np.ndarray:
    """The volume :func:`to_slices` took ``slices`` from along ``axis`` (its exact inverse)."""
    _check_axis(axis)
    return np.ascontiguousarray(np.moveaxis(slices, 0, axis))


def _label_dtype(path: Path, labels: np.ndarray) -> np.dtype:
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == np.bool_):
        raise VolumeError(f"{path}: labels must be integers, not {labels.dtype}")
    if labels.size == 0:
        return np.dtype(np.uint8)
    low, high = int(labels.min()), int(labels.max())
    if 0 <= low and high <= 255:
        return np.dtype(np.uint8)
    if np.iinfo(np.int16).min <= low and high <= np.iinfo(np.int16).max:
        return np.dtype(np.int16)
    raise VolumeError(f"{path}: label values {low}..{high} do not fit a 16-bit label volume")


def _nifti_bytes(labels: np.ndarray, like: Volume, gz: bool) -> bytes:
    """The file bytes of ``labels`` as a NIfTI image on ``like``'s grid, header copied where ``like`` has one."""
    header = like.header if isinstance(like.header, nib.Nifti1Header) else None
    image_class = nib.Nifti2Image if isinstance(like.header, nib.Nifti2Header) else nib.Nifti1Image
    image = image_class(labels, like.affine, header=header, dtype=labels.dtype)
    hdr = image.header
    if header is None:  # an ITK source: its grid is in scanner coordinates
        hdr.set_sform(like.affine, code="scanner")
        hdr.set_qform(like.affine, code="scanner")
        hdr.set_xyzt_units("mm")
    hdr.set_slope_inter(1.0, 0.0)  # stored values are the labels
    hdr["cal_min"], hdr["cal_max"] = 0.0, 0.0  # the scan's display window means nothing for labels
    hdr.set_intent("none")
    data = image.to_bytes()
    return gzip.compress(data, compresslevel=6, mtime=0) if gz else data


def write_label_volume(path: str | os.PathLike, labels: np.ndarray, like: Volume) -> None:
    """Write an integer label map atomically on ``like``'s grid (``.nii``, ``.nii.gz`` or ``.mha``).

    Stored as uint8 when the labels fit 0..255, else int16, unscaled; NIfTI keeps ``like``'s header
    (sform/qform and their codes), MetaImage ``like``'s spacing, origin and direction.
    """
    path = Path(path)
    suffix = volume_suffix(path)
    if suffix == ".mhd":
        raise VolumeError(f"{path}: writing .mhd is not supported (its separate data file cannot be replaced "
                          f"atomically); write {', '.join(_WRITE_SUFFIXES)}")
    if suffix not in _WRITE_SUFFIXES:
        raise VolumeError(f"{path}: unsupported volume type to write (supported: {', '.join(_WRITE_SUFFIXES)})")
    labels = np.asarray(labels)
    if labels.shape != like.shape3:
        raise VolumeError(f"{path}: labels of shape {labels.shape} do not match the grid {like.shape3} "
                          f"of {like.path}")
    labels = labels.astype(_label_dtype(path, labels), copy=False)
    if suffix in _NIFTI_SUFFIXES:
        with atomic_path(path) as tmp:
            tmp.write_bytes(_nifti_bytes(labels, like, gz=suffix == ".nii.gz"))
        return
    import SimpleITK as sitk

    grid = like.header if isinstance(like.header, dict) else _itk_from_affine(like.affine)
    image = sitk.GetImageFromArray(np.ascontiguousarray(labels.transpose(2, 1, 0)))  # i,j,k -> ITK's z,y,x
    image.SetSpacing(grid["spacing"])
    image.SetOrigin(grid["origin"])
    image.SetDirection(grid["direction"])
    writer = sitk.ImageFileWriter()
    writer.SetImageIO("MetaImageIO")
    writer.SetUseCompression(True)
    with atomic_path(path) as tmp:
        writer.SetFileName(str(tmp))
        try:
            writer.Execute(image)
        except RuntimeError as exc:
            raise VolumeError(f"{path}: cannot write: {_itk_reason(exc)}") from exc
