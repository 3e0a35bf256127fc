import imagecodecs
import numpy as np
import pytest
import tifffile
from PIL import Image

from plexus.io.images import ImageError, image_info, read_image

RNG = np.random.default_rng(7)
GRAY8 = RNG.integers(0, 256, (5, 7), dtype=np.uint8)
GRAY16 = RNG.integers(0, 65536, (5, 7), dtype=np.uint16)
RGB8 = RNG.integers(0, 256, (5, 7, 3), dtype=np.uint8)
RGB16 = RNG.integers(0, 65536, (5, 7, 3), dtype=np.uint16)
ALPHA8 = RNG.integers(0, 256, (5, 7), dtype=np.uint8)


def _info_of(array):
    return array.shape[0], array.shape[1], 1 if array.ndim == 2 else array.shape[2], array.dtype


def _png_pil(path, array):
    Image.fromarray(array).save(path)


def _png_codecs(path, array):
    path.write_bytes(imagecodecs.png_encode(array))


# (name, writer, stored array, expected array)
CASES = [
    ("gray8.png", _png_pil, GRAY8, GRAY8),
    ("gray16.png", _png_pil, GRAY16, GRAY16),
    ("rgb8.png", _png_pil, RGB8, RGB8),
    ("rgba8.png", _png_pil, np.dstack([RGB8, ALPHA8]), RGB8),
    # Pillow would reduce these three to 8 bits; the reader must not
    ("rgb16.png", _png_codecs, RGB16, RGB16),
    ("rgba16.png", _png_codecs, np.dstack([RGB16, GRAY16]), RGB16),
    ("grayalpha16.png", _png_codecs, np.dstack([GRAY16, GRAY16[::-1]]), GRAY16),
    ("gray8.tif", lambda p, a: tifffile.imwrite(p, a), GRAY8, GRAY8),
    ("gray8_lzw.tif", lambda p, a: tifffile.imwrite(p, a, compression="lzw"), GRAY8, GRAY8),
    ("gray16_lzw.tiff", lambda p, a: tifffile.imwrite(p, a, compression="lzw"), GRAY16, GRAY16),
    ("rgb8.tif", lambda p, a: tifffile.imwrite(p, a, photometric="rgb"), RGB8, RGB8),
    ("rgb16.tif", lambda p, a: tifffile.imwrite(p, a, photometric="rgb", compression="lzw"), RGB16, RGB16),
    ("rgba8.tif", lambda p, a: tifffile.imwrite(p, a, photometric="rgb"), np.dstack([RGB8, ALPHA8]), RGB8),
    ("planar.tif", lambda p, a: tifffile.imwrite(p, a, photometric="rgb", planarconfig="separate"),
     np.moveaxis(RGB8, -1, 0), RGB8),
    ("upper.PNG", _png_pil, GRAY8, GRAY8),
]


@pytest.mark.parametrize(("name", "write", "stored", "expected"), CASES, ids=[c[0] for c in CASES])
def test_read_image_keeps_values_and_depth(tmp_path, name, write, stored, expected):
    path = tmp_path / name
    write(path, stored)
    array = read_image(path)
    assert array.dtype == expected.dtype and array.shape == expected.shape
    np.testing.assert_array_equal(array, expected)
    assert image_info(path) == _info_of(expected)


def test_one_bit_images_read_as_0_255(tmp_path):
    bits = GRAY8 > 128
    Image.fromarray(bits).save(tmp_path / "b.png")
    tifffile.imwrite(tmp_path / "b.tif", bits)
    for name in ("b.png", "b.tif"):
        array = read_image(tmp_path / name)
        assert array.dtype == np.uint8
        np.testing.assert_array_equal(array, bits.astype(np.uint8) * 255)
        assert image_info(tmp_path / name) == (5, 7, 1, np.dtype(np.uint8))


def test_palette_png_gray_palette_gives_gray(tmp_path):
    image = Image.fromarray((GRAY8 > 128).astype(np.uint8), mode="L").convert("P")
    image.putpalette([0, 0, 0, 255, 255, 255])
    image.save(tmp_path / "p.png")
    array = read_image(tmp_path / "p.png")
    np.testing.assert_array_equal(array, (GRAY8 > 128).astype(np.uint8) * 255)
    assert image_info(tmp_path / "p.png") == (5, 7, 1, np.dtype(np.uint8))


def test_palette_png_colour_palette_gives_rgb(tmp_path):
    image = Image.fromarray((GRAY8 > 128).astype(np.uint8), mode="L").convert("P")
    image.putpalette([255, 0, 0, 0, 0, 255])
    image.save(tmp_path / "p.png")
    array = read_image(tmp_path / "p.png")
    assert array.shape == (5, 7, 3)
    expected = np.where((GRAY8 > 128)[..., None], [0, 0, 255], [255, 0, 0]).astype(np.uint8)
    np.testing.assert_array_equal(array, expected)
    assert image_info(tmp_path / "p.png") == (5, 7, 3, np.dtype(np.uint8))


def _error(path, fn=read_image):
    with pytest.raises(ImageError) as info:
        fn(path)
    assert str(path) in str(info.value)
    return str(info.value)


def test_unsupported_suffix(tmp_path):
    path = tmp_path / "x.webp"
    Image.fromarray(RGB8).save(path)
    assert "unsupported image type '.webp'" in _error(path)
    assert "unsupported image type" in _error(path, image_info)


def test_missing_file(tmp_path):
    assert "no such file" in _error(tmp_path / "gone.png")
    assert "no such file" in _error(tmp_path / "gone.tif", image_info)


@pytest.mark.parametrize("dtype", [np.float32, np.int16, np.uint32])
def test_tiff_dtypes_refused(tmp_path, dtype):
    path = tmp_path / "x.tif"
    tifffile.imwrite(path, GRAY8.astype(dtype))
    assert f"{np.dtype(dtype)} TIFF not supported" in _error(path)
    assert "not supported" in _error(path, image_info)


def test_multi_page_tiff_refused(tmp_path):
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, np.stack([GRAY8, GRAY8]), photometric="minisblack", metadata=None)
    assert "multi-page TIFF (2 pages)" in _error(path)
    assert "multi-page" in _error(path, image_info)


def test_garbage_files_refused(tmp_path):
    (tmp_path / "x.png").write_bytes(b"not an image at all, just some text bytes")
    (tmp_path / "x.tif").write_bytes(b"not an image at all, just some text bytes")
    assert "not a PNG file" in _error(tmp_path / "x.png", image_info)
    assert "unreadable TIFF" in _error(tmp_path / "x.tif", image_info)
    tifffile.imwrite(tmp_path / "tiff_as.png", GRAY8)
    assert "not a PNG file" in _error(tmp_path / "tiff_as.png")


def test_truncated_png_header_fine_pixels_not(tmp_path):
    path = tmp_path / "t.png"
    Image.fromarray(RNG.integers(0, 256, (64, 64), dtype=np.uint8)).save(path)
    path.write_bytes(path.read_bytes()[:200])
    assert image_info(path) == (64, 64, 1, np.dtype(np.uint8))  # header only
    assert "unreadable PNG" in _error(path)
