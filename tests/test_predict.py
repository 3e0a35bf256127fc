import numpy as np
import pytest
import torch

from plexus.inference.predict import load_model, noisy_images, predict_probs
from plexus.models import build_model

H, W = 32, 48


def _save_model(path, arch, zero_presence=True, **extra):
    torch.manual_seed(0)
    kwargs = {"in_channels": 1, "base_channels": 4, "depth": 2, "dropout": 0.2}
    model = build_model(arch, **kwargs)
    sd = model.state_dict()
    if arch == "unet2head" and zero_presence:
        # presence logit = its bias alone
        sd["presence.weight"].zero_()
        sd["presence.bias"].zero_()
    for k, v in extra.items():
        sd[k] = v
    torch.save(
        {
            "arch": arch,
            "model_kwargs": kwargs,
            "state_dict": sd,
            "mean": 60.0,
            "std": 30.0,
            "input_size": [H, W],
            "settings": {"arch": arch},
        },
        path,
    )
    return path


def _images(n=10, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, H, W), dtype=np.uint8)


def test_unet_probs_shape_dtype_range(tmp_path):
    path = _save_model(tmp_path / "m.pt", "unet")
    out = predict_probs(path, _images(), batch_size=4, device="cpu", threads=1)
    assert set(out) == {"prob"}
    prob = out["prob"]
    assert prob.dtype == np.float16 and prob.shape == (10, H, W)
    assert np.isfinite(prob).all() and prob.min() >= 0 and prob.max() <= 1
    # same as the model in eval mode, and independent of batch size
    again = predict_probs(path, _images(), batch_size=3, device="cpu")["prob"]
    np.testing.assert_array_equal(prob, again)
    model, meta = load_model(path, "cpu")
    assert not model.training and meta["input_size"] == [H, W] and "state_dict" not in meta
    with torch.no_grad():
        x = (torch.from_numpy(_images()).float() - 60.0) / 30.0
        ref = torch.sigmoid(model(x[:, None]))[:, 0].numpy().astype(np.float16)
    np.testing.assert_allclose(prob.astype(np.float32), ref.astype(np.float32), atol=1e-3)


def test_two_head_presence_and_gating(tmp_path):
    # presence logit = +-1 via the bias: first a model that says "present", then "absent"
    path_yes = _save_model(tmp_path / "yes.pt", "unet2head", **{"presence.bias": torch.tensor([1.0])})
    path_no = _save_model(tmp_path / "no.pt", "unet2head", **{"presence.bias": torch.tensor([-1.0])})
    yes = predict_probs(path_yes, _images(), device="cpu")
    no = predict_probs(path_no, _images(), device="cpu")
    assert yes["presence"].dtype == np.float32 and yes["presence"].shape == (10,)
    np.testing.assert_allclose(yes["presence"], 1 / (1 + np.exp(-1)), rtol=1e-5)
    assert yes["prob"].max() > 0
    assert not no["prob"].any(), "presence < gate must zero the probability map"
    ungated = predict_probs(path_no, _images(), device="cpu", presence_gate=None)
    assert ungated["prob"].max() > 0
    np.testing.assert_array_equal(ungated["prob"], yes["prob"])  # seg heads are identical


def test_mixed_gating_per_image(tmp_path):
    # randomly initialised presence head: presence varies from image to image
    path = _save_model(tmp_path / "m.pt", "unet2head", zero_presence=False)
    imgs = _images(8)
    imgs[::2] //= 4  # darker images
    out_ungated = predict_probs(path, imgs, device="cpu", presence_gate=None)
    assert np.unique(out_ungated["presence"]).size > 1
    gate = float(np.median(out_ungated["presence"]))
    out = predict_probs(path, imgs, device="cpu", presence_gate=gate)
    below = out["presence"] < gate
    assert below.any() and (~below).any()
    assert not out["prob"][below].any()
    np.testing.assert_array_equal(out["prob"][~below], out_ungated["prob"][~below])


def test_noise_is_deterministic_and_independent_of_batch_size(tmp_path):
    path = _save_model(tmp_path / "m.pt", "unet")
    imgs = _images(9)
    ids = [f"1_{i}" for i in range(9)]
    noise = {"sigma": 25.0, "seed": 4, "image_ids": ids}
    a = predict_probs(path, imgs, batch_size=2, device="cpu", noise=noise)["prob"]
    b = predict_probs(path, imgs, batch_size=9, device="cpu", noise=noise)["prob"]
    np.testing.assert_array_equal(a, b)
    # a subset in another order gets the same noise per image
    sub = [7, 2]
    c = predict_probs(path, imgs[sub], device="cpu", noise={**noise, "image_ids": [ids[i] for i in sub]})["prob"]
    np.testing.assert_array_equal(c, a[sub])
    clean = predict_probs(path, imgs, device="cpu")["prob"]
    assert not np.array_equal(clean, a)
    assert np.array_equal(noisy_images(imgs, {**noise, "sigma": 0.0}), imgs)


