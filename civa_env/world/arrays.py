"""Small array helpers for the hot paths of a day."""

from __future__ import annotations

from typing import Any

import numpy as np


def filled(shape: int | tuple[int, ...], value: Any, dtype: Any = np.float64) -> np.ndarray:
    """``np.full(shape, value, dtype)``, about 3x cheaper for the small arrays of a day
    (``np.full`` goes through ``copyto`` with casting checks; ``fill`` does not)."""
    out = np.empty(shape, dtype)
    out.fill(value)
    return out
