"""Shared fixtures: tiny BraTS cases written as real NIfTI files.

``write_tiny_case`` writes one case in the BraTS layout; ``tiny_dataset`` is a session-wide
folder of six such cases.  The bratslib cache is pointed at a temporary folder for the whole
session, so no test writes to ``~/.cache``.
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

TINY_SHAPE = (48, 48, 24)
TINY_AFFINE = np.diag([-1.0, -1.0, 1.0, 1.0])
TINY_CASE_IDS = tuple(f"BraTS20_Training_{k:03d}" for k in range(1, 7))

#: Mean intensity of each modality in (brain, oedema, enhancing ring, necrotic core).
_CONTRAST = {
    "flair": (300, 700, 600, 400),
    "t1": (400, 300, 350, 200),
    "t1ce": (400, 350, 900, 250),
    "t2": (350, 800, 600, 900),
}


def write_tiny_case(
    folder: str | os.PathLike,
    case_id: str,
    shape: tuple[int, int, int] = TINY_SHAPE,
    seed: int = 0,
    *,
    labeled: bool = True,
    ext: str = ".nii.gz",
) -> Path:
    """Write ``folder/case_id/case_id_{flair,t1,t1ce,t2,seg}{ext}``; returns the case folder.

    An ellipsoidal brain (int16 intensities with noise, background 0) holds a blob tumour at
    a seed-dependent place: necrotic core (label 1) inside an enhancing ring (4) inside
    oedema (2), so every BraTS label occurs.  The segmentation (uint8) is left out when
    ``labeled`` is False.
    """
    rng = np.random.default_rng(seed)
    case_dir = Path(folder) / case_id
    case_dir.mkdir(parents=True, exist_ok=True)
    size = np.asarray(shape, float)
    grid = np.stack(np.meshgrid(*(np.arange(n) for n in shape), indexing="ij"), axis=-1)
    centre = (size - 1) / 2
    brain = (((grid - centre) / (0.42 * size)) ** 2).sum(-1) <= 1
    tumour_centre = centre + rng.uniform(-0.12, 0.12, 3) * size
    d = np.sqrt((((grid - tumour_centre) / (0.22 * size)) ** 2).sum(-1))
    labels = np.select([d <= 0.35, d <= 0.6, d <= 1.0], [1, 4, 2], 0).astype(np.uint8) * brain
    region = np.select([labels == 1, labels == 4, labels == 2], [3, 2, 1], 0)
    for modality, means in _CONTRAST.items():
        data = np.asarray(means, float)[region] + rng.normal(0, 30, shape)
        data = np.where(brain, np.clip(data, 1, None), 0).astype(np.int16)
        nib.save(nib.Nifti1Image(data, TINY_AFFINE), case_dir / f"{case_id}_{modality}{ext}")
    if labeled:
        nib.save(nib.Nifti1Image(labels, TINY_AFFINE), case_dir / f"{case_id}_seg{ext}")
    return case_dir


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """A folder of six labeled tiny cases, ``BraTS20_Training_001`` .. ``006`` (48x48x24)."""
    root = tmp_path_factory.mktemp("tiny_brats")
    for k, case_id in enumerate(TINY_CASE_IDS):
        write_tiny_case(root, case_id, seed=k)
    return root


@pytest.fixture(scope="session", autouse=True)
def _temporary_bratslib_cache(tmp_path_factory):
    """Point ``BRATSLIB_CACHE`` at a temporary folder for the session."""
    old = os.environ.get("BRATSLIB_CACHE")
    os.environ["BRATSLIB_CACHE"] = str(tmp_path_factory.mktemp("bratslib_cache"))
    yield
    if old is None:
        os.environ.pop("BRATSLIB_CACHE", None)
    else:
        os.environ["BRATSLIB_CACHE"] = old


#: Test modules that take the longest, run first: ``make test`` spreads whole modules over two
#: workers (pytest-xdist, ``--dist loadscope``), and the chapters' notebooks (most of the suite's
#: time, and one module because later chapters read earlier chapters' runs) must start at once
#: for both workers to finish together.
LONGEST_FIRST = ("test_notebooks.py", "test_benchmarks.py", "test_training.py")


def pytest_collection_modifyitems(config, items):
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each module keeps its order
