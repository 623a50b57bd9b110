"""Train / validation / test splits, by case (never by slice).

Slices of one brain are strongly correlated; splitting by slice would put near-copies of a
test slice in the training set.  :func:`split_cases` therefore splits case ids, and the same
ids with the same seed always give the same split, whatever order they come in.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np

SPLIT_NAMES: tuple[str, str, str] = ("train", "val", "test")


def _split_sizes(n: int, fractions: Sequence[float]) -> list[int]:
    """Case counts per split: rounded, each at least 1, summing to ``n``."""
    sizes = [0] + [max(1, round(n * f)) for f in fractions[1:]]
    while n - sum(sizes) < 1:  # too few left for training: shrink the largest other split
        k = 1 + int(np.argmax(sizes[1:]))
        sizes[k] -= 1
    sizes[0] = n - sum(sizes)
    return sizes


def split_cases(
    case_ids: Iterable[str],
    fractions: Sequence[float] = (0.7, 0.15, 0.15),
    seed: int = 0,
) -> dict[str, list[str]]:
    """Split case ids into train / val / test.

    Args:
        case_ids: the ids, in any order (they are sorted before shuffling, so the split
            depends only on the set of ids and the seed).
        fractions: shares of train, val and test; positive, summing to 1.
        seed: seed of the shuffle.

    Returns:
        ``{"train": [...], "val": [...], "test": [...]}``, each list sorted; every id is in
        exactly one list and every list is non-empty.

    Raises:
        ValueError: fewer than 3 cases, a repeated id, or bad fractions.
    """
    ids = sorted(case_ids)
    if len(set(ids)) != len(ids):
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"repeated case ids: {', '.join(repeated[:5])}")
    if len(ids) < 3:
        raise ValueError(f"need at least 3 cases to make non-empty train, val and test splits, got {len(ids)}")
    fractions = tuple(float(f) for f in fractions)
    if len(fractions) != 3 or min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
        raise ValueError(f"fractions must be three positive numbers summing to 1, got {fractions}")
    order = np.random.default_rng(seed).permutation(len(ids))
    bounds = np.cumsum([0, *_split_sizes(len(ids), fractions)])
    return {name: sorted(ids[i] for i in order[a:b]) for name, a, b in zip(SPLIT_NAMES, bounds[:-1], bounds[1:])}


def save_split(split: dict[str, list[str]], path: str | os.PathLike, **info) -> Path:
    """Write a split (plus any ``info``, e.g. the seed) as JSON; returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({**info, **split}, indent=1) + "\n")
    return path


def load_split(path: str | os.PathLike) -> dict[str, list[str]]:
    """Read a split written by :func:`save_split` (train / val / test lists only)."""
    data = json.loads(Path(path).read_text())
    return {name: list(data[name]) for name in SPLIT_NAMES}
