"""The majority vote that DICOM loading uses to drop stray files: keep the most common kind, name the rest.

A series folder often holds a few images that do not belong with the others (a localizer with
another orientation, a key image of another size). :func:`drop_minority` keeps the items that
share the most common key and words one warning about those it left out.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TypeVar

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)


def most_common(values: Sequence[K]) -> K:
    """The value that occurs most often in ``values`` (not empty); a tie goes to the first seen."""
    counts: dict = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return max(counts, key=counts.__getitem__)  # max keeps the first of equal counts


def drop_minority(
    items: Sequence[T],
    keys: Sequence[K | None],
    what: Callable[[K], str],
    name: Callable[[T], str] = lambda item: item.path.name,  # type: ignore[attr-defined]
) -> tuple[list[T], K, str | None]:
    """Keep the items whose key is the most common one; return ``(kept, key, warning or None)``.

    ``keys[i]`` belongs to ``items[i]``; a ``None`` key never wins the vote, and its item is left
    out with the rest (at least one key must not be ``None``). A tie goes to the key seen first.
    ``what(key)`` describes the items left out, e.g. ``"file(s) whose image size differs from
    512x512"``; the warning reads ``"left out 2 <what> (e.g. <name of the first left out>)"``.
    """
    if len(items) != len(keys):
        raise ValueError(f"{len(items)} items but {len(keys)} keys")
    present = [k for k in keys if k is not None]
    if not present:
        raise ValueError("no item has a key to vote with")
    key = most_common(present)
    kept = [item for item, k in zip(items, keys) if k == key]
    odd = [item for item, k in zip(items, keys) if k != key]
    if not odd:
        return kept, key, None
    return kept, key, f"left out {len(odd)} {what(key)} (e.g. {name(odd[0])})"