def test_errors(tmp_path):
    path = _save_model(tmp_path / "m.pt", "unet")
    with pytest.raises(ValueError, match="expects 32x48"):
        predict_probs(path, np.zeros((2, 64, 80), np.uint8), device="cpu")
    with pytest.raises(ValueError, match="uint8"):
        predict_probs(path, np.zeros((2, H, W), np.float32), device="cpu")
    with pytest.raises(ValueError, match="image_ids"):
        predict_probs(path, _images(3), device="cpu", noise={"sigma": 1.0, "seed": 0, "image_ids": ["a"]})


def test_pick_device():
    from plexus.device import pick_device

    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            pick_device("cuda")
    with pytest.raises(ValueError):
        pick_device("tpu")


@pytest.mark.parametrize("arch", ["unet", "unet2head"])
@pytest.mark.parametrize("flips", [("hflip",), ("hflip", "vflip")])
def test_flip_tta_is_the_mean_of_the_flipped_back_predictions_of_flipped_images(tmp_path, arch, flips):
    """Reference: predict the flipped images as ordinary inputs and flip the maps back by hand."""
    path = _save_model(tmp_path / "m.pt", arch, zero_presence=False)
    images = _images(6)
    out = predict_probs(path, images, batch_size=4, device="cpu", presence_gate=None, flips=flips)
    plain = predict_probs(path, images, batch_size=4, device="cpu", presence_gate=None)
    np.testing.assert_array_equal(out["prob"], plain["prob"])  # the plain arrays are unchanged
    axes = {"hflip": 2, "vflip": 1}
    views = [plain]
    for flip in flips:
        flipped = predict_probs(path, np.flip(images, axis=axes[flip]).copy(), batch_size=4, device="cpu",
                                presence_gate=None)
        views.append({**flipped, "prob": np.flip(flipped["prob"], axis=axes[flip])})
    expected = np.mean([v["prob"].astype(np.float32) for v in views], axis=0)
    assert out["prob_tta"].dtype == np.float16
    np.testing.assert_allclose(out["prob_tta"].astype(np.float32), expected, atol=2e-3)
    assert np.abs(out["prob_tta"].astype(np.float32) - plain["prob"].astype(np.float32)).max() > 1e-3
    if arch == "unet2head":
        np.testing.assert_allclose(out["presence_tta"], np.mean([v["presence"] for v in views], axis=0), atol=1e-6)
    else:
        assert "presence_tta" not in out


def test_unknown_flip_is_rejected(tmp_path):
    path = _save_model(tmp_path / "m.pt", "unet")
    with pytest.raises(ValueError, match="unknown test-time flips"):
        predict_probs(path, _images(2), flips=("rot90",))


def test_average_folds_streams_the_fold_files_and_equals_their_mean(tmp_path):
    from plexus.io import atomic
    from plexus.io.contracts import read_npz
    from plexus.stages.predict import average_stage

    rng = np.random.default_rng(0)
    ids = np.array(["1", "2", "3", "4"])
    runs = []
    for k in range(3):
        run = {"image_id": ids, "prob": rng.random((4, 8, 10)).astype(np.float16),
               "prob_tta": rng.random((4, 8, 10)).astype(np.float16), "presence": rng.random(4).astype(np.float32)}
        atomic.write_npz(tmp_path / f"fold{k}.npz", **run)
        runs.append(run)
    paths = [tmp_path / f"fold{k}.npz" for k in range(3)]
    average_stage(paths, tmp_path / "mean.npz")
    mean = read_npz(tmp_path / "mean.npz")
    assert set(mean) == {"image_id", "prob", "prob_tta", "presence"} and mean["prob"].dtype == np.float16
    for key in ("prob", "prob_tta", "presence"):
        expected = np.mean([r[key].astype(np.float64) for r in runs], axis=0)
        np.testing.assert_allclose(mean[key].astype(np.float64), expected, atol=1e-3 if key != "presence" else 1e-6)
    atomic.write_npz(tmp_path / "other.npz", **{**runs[0], "image_id": ids[::-1]})
    with pytest.raises(ValueError, match="image ids do not match"):
        average_stage([paths[0], tmp_path / "other.npz"], tmp_path / "bad.npz")
    atomic.write_npz(tmp_path / "plain.npz", image_id=ids, prob=runs[0]["prob"], presence=runs[0]["presence"])
    with pytest.raises(ValueError, match="prob_tta"):
        average_stage([paths[0], tmp_path / "plain.npz"], tmp_path / "bad.npz")


