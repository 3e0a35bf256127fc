"""Reading and writing NIfTI and MetaImage volumes: voxel order, RAS affines, label round trips and errors."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
import SimpleITK as sitk

from plexus.io.volumes import (
    VOLUME_SUFFIXES,
    Volume,
    VolumeError,
    axial_axis,
    from_slices,
    read_header,
    read_volume,
    same_grid,
    to_slices,
    volume_suffix,
    write_label_volume,
)

RNG = np.random.default_rng(3)
DATA = RNG.normal(size=(4, 5, 6)).astype(np.float32)
# voxel axis 0 -> -y (1.0 mm), axis 1 -> +z (2.0 mm), axis 2 -> -x (1.5 mm): permuted and flipped
NIFTI_AFFINE = np.array([[0.0, 0.0, -1.5, 40.0],
                         [-1.0, 0.0, 0.0, 12.5],
                         [0.0, 2.0, 0.0, -30.0],
                         [0.0, 0.0, 0.0, 1.0]])
# ITK grid (LPS): index axis 0 -> +P (0.5 mm), axis 1 -> -S (2.0 mm), axis 2 -> +L (3.0 mm)
ITK_SPACING = (0.5, 2.0, 3.0)
ITK_ORIGIN = (10.0, -20.0, 30.0)
ITK_DIRECTION = (0.0, 0.0, 1.0,
                 1.0, 0.0, 0.0,
                 0.0, -1.0, 0.0)
# by hand: RAS column = LPS column with x and y negated; origin (10, -20, 30) LPS = (-10, 20, 30) RAS
ITK_AFFINE = np.array([[0.0, 0.0, -3.0, -10.0],
                       [-0.5, 0.0, 0.0, 20.0],
                       [0.0, -2.0, 0.0, 30.0],
                       [0.0, 0.0, 0.0, 1.0]])


def _write_nifti(path, data, affine=NIFTI_AFFINE, sform_code=1, qform_code=2):
    image = nib.Nifti1Image(data, affine)
    image.header.set_sform(affine, code=sform_code)
    image.header.set_qform(affine, code=qform_code)
    nib.save(image, path)
    return path


def _write_itk(path, data, spacing=ITK_SPACING, origin=ITK_ORIGIN, direction=ITK_DIRECTION, vector=False):
    """``data`` in (x, y, z[, c]) order, written through SimpleITK's (z, y, x[, c]) view."""
    order = (2, 1, 0, 3) if vector else (2, 1, 0)
    image = sitk.GetImageFromArray(np.ascontiguousarray(data.transpose(order)), isVector=vector)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    sitk.WriteImage(image, str(path))
    return path


def test_volume_suffix():
    assert volume_suffix("a/scan.NII.GZ") == ".nii.gz"
    assert volume_suffix("scan.nii") == ".nii"
    assert volume_suffix("x.mha") == ".mha" and volume_suffix("x.MHD") == ".mhd"
    assert volume_suffix("x.gz") is None and volume_suffix("x.png") is None
    assert set(VOLUME_SUFFIXES) == {".nii.gz", ".nii", ".mha", ".mhd"}


@pytest.mark.parametrize("name", ["scan.nii", "scan.nii.gz"])
def test_read_nifti_keeps_voxels_and_affine(tmp_path, name):
    path = _write_nifti(tmp_path / name, DATA)
    volume = read_volume(path)
    np.testing.assert_array_equal(volume.array, DATA)
    np.testing.assert_allclose(volume.affine, NIFTI_AFFINE)
    assert volume.spacing == pytest.approx((1.0, 2.0, 1.5))
    assert volume.shape3 == (4, 5, 6) and volume.path == str(path)
    assert isinstance(volume.header, nib.Nifti1Header)
    shape, affine, spacing = read_header(path)
    assert shape == (4, 5, 6)
    np.testing.assert_allclose(affine, NIFTI_AFFINE)
    assert spacing == pytest.approx((1.0, 2.0, 1.5))


def test_read_nifti_applies_scaling_and_native_byte_order(tmp_path):
    stored = RNG.integers(-100, 100, (3, 4, 5)).astype(">i2")
    header = nib.Nifti1Header(endianness=">")
    image = nib.Nifti1Image(stored, NIFTI_AFFINE, header=header, dtype=">i2")
    image.header.set_slope_inter(2.0, 1.0)
    image.to_filename(tmp_path / "scaled.nii")
    volume = read_volume(tmp_path / "scaled.nii")
    np.testing.assert_allclose(volume.array, 2.0 * stored.astype(np.float64) + 1.0)
    unscaled = nib.Nifti1Image(stored, NIFTI_AFFINE, header=nib.Nifti1Header(endianness=">"), dtype=">i2")
    unscaled.to_filename(tmp_path / "big.nii")
    assert nib.load(tmp_path / "big.nii").get_data_dtype() == np.dtype(">i2")
    volume = read_volume(tmp_path / "big.nii")
    assert volume.array.dtype.isnative and volume.array.dtype == np.int16
    np.testing.assert_array_equal(volume.array, stored)


