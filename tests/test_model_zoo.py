"""The same checks for every registered architecture, and for each one wrapped with the presence head."""

import pytest
import torch
import torch.nn.functional as F

import plexus.models  # noqa: F401  (registers "unet" and "unet2head")
import plexus.models.attention  # noqa: F401
import plexus.models.r2unet  # noqa: F401
import plexus.models.unetpp  # noqa: F401
from plexus.models.presence import WithPresenceHead, with_presence_head
from plexus.models.registry import MODELS, build_model, count_parameters
from plexus.models.unet import TwoHeadUNet

SMALL = {"base_channels": 4, "depth": 3, "dropout": 0.2}
SIZES = [(32, 48), (64, 80)]
ZOO = ("unetpp", "attention_unet", "attention_resunet", "r2unet")


def _two_head(model) -> bool:
    return isinstance(model, TwoHeadUNet) or getattr(model, "two_head", False)


def _plain_archs() -> list[str]:
    return sorted(a for a in MODELS if not _two_head(build_model(a, base_channels=2, depth=1)))


VARIANTS = [(a, False) for a in sorted(MODELS)] + [(a, True) for a in _plain_archs()]
IDS = [f"{a}+presence" if p else a for a, p in VARIANTS]


def _build(arch, presence, **kwargs):
    model = build_model(arch, **{**SMALL, **kwargs})
    return with_presence_head(model, presence_dropout=0.1) if presence else model


def _outputs(model, x):
    out = model(x)
    return out if isinstance(out, tuple) else (out,)


def _loss(outs, target_seed=1):
    g = torch.Generator().manual_seed(target_seed)
    seg = outs[0]
    loss = F.binary_cross_entropy_with_logits(seg, torch.randint(0, 2, seg.shape, generator=g).float())
    if len(outs) == 2:
        pres = outs[1]
        loss = loss + F.binary_cross_entropy_with_logits(pres, torch.randint(0, 2, pres.shape, generator=g).float())
    return loss


def test_zoo_is_registered():
    assert set(ZOO) | {"unet", "unet2head"} <= set(MODELS)


@pytest.mark.parametrize(("arch", "presence"), VARIANTS, ids=IDS)
def test_shapes_finite_modes(arch, presence):
    torch.manual_seed(0)
    model = _build(arch, presence)
    assert _two_head(model) == (presence or arch == "unet2head")
    for mode in ("train", "eval"):
        getattr(model, mode)()
        for h, w in SIZES:
            with torch.no_grad():
                outs = _outputs(model, torch.randn(2, 1, h, w))
            assert outs[0].shape == (2, 1, h, w), (mode, h, w)
            if _two_head(model):
                assert len(outs) == 2 and outs[1].shape == (2,)
            for o in outs:
                assert torch.isfinite(o).all(), (mode, h, w)


@pytest.mark.parametrize(("arch", "presence"), VARIANTS, ids=IDS)
def test_every_parameter_gets_a_gradient_deterministically(arch, presence):
    torch.manual_seed(0)
    model = _build(arch, presence).train()
    x = torch.randn(2, 1, 32, 48)
    prev = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        _loss(_outputs(model, x)).backward()
    finally:
        torch.use_deterministic_algorithms(prev)
    for name, p in model.named_parameters():
        assert p.grad is not None, f"{arch}: {name} got no gradient"
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{arch}: {name} has an all-zero gradient"
    n = count_parameters(model)
    print(f"{arch}{'+presence' if presence else ''}: {n} parameters at {SMALL}")
    assert n > 0


@pytest.mark.parametrize(("arch", "presence"), VARIANTS, ids=IDS)
def test_clear_error_when_not_divisible(arch, presence):
    model = _build(arch, presence).eval()
    with pytest.raises(ValueError, match=r"not divisible by 2\*\*depth = 8"):
        model(torch.randn(1, 1, 36, 48))


@pytest.mark.parametrize("arch", ZOO)
@pytest.mark.parametrize("bilinear", [False, True])
def test_out_channels_and_bilinear(arch, bilinear):
    model = build_model(arch, **SMALL, out_channels=3, bilinear=bilinear).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 1, 32, 48)).shape == (1, 3, 32, 48)


def test_unetpp_deep_supervision():
    torch.manual_seed(0)
    model = build_model("unetpp", **SMALL, deep_supervision=True)
    assert len(model.heads) == SMALL["depth"]
    x = torch.randn(2, 1, 32, 48)
    model.train()
    torch.manual_seed(1)
    mean_out = model(x)
    model.deep_supervision = False  # same weights, last head only
    torch.manual_seed(1)
    last_out = model(x)
    assert mean_out.shape == last_out.shape == (2, 1, 32, 48)
    assert not torch.allclose(mean_out, last_out)
    _loss((mean_out,)).backward()  # every head is trained
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.heads.parameters())

    model.deep_supervision = True
    model.eval()
    with torch.no_grad():
        assert model(x).shape == (2, 1, 32, 48)
        model.ds_eval = "last"
        last = model(x)
        model.deep_supervision = False
        assert torch.equal(last, model(x))
    with pytest.raises(ValueError, match="ds_eval"):
        build_model("unetpp", ds_eval="first")


def test_r2unet_recurrence_and_attention_maps():
    assert count_parameters(build_model("r2unet", **SMALL, recurrence=3)) == count_parameters(
        build_model("r2unet", **SMALL)
    )  # weights are shared over time
    with pytest.raises(ValueError, match="recurrence"):
        build_model("r2unet", recurrence=0)
    model = build_model("attention_unet", **SMALL).eval()
    maps = model.attention_maps(torch.randn(1, 1, 32, 48))
    assert [m.shape[-2:] for m in maps] == [(8, 12), (16, 24), (32, 48)]
    assert all(((m > 0) & (m < 1)).all() for m in maps)


def test_presence_head_matches_two_head_unet():
    torch.manual_seed(0)
    ref = build_model("unet2head", **SMALL).eval()
    wrapped = with_presence_head(build_model("unet", **SMALL)).eval()
    state = {
        ("presence." + k[9:] if k.startswith("presence.") else "model." + k): v for k, v in ref.state_dict().items()
    }
    wrapped.load_state_dict(state)
    x = torch.randn(2, 1, 32, 48)
    with torch.no_grad():
        for a, b in zip(ref(x), wrapped(x)):
            assert torch.equal(a, b)
    assert isinstance(wrapped, WithPresenceHead) and wrapped.bottleneck_channels == ref.bottleneck_channels
    with pytest.raises(TypeError, match="encode"):
        with_presence_head(torch.nn.Conv2d(1, 1, 1))


def test_parameter_counts_at_default_width():
    rows = []
    for arch in sorted(MODELS):
        n = count_parameters(build_model(arch, in_channels=1, base_channels=32, depth=4))
        assert n > 0
        rows.append((arch, n))
    rows += [
        (f"{a} + presence head", count_parameters(with_presence_head(build_model(a))))
        for a in _plain_archs()
        if a != "unet"
    ]
    table = "| model | parameters (base_channels=32, depth=4) |\n|---|---:|\n"
    table += "\n".join(f"| `{a}` | {n:,} |" for a, n in rows)
    print("\n" + table)
