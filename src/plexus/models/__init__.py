"""Segmentation networks, built by registered name (see :mod:`plexus.models.registry`).

Importing this package registers every architecture it holds, so :data:`MODELS`
is complete (the schema's ``arch`` enum lists exactly its names):
``unet``, ``unet2head`` (:mod:`.unet`), ``unetpp`` (:mod:`.unetpp`),
``attention_unet``, ``attention_resunet`` (:mod:`.attention`), ``r2unet`` (:mod:`.r2unet`).
"""

from plexus.models import attention, r2unet, unet, unetpp  # noqa: F401  (register their architectures)
from plexus.models.registry import MODELS, build_model, count_parameters, register_model
from plexus.models.unet import TwoHeadUNet, UNet, is_two_head

__all__ = ["MODELS", "TwoHeadUNet", "UNet", "build_model", "count_parameters", "is_two_head", "register_model"]
