"""JSON pointers (RFC 6901), the way every error of ours names the field it is about.

One place escapes a key into a pointer segment ('~' becomes '~0', '/' becomes '~1'), so a
key holding either never points somewhere else."""

from __future__ import annotations

from collections.abc import Iterable


def token(key: object) -> str:
    """`key` as one reference token of a pointer."""
    return str(key).replace("~", "~0").replace("/", "~1")


def pointer(path: Iterable[object]) -> str:
    """The pointer to the value at `path` (keys and list indexes, outermost first)."""
    return "".join("/" + token(part) for part in path)


def parts(at: str) -> list[str]:
    """The keys `pointer` made `at` from (list indexes come back as their digits)."""
    return [part.replace("~1", "/").replace("~0", "~") for part in at.split("/")[1:]] if at else []
