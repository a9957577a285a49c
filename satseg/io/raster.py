"""Reading imagery the same way everywhere: band choice, scaling to uint8, normalisation.

Ingest (training patches) and inference both go through ``BandScaler`` and
``to_model_input`` so that a model sees identical numbers in training and production.
Scaling statistics come from a decimated read (bounded memory whatever the scene size).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

T = TypeVar("T")
SUPPORTED_DTYPES = ("uint8", "uint16")
MAX_BANDS = 4


class RasterError(ValueError):
    """Imagery that cannot be used; ``check`` names the validation that failed."""

    def __init__(self, message: str, check: str) -> None:
        super().__init__(message)
        self.check = check

    def __reduce__(self) -> tuple[Any, ...]:
        # picklable with its check (a forked patch worker sends its error to the parent)
        return (type(self), (str(self), self.check), self.__dict__)


@dataclass
class BandScaler:
    """Turns 1-4 band uint8/uint16 windows into 3-channel uint8 RGB.

    ``bands`` are 1-based source bands (default: 1,2,3; a 1-band image is repeated as grey).
    uint16 is stretched per band between the ``lo``/``hi`` percentiles measured on the scene.
    """

    bands: list[int]
    dtype: str
    lo: list[float] = field(default_factory=list)
    hi: list[float] = field(default_factory=list)
    nodata: float | None = None

    def apply(self, data: np.ndarray) -> np.ndarray:
        """(bands, h, w) source array -> (h, w, 3) uint8."""
        sel = data[[b - 1 for b in self.bands]].astype(np.float32)
        if self.dtype != "uint8" and self.lo:
            lo = np.array(self.lo, np.float32)[:, None, None]
            hi = np.array(self.hi, np.float32)[:, None, None]
            sel = (sel - lo) / np.maximum(hi - lo, 1e-6) * 255.0
        out = np.clip(sel, 0, 255).astype(np.uint8)
        if out.shape[0] == 1:
            out = np.repeat(out, 3, axis=0)
        return np.ascontiguousarray(np.transpose(out, (1, 2, 0)))

    def nodata_mask(self, data: np.ndarray) -> np.ndarray:
        """(h, w) bool: True where every selected band equals nodata."""
        if self.nodata is None:
            return np.zeros(data.shape[1:], bool)
        return np.all(data[[b - 1 for b in self.bands]] == self.nodata, axis=0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "bands": self.bands,
            "dtype": self.dtype,
            "lo": self.lo,
            "hi": self.hi,
            "nodata": self.nodata,
        }


def check_raster(src: Any) -> None:
    """Raise RasterError for band counts or dtypes satseg does not accept."""
    if not 1 <= src.count <= MAX_BANDS:
        raise RasterError(f"{src.count} bands: satseg accepts 1 to {MAX_BANDS} bands", "band_count")
    if src.dtypes[0] not in SUPPORTED_DTYPES:
        raise RasterError(
            f"dtype {src.dtypes[0]}: satseg accepts {', '.join(SUPPORTED_DTYPES)}", "dtype"
        )
    if src.width < 1 or src.height < 1:
        raise RasterError("empty raster (0 pixels)", "empty")


def make_scaler(
    src: Any, bands: list[int] | None = None, scale: str = "percentile", sample_px: int = 1024
) -> BandScaler:
    """Choose bands and measure the stretch on a decimated read of at most sample_px²."""
    check_raster(src)
    if bands is None:
        bands = [1, 2, 3] if src.count >= 3 else [1]
    if any(b < 1 or b > src.count for b in bands):
        raise RasterError(f"bands {bands} not in 1..{src.count}", "band_selection")
    dtype = src.dtypes[0]
    nodata = src.nodata
    scaler = BandScaler(bands=list(bands), dtype=dtype, nodata=nodata)
    if dtype == "uint8" or scale == "none":
        return scaler
    f = max(1, int(np.ceil(max(src.width, src.height) / sample_px)))
    shape = (len(bands), max(1, src.height // f), max(1, src.width // f))
    sample = src.read(bands, out_shape=shape).astype(np.float32)
    valid = np.ones(shape[1:], bool) if nodata is None else np.all(sample != nodata, axis=0)
    for b in range(len(bands)):
        v = sample[b][valid]
        if v.size == 0:
            v = np.array([0.0, 1.0], np.float32)
        if scale == "max":
            lo_, hi_ = 0.0, float(v.max())
        else:
            lo_, hi_ = (float(x) for x in np.percentile(v, [2, 98]))
        scaler.lo.append(lo_)
        scaler.hi.append(hi_ if hi_ > lo_ else lo_ + 1.0)
    return scaler


def to_model_input(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB (…, h, w, 3) -> float32 in [0, 1]: the one normalisation of satseg."""
    x = rgb.astype(np.float32)
    x *= np.float32(1.0 / 255.0)  # in place: no second float copy of the batch
    return x


