"""What a file is, decided by its bytes: GeoTIFF, PNG or JPEG, and nothing else.

GDAL opens ~200 formats whatever the file is called; a VRT (XML) saved as ``scene.tif`` reads
the bytes of any file it names, or fetches a URL through ``/vsicurl/``. So every reader first
sniffs the content here (``sniff``), checks that the name's suffix agrees (``check_name``), and
then opens the file with that one GDAL driver only. The declared size of PNG/JPEG is read from
their headers (IHDR, SOF) without decoding, with the JPEG's EXIF orientation (``plain_header``),
so that ``PixelLimits`` refuses a decompression bomb before any pixel is decoded.

The suffix comes from ``name`` when given: the inbox hands the reader ``/proc/self/fd/<n>`` of
a file it opened once (no link followed) and the display name separately.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from satseg.io.raster import RasterError
from satseg.params import IngestParams, default_of
from satseg.vocab import IMAGE_SUFFIXES, TIFF_SUFFIXES

Format = Literal["GTiff", "PNG", "JPEG"]
SUFFIXES: dict[str, frozenset[str]] = {
    "GTiff": TIFF_SUFFIXES,
    "PNG": frozenset({".png"}),
    "JPEG": frozenset({".jpg", ".jpeg"}),
}
_SIGNATURES: tuple[tuple[bytes, Format], ...] = (
    (b"II*\x00", "GTiff"),
    (b"MM\x00*", "GTiff"),
    (b"II+\x00", "GTiff"),  # BigTIFF
    (b"MM\x00+", "GTiff"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
)
_OTHERS: tuple[tuple[bytes, str], ...] = (  # named in the refusal, never opened
    (b"<VRTDataset", "a GDAL VRT (XML that makes GDAL read other files or URLs)"),
    (b"\x89HDF", "HDF5"),
    (b"\x0e\x03\x13\x01", "HDF4"),
    (b"CDF\x01", "NetCDF"),
    (b"CDF\x02", "NetCDF"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"RIFF", "a RIFF (WebP?) file"),
    (b"%PDF", "PDF"),
)
HEAD_BYTES = 512
_UNIDENTIFIED = ("plain text", "an unknown binary format")
VSI_PREFIX = "/vsi"


def sniff_bytes(head: bytes) -> Format | None:
    """The format of a file starting with ``head``, or None when it is none of the three."""
    for sig, fmt in _SIGNATURES:
        if head.startswith(sig):
            return fmt
    return None


def describe_content(head: bytes) -> str:
    """A short human name of what ``head`` starts, for refusals."""
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    for sig, what in _OTHERS:
        if stripped.startswith(sig) or (sig == b"<VRTDataset" and sig in head):
            return what
    if stripped.startswith(b"<"):
        return "XML/HTML text"
    if stripped.startswith((b"{", b"[")):
        return "JSON text"
    if head and all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        return "plain text"
    return "an unknown binary format"


def check_path(path: Path | str, name: str | None = None) -> None:
    """Refuse GDAL virtual file system paths (``/vsicurl/``, ``/vsizip/``...) from users."""
    if str(path).startswith(VSI_PREFIX):
        raise RasterError(
            f"{name or path}: GDAL virtual paths (/vsi...) are not accepted", "format"
        )


def sniff(path: Path | str, name: str | None = None) -> Format:
    """GeoTIFF, PNG or JPEG by content, agreeing with the name's suffix; else RasterError."""
    p = Path(path)
    shown = name or p.name
    check_path(p, shown)
    suffix = _suffix(shown)
    if suffix and suffix not in IMAGE_SUFFIXES:
        raise RasterError(f"{shown}: unsupported file type {suffix}", "format")
    with open(p, "rb") as fh:
        head = fh.read(HEAD_BYTES)
    fmt = sniff_bytes(head)
    if fmt is None:
        what = describe_content(head)
        # another format is "format"; bytes of no format at all are a corrupt image, "decode"
        check = "decode" if what in _UNIDENTIFIED else "format"
        raise RasterError(f"{shown}: content is {what}, not GeoTIFF, PNG or JPEG", check)
    check_name(fmt, shown)
    return fmt


def check_name(fmt: Format, name: str) -> None:
    """The suffix of ``name`` must be one of ``fmt``'s (a name without a suffix passes)."""
    suffix = _suffix(name)
    if not suffix:
        return
    if suffix not in IMAGE_SUFFIXES:
        raise RasterError(f"{name}: unsupported file type {suffix}", "format")
    if suffix not in SUFFIXES[fmt]:
        raise RasterError(
            f"{name}: content is {_NAMES[fmt]}, not a {suffix[1:].upper()} file as the name "
            f"says: rename it to {'/'.join(sorted(SUFFIXES[fmt]))}",
            "format",
        )