def test_trailing_singleton_axis_reads_as_3d(tmp_path):
    path = _write_nifti(tmp_path / "padded.nii.gz", DATA[..., None])
    assert nib.load(path).shape == (4, 5, 6, 1)
    volume = read_volume(path)
    assert volume.array.shape == (4, 5, 6)
    np.testing.assert_array_equal(volume.array, DATA)
    assert read_header(path)[0] == (4, 5, 6)


def test_read_mha_with_direction(tmp_path):
    path = _write_itk(tmp_path / "scan.mha", DATA)
    volume = read_volume(path)
    np.testing.assert_array_equal(volume.array, DATA)
    np.testing.assert_allclose(volume.affine, ITK_AFFINE, atol=1e-12)
    assert volume.spacing == pytest.approx(ITK_SPACING)
    assert volume.header["direction"] == pytest.approx(ITK_DIRECTION)
    # independently: ITK's own index -> LPS point, x and y negated, is the affine's RAS point
    image = sitk.ReadImage(str(path))
    for index in [(0, 0, 0), (3, 1, 2), (1, 4, 5)]:
        lps = np.array(image.TransformIndexToPhysicalPoint(index))
        np.testing.assert_allclose(volume.affine @ (*index, 1), (-lps[0], -lps[1], lps[2], 1), atol=1e-12)
        assert image.GetPixel(index) == DATA[index]
    shape, affine, spacing = read_header(path)
    assert shape == (4, 5, 6)
    np.testing.assert_allclose(affine, ITK_AFFINE, atol=1e-12)
    assert axial_axis(volume.affine) == 1


def test_read_mhd_with_raw(tmp_path):
    data = RNG.integers(0, 1000, (4, 5, 6)).astype(np.int16)
    path = _write_itk(tmp_path / "scan.mhd", data, direction=(1, 0, 0, 0, 1, 0, 0, 0, 1))
    assert (tmp_path / "scan.raw").exists()
    volume = read_volume(path)
    np.testing.assert_array_equal(volume.array, data)
    expected = np.diag([-0.5, -2.0, 3.0, 1.0])
    expected[:3, 3] = (-10.0, 20.0, 30.0)
    np.testing.assert_allclose(volume.affine, expected)
    (tmp_path / "scan.raw").unlink()
    with pytest.raises(VolumeError, match=r"scan\.mhd: unreadable voxel data: .*\.raw"):
        read_volume(path)


def test_read_4d_channels(tmp_path):
    data = RNG.normal(size=(4, 5, 6, 3)).astype(np.float32)
    nifti = _write_nifti(tmp_path / "multi.nii.gz", data)
    mha = _write_itk(tmp_path / "multi.mha", data, vector=True)
    for path in (nifti, mha):
        volume = read_volume(path, ndim=4)
        np.testing.assert_array_equal(volume.array, data)
        assert volume.shape3 == (4, 5, 6)
        assert read_volume(path, ndim=None).array.shape == (4, 5, 6, 3)
        assert read_header(path)[0] == (4, 5, 6, 3)
        with pytest.raises(VolumeError) as info:
            read_volume(path)
        message = str(info.value)
        assert message.startswith(str(path)) and "(4, 5, 6, 3)" in message and "Decathlon" in message
    np.testing.assert_allclose(read_volume(mha, ndim=4).affine, ITK_AFFINE, atol=1e-12)
    with pytest.raises(VolumeError, match="a 3-D volume .* where a 4-D one"):
        read_volume(_write_nifti(tmp_path / "single.nii", DATA), ndim=4)


def test_axial_axis_hand_cases():
    assert axial_axis(np.eye(4)) == 2
    permuted = np.array([[0, 1, 0, 0], [0, 0, 1, 0], [1, 0, 0, 0], [0, 0, 0, 1]], float)  # axis 0 -> S
    assert axial_axis(permuted) == 0
    assert axial_axis(NIFTI_AFFINE) == 1  # axis 1 -> +z
    flipped = np.diag([1.0, 1.0, -3.0, 1.0])  # axis 2 -> I
    assert axial_axis(flipped) == 2
    angle = np.deg2rad(30)  # axis 2 tilted 30 degrees towards anterior: still the axial axis
    tilted = np.eye(4)
    tilted[1:3, 1:3] = [[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]]
    assert axial_axis(tilted) == 2


