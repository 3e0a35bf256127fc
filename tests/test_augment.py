import math

import pytest
import torch

from plexus.training.augment import affine_matrices, augment_batch

FULL = {"hflip": 0.5, "vflip": 0.5, "shift": 0.1, "rotate": 15, "shear": 8, "zoom": 0.15}


def _data(b=6, h=32, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    images = torch.randn(b, 1, h, w, generator=g)
    masks = torch.zeros(b, 1, h, w)
    for i in range(b):
        r, c = 4 + 2 * i, 6 + 3 * i
        masks[i, 0, r : r + 12, c : c + 14] = 1
    return images, masks


def _gen(seed=123):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("params", [{}, None, {k: 0 for k in FULL}])
def test_identity_params_leave_data_unchanged(params):
    images, masks = _data()
    out_i, out_m = augment_batch(images, masks, params, _gen())
    assert torch.equal(out_i, images) and torch.equal(out_m, masks)
    theta = affine_matrices(4, params, _gen(), size=(32, 48))
    assert torch.equal(theta, torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]).expand(4, 2, 3))


def test_hflip_and_vflip_with_p1_equal_torch_flip():
    images, masks = _data()
    out_i, out_m = augment_batch(images, masks, {"hflip": 1.0}, _gen())
    assert torch.equal(out_i, images.flip(-1)) and torch.equal(out_m, masks.flip(-1))
    out_i, out_m = augment_batch(images, masks, {"vflip": 1.0}, _gen())
    assert torch.equal(out_i, images.flip(-2)) and torch.equal(out_m, masks.flip(-2))


def test_flip_matrix_matches_grid_sample_flip():
    # the flip part of the single affine, applied with grid_sample, is the same flip
    images, _ = _data()
    theta = affine_matrices(len(images), {"hflip": 1.0}, _gen(), size=(32, 48))
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    flipped = torch.nn.functional.grid_sample(images, grid, align_corners=False)
    torch.testing.assert_close(flipped, images.flip(-1), atol=1e-4, rtol=0)


def test_mask_stays_aligned_with_image():
    _, masks = _data()
    images = masks * 1.0
    out_i, out_m = augment_batch(images, masks, FULL, _gen())
    agree = ((out_i > 0.5) == (out_m > 0.5)).float().mean()
    assert agree > 0.99
    assert not torch.equal(out_m, masks)  # something happened


def test_masks_stay_binary_and_dtype_preserved():
    images, masks = _data()
    _, out_m = augment_batch(images, masks, FULL, _gen())
    assert set(out_m.unique().tolist()) <= {0.0, 1.0}
    _, out_u8 = augment_batch(images, masks[:, 0].to(torch.uint8), FULL, _gen())
    assert out_u8.dtype == torch.uint8 and out_u8.shape == masks[:, 0].shape
    assert torch.equal(out_u8, out_m[:, 0].to(torch.uint8))


def test_deterministic_given_generator_seed():
    images, masks = _data()
    a = augment_batch(images, masks, FULL, _gen(7))
    b = augment_batch(images, masks, FULL, _gen(7))
    c = augment_batch(images, masks, FULL, _gen(8))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])
    # affine_matrices consumes the generator exactly like augment_batch
    g1, g2 = _gen(7), _gen(7)
    affine_matrices(len(images), FULL, g1, size=(32, 48))
    augment_batch(images, masks, FULL, g2)
    assert torch.equal(torch.rand(3, generator=g1), torch.rand(3, generator=g2))


def test_parameter_ranges():
    theta = affine_matrices(2000, {"shift": 0.1}, _gen(), size=(32, 48)).double()
    assert theta[:, :, 2].abs().max() <= 0.2 + 1e-6  # normalised units: 2 = full size
    assert theta[:, :, 2].abs().max() > 0.19
    assert torch.equal(theta[:, :, :2], torch.eye(2, dtype=torch.float64).expand(2000, 2, 2))
    # pure rotation on a square image: orthonormal, angle within the limit
    theta = affine_matrices(2000, {"rotate": 10}, _gen(), size=(40, 40)).double()
    angles = torch.atan2(theta[:, 1, 0], theta[:, 0, 0])
    assert angles.abs().max() <= math.radians(10) + 1e-6
    det = torch.linalg.det(theta[:, :, :2])
    torch.testing.assert_close(det, torch.ones_like(det), atol=1e-5, rtol=0)
    theta = affine_matrices(2000, {"zoom": 0.2}, _gen(), size=(40, 40)).double()
    assert theta[:, 0, 0].min() >= 0.8 - 1e-6 and theta[:, 0, 0].max() <= 1.2 + 1e-6
    flips = affine_matrices(4000, {"hflip": 0.5}, _gen(), size=(40, 40))[:, 0, 0]
    assert 0.45 < (flips < 0).float().mean() < 0.55


def test_rotation_is_a_true_rotation_on_non_square_images():
    # rotating by 90 degrees (about the centre) on a 32x48 image maps a horizontal
    # segment to a vertical one of the same pixel length
    h, w = 32, 48
    img = torch.zeros(1, 1, h, w)
    img[0, 0, 16, 14:34] = 1  # 20 pixels long, horizontal
    for seed in range(1000):  # a draw close to a quarter turn
        theta = affine_matrices(1, {"rotate": 90}, _gen(seed), size=(h, w))
        angle = math.degrees(math.atan2(theta[0, 1, 0] * h / w, theta[0, 0, 0]))
        if abs(angle) > 87:
            break
    assert abs(angle) > 87
    grid = torch.nn.functional.affine_grid(theta, [1, 1, h, w], align_corners=False)
    out = torch.nn.functional.grid_sample(img, grid, mode="nearest", align_corners=False)[0, 0]
    rows, cols = out.nonzero(as_tuple=True)
    assert rows.max() - rows.min() >= 18 and cols.max() - cols.min() <= 2


def test_rejects_bad_params():
    images, masks = _data()
    with pytest.raises(ValueError, match="unknown"):
        augment_batch(images, masks, {"elastic": 1}, _gen())
    with pytest.raises(ValueError, match="probability"):
        augment_batch(images, masks, {"hflip": 2}, _gen())
    with pytest.raises(TypeError):
        augment_batch(images.to(torch.uint8), masks, FULL, _gen())


def test_is_vectorised_and_fast():
    import time

    images, masks = _data(b=64, h=64, w=80)
    t = time.perf_counter()
    augment_batch(images, masks, FULL, _gen())
    assert time.perf_counter() - t < 1.0
