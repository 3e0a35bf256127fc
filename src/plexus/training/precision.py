"""Mixed precision: which autocast dtype (if any) a run uses on a device.

``amp: true`` autocasts on CUDA in ``amp_dtype`` (float16, trained with a
GradScaler, or bfloat16). On the CPU only bfloat16 is used (``torch.autocast("cpu",
dtype=torch.bfloat16)``, oneDNN's mixed-precision path); with ``amp_dtype:
float16`` the CPU runs in float32, as it always did. Weights stay float32.
"""

from __future__ import annotations

import torch

AMP_DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16}


def autocast_dtype(device: torch.device, amp: bool, amp_dtype: str) -> torch.dtype | None:
    """The autocast dtype on ``device``, or ``None`` for float32."""
    if amp_dtype not in AMP_DTYPES:
        raise ValueError(f"amp_dtype must be one of {', '.join(AMP_DTYPES)}, got {amp_dtype!r}")
    if not amp:
        return None
    if device.type == "cuda" or (device.type == "cpu" and amp_dtype == "bfloat16"):
        return AMP_DTYPES[amp_dtype]
    return None


def dtype_name(dtype: torch.dtype | None) -> str | None:
    """``"bfloat16"`` for ``torch.bfloat16``; ``None`` for ``None``."""
    return None if dtype is None else str(dtype).removeprefix("torch.")
