"""Balance enhancement: flipped/rotated copies of positive training patches.

Each copy uses one of the seven non-identity symmetries of the square, picked from a hash of
the patch id, so copies are deterministic (same dataset bytes on every rebuild, hence no new
DVC version) and differ between patches.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable

import numpy as np

Transform = Callable[[np.ndarray], np.ndarray]

TRANSFORMS: dict[str, Transform] = {
    "rot90": lambda a: np.rot90(a, 1),
    "rot180": lambda a: np.rot90(a, 2),
    "rot270": lambda a: np.rot90(a, 3),
    "fliplr": np.fliplr,
    "flipud": np.flipud,
    "transpose": lambda a: np.swapaxes(a, 0, 1),
    "antitranspose": lambda a: np.rot90(np.swapaxes(a, 0, 1), 2),
}
_NAMES = list(TRANSFORMS)


def transforms_for(patch_id: str, copies: int) -> list[str]:
    """Names of the ``copies`` distinct transforms used for ``patch_id``."""
    start = zlib.crc32(patch_id.encode())
    return [_NAMES[(start + k) % len(_NAMES)] for k in range(min(copies, len(_NAMES)))]


def apply(name: str, array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(TRANSFORMS[name](array))
