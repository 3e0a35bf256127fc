import numpy as np
import pytest
import torch

from plexus.data import resize
from plexus.io import rle
from plexus.postprocess import submission, tuning

SHAPE = (42, 58)


def _torch_postprocess(prob, cutoff, min_area):
    """The reference: threshold with torch, empty the masks below the minimum area."""
    masks = prob > cutoff
    masks[masks.flatten(1).sum(1) < min_area] = False
    return masks


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32, torch.float64])
def test_postprocess_matches_torch_thresholding(dtype):
    rng = np.random.default_rng(0)
    prob = torch.from_numpy(rng.random((6, *SHAPE))).to(dtype)
    cutoff = 0.1
    prob[0, :5, :5] = torch.tensor(cutoff, dtype=dtype)  # ties: equal to the cutoff in prob's dtype
    prob[1] = 0
    for cutoff, min_area in [(0.1, 0), (0.5, 1200), (0.9, 250), (1.0, 0), (0.0, 1)]:
        expected = _torch_postprocess(prob.clone(), cutoff, min_area)
        got = tuning.postprocess(prob.clone(), cutoff, min_area)
        assert got.dtype == torch.bool and got.shape == prob.shape
        torch.testing.assert_close(got, expected)
    # a view that is not contiguous, and a tensor that needs torch (autograd)
    view = prob.transpose(1, 2)
    torch.testing.assert_close(tuning.postprocess(view, 0.5, 100), _torch_postprocess(view.clone(), 0.5, 100))
    grad = prob.double().requires_grad_()
    torch.testing.assert_close(tuning.postprocess(grad, 0.5, 100), _torch_postprocess(prob.double(), 0.5, 100))


def _members(seed, n=11):
    rng = np.random.default_rng(seed)
    a = (rng.random((n, 8, 10)) ** 2).astype(np.float16)
    b = (rng.random((n, 12, 15)) ** 2).astype(np.float16)
    a[0] = b[0] = 0  # an empty prediction
    return [a, b]


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_encode_masks_matches_per_image_reference(batch_size):
    members = _members(1)
    cutoff, min_area = 0.45, 300
    pixels = submission.encode_masks(members, cutoff, min_area, batch_size=batch_size, shape=SHAPE)
    prob = resize.upsample_mean(members, SHAPE)  # all images at once
    masks = _torch_postprocess(prob, cutoff, min_area).numpy()
    assert pixels == [rle.encode(m) for m in masks]
    assert pixels[0] == ""
    for text, mask in zip(pixels, masks):
        np.testing.assert_array_equal(rle.decode(text, SHAPE), mask)


def test_write_submission_round_trips(tmp_path):
    members = _members(2, n=5)
    pixels = submission.encode_masks(members, 0.5, 0, shape=SHAPE)
    frame = submission.submission_frame([5, 1, 3, 2, 4], pixels)
    summary = submission.write_submission(frame, tmp_path / "submission.csv")
    assert summary["rows"] == 5 and summary["empty"] == pixels.count("")
    text = (tmp_path / "submission.csv").read_text().splitlines()
    assert text[0] == "img,pixels" and [int(line.split(",")[0]) for line in text[1:]] == [1, 2, 3, 4, 5]
    assert text[1].split(",")[1] == pixels[1]  # image 1 was the second row


