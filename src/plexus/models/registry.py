"""Models by name, timm-style: ``@register_model("name")`` on a constructor, ``build_model(name, **kwargs)``."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

#: Registry of model constructors by architecture name.
MODELS: dict[str, Callable[..., nn.Module]] = {}


def register_model(name: str):
    """Class/function decorator adding a model constructor to :data:`MODELS`."""

    def decorator(fn):
        if name in MODELS:
            raise ValueError(f"model {name!r} is already registered")
        MODELS[name] = fn
        return fn

    return decorator


def build_model(arch: str, *, presence_head: bool = False, presence_dropout: float = 0.0, **kwargs) -> nn.Module:
    """Instantiate the registered architecture ``arch`` with ``kwargs``.

    ``presence_head=True`` wraps it with a presence classifier on its bottleneck
    (:class:`plexus.models.presence.WithPresenceHead`), the two-head variant of any arch.
    """
    try:
        ctor = MODELS[arch]
    except KeyError:
        raise ValueError(f"unknown model arch {arch!r}; known archs: {', '.join(sorted(MODELS))}") from None
    if not presence_head:
        return ctor(**kwargs) if arch != "unet2head" else ctor(presence_dropout=presence_dropout, **kwargs)
    from plexus.models.presence import with_presence_head

    return with_presence_head(ctor(**kwargs), presence_dropout=presence_dropout)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
