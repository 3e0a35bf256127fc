"""timm-style checks of every registered model."""

import subprocess
import sys

import pytest
import torch

from plexus.models import (
    MODELS,
    TwoHeadUNet,
    UNet,
    build_model,
    is_two_head,
    register_model,
)
from plexus.models.presence import with_presence_head

TINY = {"base_channels": 4, "depth": 2, "dropout": 0.2}


def _outputs(model, x):
    out = model(x)
    return out if isinstance(out, tuple) else (out,)


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_forward_shape_and_finite(arch):
    torch.manual_seed(0)
    model = build_model(arch, **TINY)
    x = torch.randn(2, 1, 32, 48)
    outs = _outputs(model, x)
    assert outs[0].shape == (2, 1, 32, 48)
    if is_two_head(model):
        assert len(outs) == 2 and outs[1].shape == (2,)
    for o in outs:
        assert torch.isfinite(o).all()


@pytest.mark.parametrize("arch", sorted(MODELS))
def test_every_parameter_gets_a_gradient(arch):
    torch.manual_seed(0)
    model = build_model(arch, **TINY)
    outs = _outputs(model, torch.randn(2, 1, 32, 48))
    sum(o.float().mean() for o in outs).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{arch}: {name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{arch}: {name} has an all-zero gradient"


@pytest.mark.parametrize("arch", sorted(MODELS))
@pytest.mark.parametrize("bilinear", [False, True])
def test_eval_mode_and_bilinear(arch, bilinear):
    model = build_model(arch, base_channels=4, depth=3, bilinear=bilinear).eval()
    with torch.no_grad():
        outs = _outputs(model, torch.randn(1, 1, 64, 80))
    assert outs[0].shape == (1, 1, 64, 80)


def test_default_sizes_of_the_write_up():
    model = UNet(base_channels=4, depth=4).eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 1, 64, 80)).shape == (1, 1, 64, 80)
        assert model(torch.zeros(1, 1, 128, 160)).shape == (1, 1, 128, 160)


def test_bad_input_size_raises_naming_size_and_depth():
    model = UNet(base_channels=4, depth=3)
    with pytest.raises(ValueError, match=r"30x48.*depth 3"):
        model(torch.zeros(1, 1, 30, 48))
    with pytest.raises(ValueError, match="depth"):
        TwoHeadUNet(base_channels=4, depth=2)(torch.zeros(1, 1, 32, 50))


def test_architecture_follows_the_write_up():
    model = UNet(base_channels=4, depth=2, dropout=0.3)
    down_bn = [m for m in model.downs.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    up_bn = [m for m in model.ups.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    drops = [m for m in model.ups.modules() if isinstance(m, torch.nn.Dropout2d)]
    assert down_bn and not up_bn
    assert len(drops) == 2 and all(d.p == 0.3 for d in drops)


def test_registry():
    assert {"unet", "unet2head"} <= set(MODELS)
    assert isinstance(build_model("unet2head", **TINY), TwoHeadUNet)
    with pytest.raises(ValueError, match="unet2head"):
        build_model("resnet9000")
    with pytest.raises(ValueError, match="already registered"):
        register_model("unet")(UNet)


def test_every_architecture_is_registered_on_import_and_two_heads_are_recognised():
    code = "import plexus.models as m; print(','.join(sorted(m.MODELS)))"
    names = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert names.split(",") == sorted(MODELS)  # nothing depends on which test module imported what first
    assert is_two_head(build_model("unet2head", **TINY)) and not is_two_head(build_model("unetpp", **TINY))
    assert is_two_head(with_presence_head(build_model("unetpp", **TINY)))
