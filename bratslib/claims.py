"""The report's numbers (``book/claims.yml``), so chapters can set them beside their own."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

#: The claims file of the book, beside the package in a checkout.
CLAIMS_FILE = Path(__file__).resolve().parents[1] / "book" / "claims.yml"


def load_claims(chapter: str, path: str | os.PathLike | None = None) -> dict[str, Any]:
    """The entry of ``chapter`` in the claims file: ``model`` and a list of ``claims``, each
    with ``key``, ``label``, ``value`` and ``where`` (the place in the report).

    Raises:
        FileNotFoundError: no claims file (bratslib installed without the book's checkout).
        KeyError: no entry for ``chapter``.
    """
    import yaml

    path = Path(path) if path is not None else CLAIMS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the report's claims are read from the book's checkout (book/claims.yml)")
    claims = yaml.safe_load(path.read_text())
    if chapter not in claims:
        raise KeyError(f"{path} has no entry {chapter!r}; entries: {', '.join(claims)}")
    entry = claims[chapter]
    for claim in entry["claims"]:
        missing = {"key", "label", "value", "where"} - set(claim)
        if missing:
            raise ValueError(f"{path}: a claim of {chapter!r} lacks {', '.join(sorted(missing))}: {claim}")
    return entry
