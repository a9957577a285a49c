"""The one way satseg reads JSON it did not write: size- and depth-limited, never recursive.

``json.loads`` recurses once per nesting level (``[`` * 100000 raises ``RecursionError``,
which is not a ``ValueError`` and crashed every ingest pass) and builds the whole document
(a 10 MB upload cost the api-server 254 MiB). Here:

* :func:`check_json` validates JSON syntax with a token scanner and an explicit stack: it
  builds no Python objects, so its memory is the file's bytes plus one entry per open
  bracket; it also enforces the size and depth limits. The upload API uses it alone.
* :func:`load_json` runs :func:`check_json`, then ``json.loads`` (which can no longer recurse
  past the depth limit). The annotation parsers use it.

Errors are :class:`JsonError` with a ``check``: ``json_size``, ``json_depth``, ``json_parse``.
"""

from __future__ import annotations

import codecs
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["JsonError", "JsonLimits", "check_json", "load_json"]

_WS = rb"[ \t\n\r]*+"
_STRING = rb'"(?:[^"\\\x00-\x1f]++|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*+"'
_SCALAR = (
    rb"-?(?:0|[1-9][0-9]*+)(?:\.[0-9]++)?+(?:[eE][-+]?[0-9]++)?+(?![0-9])"
    rb"|true|false|null|NaN|-?Infinity"
)
_ITEM = rb"(?:" + _STRING + rb"|" + _SCALAR + rb")"
# One token after optional whitespace: 1 a string, 2 a number or literal, 3 a whole array of
# scalars (``[x, y]`` points: most of an annotation, in one step), 4 a structural character.
_TOKEN = re.compile(
    _WS + rb"(?:(" + _STRING + rb")|(" + _SCALAR + rb")"
    rb"|(\[" + _WS + _ITEM + rb"(?:" + _WS + rb"," + _WS + _ITEM + rb")*+" + _WS + rb"\])"
    rb"|([\[\]{}:,]))"
)
_TRAILING_WS = re.compile(_WS + rb"\Z")
_BLANK = re.compile(_WS)
# What may come next: a value, an object key, ':' or ',' / the closing bracket.
_VALUE, _KEY, _COLON, _NEXT, _END = range(5)


class JsonError(ValueError):
    """JSON refused before (or while) parsing: ``check`` names the rule."""

    def __init__(self, message: str, check: str) -> None:
        super().__init__(message)
        self.check = check


@dataclass(frozen=True)
class JsonLimits:
    """Largest file (bytes) and deepest nesting (brackets) accepted."""

    max_bytes: int = 64 * 1024 * 1024
    max_depth: int = 64

    @classmethod
    def from_params(cls, ingest: Any) -> JsonLimits:
        """From ``ingest:`` (:class:`satseg.params.IngestParams`)."""
        return cls(int(ingest.max_annotation_mb * 1024 * 1024), int(ingest.max_json_depth))


def read_limited(path: Path, limits: JsonLimits, name: str) -> bytes:
    """The file's bytes, refusing (without reading them) a file over ``max_bytes``."""
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size  # read(n) allocates n bytes up front
        raw = fh.read(min(size, limits.max_bytes) + 1)
    if len(raw) > limits.max_bytes:
        raise JsonError(
            f"{name} is larger than the JSON limit of {_mb(limits.max_bytes)} "
            "(ingest.max_annotation_mb)",
            "json_size",
        )
    return raw


def check_json(raw: bytes, limits: JsonLimits, name: str = "JSON") -> None:
    """Raise :class:`JsonError` unless ``raw`` is one UTF-8 JSON value within ``limits``."""
    if len(raw) > limits.max_bytes:
        raise JsonError(
            f"{name} is larger than the JSON limit of {_mb(limits.max_bytes)}", "json_size"
        )
    _check_utf8(raw, name)
    stack: list[bool] = []  # True: inside an object
    pos = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0  # json.loads skips it
    expect, end = _VALUE, len(raw)
    while True:
        m = _TOKEN.match(raw, pos)
        if m is None:
            if expect == _END and _TRAILING_WS.match(raw, pos):
                return
            raise _syntax(raw, pos, name)
        tok = m.group(4)
        if m.group(3) is not None and len(stack) >= limits.max_depth:
            raise _too_deep(limits, m.start(3), name)
        if tok is None:  # a string, a scalar or an array of scalars
            if expect == _KEY and m.group(1) is not None:
                expect = _COLON
            elif expect == _VALUE:
                expect = _NEXT if stack else _END
            else:
                raise _syntax(raw, m.start(m.lastindex or 0), name)
        elif tok in b"[{" and expect == _VALUE:
            if len(stack) >= limits.max_depth:
                raise _too_deep(limits, m.start(4), name)
            stack.append(tok == b"{")
            expect = _KEY if stack[-1] else _VALUE
            if _closes_at(raw, m.end(), b"}" if stack[-1] else b"]"):
                expect = _NEXT  # empty container: the closing bracket is next
        elif tok in b"]}" and expect == _NEXT and stack and stack[-1] == (tok == b"}"):
            stack.pop()
            expect = _NEXT if stack else _END
        elif tok == b":" and expect == _COLON:
            expect = _VALUE
        elif tok == b"," and expect == _NEXT and stack:
            expect = _KEY if stack[-1] else _VALUE
        else:
            raise _syntax(raw, m.start(4), name)
        pos = m.end()
        if pos >= end and expect != _END:
            raise _syntax(raw, pos, name)


def load_json(path: Path, limits: JsonLimits, name: str | None = None) -> Any:
    """The JSON document in ``path``, checked by :func:`check_json` before it is parsed."""
    label = name or path.name
    raw = read_limited(path, limits, label)
    check_json(raw, limits, label)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:  # what the scanner lets through: 5000-digit ints
        raise JsonError(f"{label} is not valid JSON: {str(e)[:200]}", "json_parse") from e


def _closes_at(raw: bytes, pos: int, bracket: bytes) -> bool:
    """Whether the next non-blank byte at ``pos`` is ``bracket`` (an empty ``[]``/``{}``)."""
    at = _BLANK.match(raw, pos).end()  # type: ignore[union-attr]  # matches the empty string
    return raw[at : at + 1] == bracket


def _check_utf8(raw: bytes, name: str) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")()
    step = 1 << 20
    try:
        for i in range(0, len(raw), step):  # in slices: no full-size str copy
            decoder.decode(raw[i : i + step], final=False)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as e:
        raise JsonError(
            f"{name} is not valid JSON: not UTF-8 text ({e.reason})", "json_parse"
        ) from e


def _too_deep(limits: JsonLimits, pos: int, name: str) -> JsonError:
    return JsonError(
        f"{name} nests deeper than {limits.max_depth} levels (offset {pos}; ingest.max_json_depth)",
        "json_depth",
    )


def _syntax(raw: bytes, pos: int, name: str) -> JsonError:
    line = raw.count(b"\n", 0, pos) + 1
    what = repr(raw[pos : pos + 12].decode("utf-8", "replace")) if pos < len(raw) else "the end"
    return JsonError(
        f"{name} is not valid JSON: unexpected {what} at line {line} (offset {pos})", "json_parse"
    )


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):g} MB"