def test_presence_gate_is_applied_identically_in_tuning_and_submission():
    """The submission's masks score exactly what tuning says, gate included (issue 10)."""
    from plexus.evaluation.metrics import kaggle_dice
    from plexus.io.rle import decode
    from plexus.postprocess import tuning
    from plexus.postprocess.candidates import PostProcess

    shape = (42, 58)
    rng = np.random.default_rng(5)
    n = 16
    truth = np.zeros((n, *shape), np.uint8)
    for i in range(0, n, 2):
        truth[i, 10:25, 15:40] = 1
    members = [np.clip(rng.random((n, 14, 20)) ** 2 + 0.3 * truth[:, ::3, ::3][:, :14, :20], 0, 1).astype(np.float16)
               for _ in range(2)]
    presence = rng.random(n).astype(np.float32)
    _, best, per_image = tuning.tune(members, truth, [0.3, 0.5, 0.7], [0, 50], presence=presence,
                                     presence_thresholds=[0.0, 0.4, 0.8], shape=shape)
    pipeline = PostProcess(cutoff=best["cutoff"], min_area=best["min_area"],
                           presence_threshold=best["presence_threshold"])
    strings = submission.encode_masks(members, 0, 0, pipeline=pipeline, presence=presence, shape=shape)
    scores = [kaggle_dice(decode(s, shape), t) for s, t in zip(strings, truth)]
    np.testing.assert_allclose(scores, per_image["kaggle_dice"])
    components = pipeline.with_changes(fill_holes=True)  # the per-image path gates the same images
    strings_cc = submission.encode_masks(members, 0, 0, pipeline=components, presence=presence, shape=shape)
    closed = presence < best["presence_threshold"]
    assert all(s == "" for s, c in zip(strings_cc, closed) if c)


@pytest.mark.parametrize("crf", [False, True])
def test_submission_stage_reads_the_maps_and_images_the_decided_pipeline_needs(tmp_path, crf):
    """A tta pipeline submits the flip-averaged maps (and gates on their presence); a crf one
    reads each test image from the manifest. Reference: the pipeline applied image by image."""
    from plexus.io import atomic
    from plexus.io.tiff import write_tiff
    from plexus.postprocess.candidates import PostProcess
    from plexus.tasks.binary import submission_stage

    rng = np.random.default_rng(1)
    n, shape = 5, (420, 580)
    ids = np.array([str(i + 1) for i in range(n)])
    prob, prob_tta = (rng.random((2, n, 64, 80)) ** 3).astype(np.float16)
    presence, presence_tta = rng.random((2, n)).astype(np.float32)
    atomic.write_npz(tmp_path / "mean.npz", image_id=ids, prob=prob, prob_tta=prob_tta, presence=presence,
                     presence_tta=presence_tta)
    paths = []
    for i in range(n):
        paths.append(str(tmp_path / f"{ids[i]}.tif"))
        write_tiff(paths[-1], rng.integers(0, 256, shape, dtype=np.uint8))
    manifest = tmp_path / "test.csv"
    manifest.write_text("image_id,image,height,width,present_image\n"
                        + "".join(f"{i},{p},420,580,1\n" for i, p in zip(ids, paths)))
    pipeline = PostProcess(cutoff=0.2, min_area=10, presence_threshold=0.3, tta=True, crf=crf)
    atomic.write_json(tmp_path / "pp.json", {"pipeline": pipeline.to_dict(), "members": ["m"],
                                              "crf_settings": {"scale": 4, "iterations": 2} if crf else None})
    submission_stage([tmp_path / "mean.npz"], tmp_path / "pp.json", tmp_path / "s.csv", tmp_path / "s.json",
                     manifest_csv=manifest)
    import pandas as pd

    from plexus.io.tiff import read_tiff

    written = pd.read_csv(tmp_path / "s.csv", keep_default_na=False)
    maps = resize.upsample_mean([prob_tta], shape).numpy()
    for i in range(n):
        expected = pipeline.apply(maps[i], float(presence_tta[i]), read_tiff(paths[i]),
                                  {"scale": 4, "iterations": 2})
        assert written["pixels"][i] == rle.encode(expected)
    assert (written["pixels"] != "").any() and (written["pixels"] == "").any()
    # without flip-averaged test maps the tta pipeline is a clear error
    atomic.write_npz(tmp_path / "plain.npz", image_id=ids, prob=prob)
    with pytest.raises(ValueError, match="prob_tta"):
        submission_stage([tmp_path / "plain.npz"], tmp_path / "pp.json", tmp_path / "t.csv", tmp_path / "t.json",
                         manifest_csv=manifest)