def _fold_setup(tmp_path, n_folds=3, n=12):
    """Train arrays, a folds table (fold k = rows k, k + n_folds, ...) and one model per fold."""
    import pandas as pd

    from plexus.io import atomic

    ids = np.array([f"{i // 4 + 1}_{i % 4 + 1}" for i in range(n)])
    images = _images(n, seed=3)
    atomic.write_npz(tmp_path / "train.npz", image_id=ids, images=images, masks=np.zeros((n, H, W), np.uint8))
    atomic.write_npz(tmp_path / "test.npz", image_id=np.array(["1", "2", "3"]), images=_images(3, seed=4))
    fold = np.arange(n) % n_folds
    pd.DataFrame({"image_id": ids, "subject": [i.split("_")[0] for i in ids], "fold": fold}).to_csv(
        tmp_path / "folds.csv", index=False)
    models = []
    for k in range(n_folds):
        path = _save_model(tmp_path / f"m{k}.pt", "unet2head", zero_presence=False)
        sd = torch.load(path, weights_only=False)
        sd["state_dict"] = {name: v + 0.05 * k if v.is_floating_point() else v for name, v in sd["state_dict"].items()}
        torch.save(sd, path)  # a different network per fold
        models.append(path)
    return ids, images, fold, models


def test_one_job_predicts_every_folds_held_out_and_test_images_with_that_folds_model(tmp_path):
    from plexus.io.contracts import read_npz
    from plexus.stages.predict import predict_folds_stage

    ids, images, fold, models = _fold_setup(tmp_path)
    oof = [tmp_path / f"oof{k}.npz" for k in range(3)]
    test = [tmp_path / f"test{k}.npz" for k in range(3)]
    predict_folds_stage(models, [0, 1, 2], tmp_path / "train.npz", tmp_path / "folds.csv", oof,
                        test_npz=tmp_path / "test.npz", test_npzs=test, batch_size=2, threads=1, flips=["hflip"])
    test_images = read_npz(tmp_path / "test.npz")["images"]
    for k in range(3):
        held_out = np.flatnonzero(fold == k)
        got = read_npz(oof[k])
        np.testing.assert_array_equal(got["image_id"], ids[held_out])
        expected = predict_probs(models[k], images[held_out], device="cpu", presence_gate=None, flips=("hflip",))
        assert set(got) == {"image_id", *expected}  # prob, presence and their flip averages
        for key, value in expected.items():
            np.testing.assert_array_equal(got[key], value, err_msg=f"fold {k} {key}")
        got_test = read_npz(test[k])
        np.testing.assert_array_equal(got_test["image_id"], ["1", "2", "3"])
        expected = predict_probs(models[k], test_images, device="cpu", presence_gate=None, flips=("hflip",))
        np.testing.assert_array_equal(got_test["prob"], expected["prob"])
    # the folds' networks differ, so a mix-up of models and folds would show
    assert not np.array_equal(read_npz(test[0])["prob"], read_npz(test[1])["prob"])


def test_predicting_folds_needs_one_model_and_output_per_fold(tmp_path):
    from plexus.stages.predict import predict_folds_stage

    _, _, _, models = _fold_setup(tmp_path)
    with pytest.raises(ValueError, match="one of each per fold"):
        predict_folds_stage(models[:2], [0, 1, 2], tmp_path / "train.npz", tmp_path / "folds.csv",
                            [tmp_path / f"o{k}.npz" for k in range(3)])
    with pytest.raises(ValueError, match="test predictions need"):
        predict_folds_stage(models, [0, 1, 2], tmp_path / "train.npz", tmp_path / "folds.csv",
                            [tmp_path / f"o{k}.npz" for k in range(3)], test_npz=tmp_path / "test.npz")
    assert not list(tmp_path.glob("o*.npz"))  # refused before predicting anything


def test_noise_job_predicts_each_condition_on_the_same_noisy_images(tmp_path):
    from plexus.io.contracts import read_npz
    from plexus.stages.predict import noise_predict_stage

    ids, images, fold, models = _fold_setup(tmp_path)
    reversed_models = models[::-1]
    out = {"clean": tmp_path / "clean.npz", "noisy": tmp_path / "noisy.npz"}
    noise_predict_stage({"clean": models, "noisy": reversed_models}, tmp_path / "train.npz", tmp_path / "folds.csv",
                        20.0, 3, out, batch_size=4, threads=1)
    for condition, fold_models in (("clean", models), ("noisy", reversed_models)):
        got = read_npz(out[condition])
        order = np.concatenate([np.flatnonzero(fold == k) for k in range(3)])
        np.testing.assert_array_equal(got["image_id"], ids[order])
        np.testing.assert_array_equal(got["fold"], fold[order])
        for k in range(3):
            rows = got["fold"] == k
            held_out = np.flatnonzero(fold == k)
            noise = {"sigma": 20.0, "seed": 3, "image_ids": ids[held_out].tolist()}
            expected = predict_probs(fold_models[k], images[held_out], device="cpu", noise=noise, presence_gate=None)
            np.testing.assert_array_equal(got["prob"][rows], expected["prob"])
            np.testing.assert_array_equal(got["presence"][rows], expected["presence"])
    with pytest.raises(ValueError, match="conditions"):
        noise_predict_stage({"clean": models}, tmp_path / "train.npz", tmp_path / "folds.csv", 20.0, 3,
                            {"noisy": tmp_path / "x.npz"})