@pytest.mark.parametrize("shape", [(4, 5, 6), (4, 5, 6, 2)])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_slices_round_trip(shape, axis):
    array = RNG.normal(size=shape)
    slices = to_slices(array, axis)
    rest = [n for i, n in enumerate(shape) if i != axis]
    assert slices.shape == (shape[axis], *rest) and slices.flags.c_contiguous
    for k in range(shape[axis]):
        index = [slice(None)] * len(shape)
        index[axis] = k
        np.testing.assert_array_equal(slices[k], array[tuple(index)])
    back = from_slices(slices, axis)
    np.testing.assert_array_equal(back, array)
    with pytest.raises(ValueError, match="axis"):
        to_slices(array, 3)


def test_same_grid(tmp_path):
    volume = read_volume(_write_nifti(tmp_path / "a.nii", DATA))
    assert same_grid(volume, ((4, 5, 6), NIFTI_AFFINE))
    assert same_grid(((4, 5, 6, 3), NIFTI_AFFINE + 5e-4), volume)
    assert not same_grid(volume, ((4, 5, 6), NIFTI_AFFINE + 2e-3))
    assert same_grid(volume, ((4, 5, 6), NIFTI_AFFINE + 2e-3), atol=1e-2)
    assert not same_grid(volume, ((4, 5, 7), NIFTI_AFFINE))


def _labels(high=4):
    return RNG.integers(0, high + 1, (4, 5, 6))


@pytest.mark.parametrize("name", ["labels.nii.gz", "labels.nii"])
def test_write_labels_on_nifti_grid(tmp_path, name):
    like = read_volume(_write_nifti(tmp_path / "scan.nii.gz", DATA, sform_code=1, qform_code=2))
    labels = _labels()
    write_label_volume(tmp_path / name, labels, like)
    image = nib.load(tmp_path / name)
    assert image.get_data_dtype() == np.uint8
    assert int(image.header["sform_code"]) == 1 and int(image.header["qform_code"]) == 2
    np.testing.assert_allclose(image.header.get_sform(), NIFTI_AFFINE)
    np.testing.assert_allclose(image.header.get_qform(), NIFTI_AFFINE, atol=1e-6)
    back = read_volume(tmp_path / name)
    np.testing.assert_array_equal(back.array, labels)
    assert back.array.dtype == np.uint8
    np.testing.assert_allclose(back.affine, like.affine)
    big = labels * 100 - 50  # -50..350: int16
    write_label_volume(tmp_path / name, big, like)
    back = read_volume(tmp_path / name)
    assert back.array.dtype == np.int16
    np.testing.assert_array_equal(back.array, big)


def test_write_labels_on_scaled_4d_nifti_grid(tmp_path):
    # a Decathlon-like float scan with scaling: the labels are stored unscaled, 3-D
    image = nib.Nifti1Image(RNG.integers(0, 50, (4, 5, 6, 2)).astype(np.int16), NIFTI_AFFINE)
    image.header.set_slope_inter(0.5, 3.0)
    image.to_filename(tmp_path / "multi.nii.gz")
    like = read_volume(tmp_path / "multi.nii.gz", ndim=4)
    labels = _labels()
    write_label_volume(tmp_path / "labels.nii.gz", labels, like)
    back = read_volume(tmp_path / "labels.nii.gz")
    np.testing.assert_array_equal(back.array, labels)
    assert back.array.dtype == np.uint8
    np.testing.assert_allclose(back.affine, NIFTI_AFFINE)


def test_write_labels_on_itk_grid(tmp_path):
    like = read_volume(_write_itk(tmp_path / "scan.mha", DATA))
    labels = _labels(high=300)
    write_label_volume(tmp_path / "labels.mha", labels, like)
    image = sitk.ReadImage(str(tmp_path / "labels.mha"))
    assert image.GetSpacing() == pytest.approx(ITK_SPACING)
    assert image.GetOrigin() == pytest.approx(ITK_ORIGIN)
    assert image.GetDirection() == pytest.approx(ITK_DIRECTION)
    assert image.GetPixelID() == sitk.sitkInt16
    back = read_volume(tmp_path / "labels.mha")
    np.testing.assert_array_equal(back.array, labels)
    np.testing.assert_allclose(back.affine, ITK_AFFINE, atol=1e-12)
    # the same grid as NIfTI: scanner-coded sform and qform holding the RAS affine
    write_label_volume(tmp_path / "labels.nii.gz", labels, like)
    header = nib.load(tmp_path / "labels.nii.gz").header
    assert int(header["sform_code"]) == 1 and int(header["qform_code"]) == 1
    back = read_volume(tmp_path / "labels.nii.gz")
    np.testing.assert_array_equal(back.array, labels)
    np.testing.assert_allclose(back.affine, ITK_AFFINE, atol=1e-6)