def _suffix(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


_NAMES = {"GTiff": "a TIFF", "PNG": "a PNG", "JPEG": "a JPEG"}


@dataclass(frozen=True)
class PlainHeader:
    """What a PNG/JPEG header declares: the stored size and the EXIF orientation (1-8)."""

    width: int
    height: int
    orientation: int = 1

    @property
    def oriented_size(self) -> tuple[int, int]:
        """(width, height) as displayed (orientations 5-8 swap the axes)."""
        if self.orientation >= 5:
            return self.height, self.width
        return self.width, self.height


def plain_header(data: bytes, fmt: Format, name: str) -> PlainHeader:
    """The declared size of a PNG (IHDR) or JPEG (SOF, EXIF orientation), nothing decoded."""
    if fmt == "PNG":
        if data[12:16] != b"IHDR" or len(data) < 24:
            raise RasterError(f"{name}: PNG header is corrupt (no IHDR chunk)", "decode")
        w, h = struct.unpack(">II", data[16:24])
        return PlainHeader(w, h)
    return _jpeg_header(data, name)


_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # frame headers (not DHT/JPG/DAC)


def _jpeg_header(data: bytes, name: str) -> PlainHeader:
    """Walk the JPEG markers up to the frame header (SOFn), noting the EXIF orientation."""
    pos, orientation = 2, 1
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            break
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        seg = data[pos + 4 : pos + 2 + length]
        if marker == 0xE1 and seg.startswith(b"Exif\x00\x00"):
            orientation = _exif_orientation(seg[6:])
        if marker in _SOF:
            if len(seg) < 5:
                break
            h, w = struct.unpack(">HH", seg[1:5])
            if w == 0 or h == 0:
                raise RasterError(f"{name}: JPEG declares {w}x{h} pixels", "decode")
            return PlainHeader(w, h, orientation)
        if marker == 0xDA:  # start of scan before any frame header
            break
        pos += 2 + length
    raise RasterError(f"{name}: JPEG header is corrupt (no frame header)", "decode")


def _exif_orientation(tiff: bytes) -> int:
    """Tag 0x0112 of IFD0 of an EXIF TIFF block (1 when absent or unreadable)."""
    try:
        end = "<" if tiff[:2] == b"II" else ">"
        (ifd,) = struct.unpack(end + "I", tiff[4:8])
        (count,) = struct.unpack(end + "H", tiff[ifd : ifd + 2])
        for i in range(min(count, 512)):
            entry = tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
            tag, _typ, _n = struct.unpack(end + "HHI", entry[:8])
            if tag == 0x0112:
                (value,) = struct.unpack(end + "H", entry[8:10])
                return value if 1 <= value <= 8 else 1
    except struct.error:
        pass
    return 1


@dataclass(frozen=True)
class PixelLimits:
    """The largest declared sizes the readers open (megapixels), checked before decoding.

    GeoTIFFs are read in windows, so their limit only bounds the work; PNG/JPEG are decoded
    whole into memory, so theirs is lower.
    """

    max_megapixels: float = default_of(IngestParams, "max_megapixels")
    max_plain_megapixels: float = default_of(IngestParams, "max_plain_megapixels")

    @classmethod
    def from_params(cls, ingest: Any) -> PixelLimits:
        """From the ``ingest:`` section (``IngestParams``)."""
        return cls(ingest.max_megapixels, ingest.max_plain_megapixels)

    def check(self, width: int, height: int, fmt: Format, name: str) -> None:
        """RasterError ``too_large`` when ``width`` x ``height`` is over the format's limit."""
        mpx = width * height / 1e6
        if fmt == "GTiff":
            limit, key, hint = self.max_megapixels, "ingest.max_megapixels", ""
        else:
            limit, key = self.max_plain_megapixels, "ingest.max_plain_megapixels"
            hint = " (PNG/JPEG are decoded whole: deliver large scenes as tiled GeoTIFF)"
        if mpx > limit:
            raise RasterError(
                f"{name} declares {width}x{height} pixels ({mpx:,.0f} Mpx), over the limit of "
                f"{limit:,.0f} Mpx ({key}){hint}",
                "too_large",
            )

    def check_file_size(self, size: int, name: str) -> None:
        """RasterError ``too_large`` for a PNG/JPEG file bigger than its pixels could be.

        A plain image is read into memory whole; even uncompressed RGBA of the largest
        allowed size (plus 16 MiB of other chunks) is smaller than this.
        """
        most = int(self.max_plain_megapixels * 1e6 * 4) + (16 << 20)
        if size > most:
            raise RasterError(
                f"{name} is {size / 2**20:,.0f} MiB: larger than any PNG/JPEG within "
                f"{self.max_plain_megapixels:,.0f} Mpx (ingest.max_plain_megapixels)",
                "too_large",
            )