def read_plain_image(path: Path | str) -> np.ndarray:
    """PNG/JPEG -> (h, w, 3) uint8 RGB; raises RasterError on a corrupt file."""
    p = Path(path)
    if p.stat().st_size == 0:
        raise RasterError(f"{p.name} is empty (0 bytes)", "empty_file")
    data = p.read_bytes()
    return decode_plain(data, "JPEG" if data.startswith(b"\xff\xd8") else "PNG", p.name)


def decode_plain(data: bytes, fmt: str, name: str) -> np.ndarray:
    """PNG/JPEG bytes -> (h, w, 3) uint8 RGB as stored; RasterError when they do not decode.

    libjpeg reports corrupt entropy-coded data (overwritten bytes) only as a warning on
    stderr and decodes grey or garbled blocks; OpenCV passes no warning on. So a JPEG is
    decoded with stderr captured, and any libjpeg warning refuses it.
    """
    import cv2

    buf = np.frombuffer(data, np.uint8)
    if fmt == "JPEG":
        img, messages = _with_stderr(lambda: cv2.imdecode(buf, cv2.IMREAD_UNCHANGED))
        warning = next((m for m in messages if _is_libjpeg_warning(m)), None)
        if img is not None and warning:
            raise RasterError(f"{name}: JPEG data is corrupt ({warning})", "decode")
    else:
        img = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if img is None:
        raise RasterError(f"{name} is not a readable image (corrupt or truncated)", "decode")
    if img.dtype != np.uint8:
        raise RasterError(f"{name}: dtype {img.dtype}, expected 8-bit", "dtype")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    elif img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGB)
    elif img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    else:
        raise RasterError(f"{name}: {img.shape[2]} channels", "band_count")
    return np.ascontiguousarray(img)


_STDERR_LOCK = threading.Lock()
_LIBJPEG_WARNINGS = ("Corrupt JPEG data", "Premature end of JPEG", "Invalid JPEG", "Bogus")


def _is_libjpeg_warning(line: str) -> bool:
    return any(w in line for w in _LIBJPEG_WARNINGS)


def _with_stderr(call: Callable[[], T]) -> tuple[T, list[str]]:
    """``call()`` with file descriptor 2 captured: (its result, the lines written there).

    Whatever was captured is written back to the real stderr afterwards, so another
    thread's output during the call is delayed, never lost.
    """
    import sys
    import tempfile

    with _STDERR_LOCK, tempfile.TemporaryFile() as tmp:
        sys.stderr.flush()
        saved = os.dup(2)
        try:
            os.dup2(tmp.fileno(), 2)
            try:
                result = call()
            finally:
                os.dup2(saved, 2)
        finally:
            os.close(saved)
        tmp.seek(0)
        captured = tmp.read()
    if captured:
        os.write(2, captured)
    return result, captured.decode("utf-8", "replace").splitlines()