def test_mha_labels_on_nifti_grid_keep_the_ras_affine(tmp_path):
    angle = np.deg2rad(17)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rotation @ NIFTI_AFFINE[:3, :3]
    affine[:3, 3] = (-12.25, 7.125, 33.3)
    like = read_volume(_write_nifti(tmp_path / "scan.nii.gz", DATA, affine=affine))
    labels = _labels()
    write_label_volume(tmp_path / "labels.mha", labels, like)
    back = read_volume(tmp_path / "labels.mha")
    np.testing.assert_array_equal(back.array, labels)
    np.testing.assert_allclose(back.affine, like.affine, atol=1e-6)
    assert back.spacing == pytest.approx((1.0, 2.0, 1.5))
    assert same_grid(back, like)


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(VolumeError, match=r"missing\.nii\.gz: no such file"):
        read_volume(tmp_path / "missing.nii.gz")
    (tmp_path / "scan.png").write_bytes(b"x")
    with pytest.raises(VolumeError, match=r"scan\.png: unsupported volume type .*\.nii\.gz, \.nii, \.mha, \.mhd"):
        read_volume(tmp_path / "scan.png")
    for name in ("garbage.nii.gz", "garbage.mha", "garbage.nii"):
        (tmp_path / name).write_bytes(bytes(range(256)) * 3)
        for reader in (read_volume, read_header):
            with pytest.raises(VolumeError) as info:
                reader(tmp_path / name)
            assert str(info.value).startswith(str(tmp_path / name))
            assert "unreadable volume header" in str(info.value)


def test_truncated_voxel_data(tmp_path):
    path = _write_nifti(tmp_path / "cut.nii", DATA)
    path.write_bytes(path.read_bytes()[:-100])
    assert read_header(path)[0] == (4, 5, 6)  # the header is intact
    with pytest.raises(VolumeError, match=r"cut\.nii: unreadable voxel data"):
        read_volume(path)


def test_write_errors(tmp_path):
    like = read_volume(_write_nifti(tmp_path / "scan.nii.gz", DATA))
    with pytest.raises(VolumeError) as info:
        write_label_volume(tmp_path / "labels.nii.gz", np.zeros((4, 5, 7), np.uint8), like)
    assert "labels.nii.gz" in str(info.value) and "(4, 5, 7)" in str(info.value)
    with pytest.raises(VolumeError, match=r"labels\.mhd: writing \.mhd is not supported"):
        write_label_volume(tmp_path / "labels.mhd", _labels(), like)
    with pytest.raises(VolumeError, match=r"labels\.png: unsupported"):
        write_label_volume(tmp_path / "labels.png", _labels(), like)
    with pytest.raises(VolumeError, match=r"labels\.nii: labels must be integers"):
        write_label_volume(tmp_path / "labels.nii", _labels().astype(np.float32), like)
    with pytest.raises(VolumeError, match=r"labels\.nii: label values .* 16-bit"):
        write_label_volume(tmp_path / "labels.nii", _labels() * 40000, like)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.nii.gz"]


def test_failed_write_leaves_no_file(tmp_path, monkeypatch):
    like = read_volume(_write_nifti(tmp_path / "scan.nii.gz", DATA))
    target = tmp_path / "labels.nii.gz"

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(nib.Nifti1Image, "to_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        write_label_volume(target, _labels(), like)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.nii.gz"]
    monkeypatch.undo()
    labels = _labels()
    write_label_volume(target, labels, like)
    monkeypatch.setattr(nib.Nifti1Image, "to_bytes", broken)
    with pytest.raises(OSError, match="disk full"):
        write_label_volume(target, labels + 1, like)
    monkeypatch.undo()
    np.testing.assert_array_equal(read_volume(target).array, labels)  # the old file, untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.nii.gz", "scan.nii.gz"]


def test_volume_is_frozen(tmp_path):
    volume = read_volume(_write_nifti(tmp_path / "a.nii", DATA))
    assert isinstance(volume, Volume)
    with pytest.raises(AttributeError):
        volume.path = "other"
