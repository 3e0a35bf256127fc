"""Training settings: one frozen, typed object built once from a model entry of the config.

:meth:`TrainSettings.from_config` takes one entry of ``models:`` (validated or not),
fills every missing key from the ``default`` of ``definitions.model`` in
``config.schema.yaml`` (the one place defaults live; there are none here), refuses
unknown keys and validates the entry against that definition, each error naming its
key. :meth:`TrainSettings.to_dict` is the plain JSON-able form stored in ``model.pt``
and the checkpoint and hashed into the run identity.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, fields
from functools import lru_cache

import jsonschema

from plexus.schema import schema


@dataclass(frozen=True)
class AugmentSettings:
    """Joint image+mask augmentation (:mod:`plexus.training.augment`)."""

    hflip: float
    vflip: float
    shift: float
    rotate: float
    shear: float
    zoom: float

    def to_dict(self) -> dict:
        return asdict(self)

    def is_identity(self) -> bool:
        return all(v == 0 for v in asdict(self).values())


@dataclass(frozen=True)
class TrainSettings:
    """Every option training reads; see ``definitions.model`` of the schema for each."""

    arch: str
    input_size: tuple[int, int]
    epochs: int
    batch_size: int
    base_channels: int
    depth: int
    dropout: float
    bilinear: bool
    presence_head: bool
    presence_dropout: float
    loss: str
    dice_reduction: str
    region_training: str
    log_dice_floor: float
    presence_weight: float
    optimizer: str
    lr: float
    weight_decay: float
    momentum: float
    scheduler: str
    warmup_epochs: int
    plateau_patience: int
    plateau_factor: float
    grad_clip: float
    on_collapse: str
    collapse_share: float
    collapse_min_progress: float
    collapse_epochs: int
    collapse_lr_factor: float
    max_recoveries: int
    validation: str
    refit: bool
    inner_share: float
    patience: int
    patch_size: tuple[int, int] | None
    patches_per_image: int
    window_overlap: float
    foreground_fraction: float
    channel_dropout: float
    seed: int
    augment: AugmentSettings
    amp: bool
    amp_dtype: str
    channels_last: bool
    deterministic: bool

    @classmethod
    def from_config(cls, entry: dict) -> TrainSettings:
        """Settings of one model entry; missing keys take the schema's defaults.

        Raises ``ValueError`` naming the key for an unknown or missing required key
        and for any value the schema refuses (type, enum, bounds).
        """
        if not isinstance(entry, dict):
            raise ValueError(f"model settings must be a mapping, got {type(entry).__name__}")
        entry = copy.deepcopy(entry)
        if "collapse_factor" in entry:
            raise ValueError("model setting collapse_factor was replaced by collapse_share: an epoch counts towards a "
                             "collapse when its training loss has given back more than that share of the progress "
                             "since the first epoch (default 0.5); remove collapse_factor")
        definition = model_schema()
        _check_keys(entry, definition, "")
        _fill_defaults(entry, definition)
        errors = sorted(_validator().iter_errors(entry), key=lambda e: list(map(str, e.absolute_path)))
        if errors:
            lines = [f"model setting {'.'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
            raise ValueError("invalid model settings:\n  " + "\n  ".join(lines))
        if entry["presence_head"] and entry["arch"] == "unet2head":
            raise ValueError("model setting presence_head: unet2head has a presence head already; use arch unet")
        if entry["patch_size"] is not None:
            step = 2 ** entry["depth"]
            if any(p % step or p > s for p, s in zip(entry["patch_size"], entry["input_size"])):
                raise ValueError(f"model setting patch_size: {entry['patch_size']} must be divisible by 2**depth = "
                                 f"{step} and at most input_size {entry['input_size']}")
            if entry["presence_head"] or entry["arch"] == "unet2head":
                raise ValueError("model setting patch_size: a presence head sees whole images; "
                                 "patches need a one-head model")
        if entry["region_training"] == "regions" and (entry["presence_head"] or entry["arch"] == "unet2head"):
            raise ValueError("model setting region_training: regions trains one sigmoid per region; "
                             "a presence head (presence_head, unet2head) is not supported with it")
        if entry["foreground_fraction"] and entry["patch_size"] is None:
            raise ValueError("model setting foreground_fraction: centres patches on foreground; it needs a "
                             "patch_size (whole images are not cropped)")
        if entry["patience"] and entry["validation"] == "oof":
            raise ValueError("model setting patience: early stopping needs validation: auto or inner "
                             "(stopping on the out-of-fold images would make their predictions depend on their labels)")
        if entry["refit"] and not (_validation_readers(entry) and entry["validation"] != "oof"):
            raise ValueError("model setting refit: retrains on the whole training part for the epochs a decision "
                             "chose on the inner split; it needs such a decision (patience > 0 or scheduler: plateau) "
                             "and validation auto or inner")
        values = {f.name: _convert(f.type, entry[f.name]) for f in fields(cls) if f.name != "augment"}
        augment = AugmentSettings(**{f.name: float(entry["augment"][f.name]) for f in fields(AugmentSettings)})
        return cls(**values, augment=augment)

    @property
    def validation_readers(self) -> list[str]:
        """The decisions that read the per-epoch validation: ``early stopping``, ``plateau scheduler``."""
        return _validation_readers(self.__dict__)

    @property
    def validation_decides(self) -> bool:
        """Whether a decision reads the per-epoch validation: early stopping or the plateau scheduler."""
        return bool(self.validation_readers)

    @property
    def validation_images(self) -> str:
        """What ``validation`` resolves to: ``inner`` (hold out the inner split) or ``oof`` (monitor the OOF fold).

        ``auto`` holds out the inner split only when a decision reads the validation
        (:attr:`validation_decides`); otherwise the whole training part is trained on.
        """
        if self.validation == "auto":
            return "inner" if self.validation_decides else "oof"
        return self.validation

    def to_dict(self) -> dict:
        """Plain JSON-able dict (``input_size`` a list, ``augment`` a dict)."""
        out = asdict(self)
        out["input_size"] = list(self.input_size)
        out["patch_size"] = None if self.patch_size is None else list(self.patch_size)
        return out

    def model_kwargs(self, in_channels: int = 1, n_classes: int | None = None) -> dict:
        """Constructor keyword arguments of the network (``plexus.models.build_model``).

        ``in_channels`` are the data's channels; ``n_classes`` (None: a binary mask, one
        sigmoid logit) gives one softmax logit per class (with ``region_training: regions``
        the caller passes the number of regions: one sigmoid logit per region).
        """
        kwargs = {
            "in_channels": int(in_channels),
            "base_channels": self.base_channels,
            "depth": self.depth,
            "dropout": self.dropout,
            "bilinear": self.bilinear,
        }
        if n_classes is not None:
            kwargs["out_channels"] = int(n_classes)
        if self.arch == "unet2head" and self.presence_dropout:
            kwargs["presence_dropout"] = self.presence_dropout
        if self.presence_head:  # any other arch with the presence head (plexus.models.presence)
            kwargs["presence_head"] = True
            kwargs["presence_dropout"] = self.presence_dropout
        return kwargs


def _validation_readers(entry) -> list[str]:
    return [name for name, used in (("early stopping", bool(entry["patience"])),
                                    ("plateau scheduler", entry["scheduler"] == "plateau")) if used]


@lru_cache(maxsize=1)
def model_schema() -> dict:
    """``definitions.model`` of ``config.schema.yaml``."""
    return schema()["definitions"]["model"]


@lru_cache(maxsize=1)
def _validator() -> jsonschema.Validator:
    root = {"$ref": "#/definitions/model", "definitions": schema()["definitions"]}
    return jsonschema.Draft202012Validator(root)


def _check_keys(entry: dict, node: dict, prefix: str) -> None:
    known = node.get("properties", {})
    unknown = sorted(set(entry) - set(known))
    if unknown:
        names = ", ".join(prefix + k for k in unknown)
        raise ValueError(f"unknown model setting(s) {names}; known: {', '.join(prefix + k for k in known)}")
    missing = [prefix + k for k in node.get("required", []) if k not in entry]
    if missing:
        raise ValueError(f"model settings lack required key(s) {', '.join(missing)}")
    for key, sub in known.items():
        if isinstance(entry.get(key), dict) and "properties" in sub:
            _check_keys(entry[key], sub, f"{prefix}{key}.")


def _fill_defaults(entry: dict, node: dict) -> None:
    for key, sub in node.get("properties", {}).items():
        if key not in entry and "default" in sub:
            entry[key] = copy.deepcopy(sub["default"])
        if isinstance(entry.get(key), dict) and "properties" in sub:
            _fill_defaults(entry[key], sub)


def _convert(type_name: str, value):
    if type_name == "tuple[int, int]":
        return tuple(int(v) for v in value)
    if type_name == "tuple[int, int] | None":
        return None if value is None else tuple(int(v) for v in value)
    return {"int": int, "float": float, "bool": bool, "str": str}[type_name](value)
