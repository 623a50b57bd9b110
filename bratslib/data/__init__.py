"""Where the data comes from: BraTS cases on disk, synthetic BraTS, preprocessing, splits.

The Keras generators live in :mod:`bratslib.data.generators` (importing them imports
TensorFlow); everything importable from here does not.
"""

from bratslib.data.cases import (
    BratsCase,
    BratsDataError,
    Problem,
    check_case,
    check_dataset,
    load_case,
    load_cases,
)
from bratslib.data.cache import PreprocessedCache
from bratslib.data.layout import (
    BRATS_SHAPE,
    MODALITIES,
    NAMINGS,
    CaseFiles,
    NoCasesFoundError,
    case_files,
    find_cases,
    naming_of,
)
from bratslib.data.source import data_provenance, resolve_data_dir
from bratslib.data.splits import split_cases
from bratslib.data.synth import write_synthetic_dataset
from bratslib.labels import LABEL_NAMES, LABELS

__all__ = [
    "BRATS_SHAPE", "LABELS", "LABEL_NAMES", "MODALITIES", "NAMINGS",
    "BratsCase", "BratsDataError", "CaseFiles", "NoCasesFoundError", "Problem",
    "PreprocessedCache",
    "case_files", "check_case", "check_dataset", "data_provenance", "find_cases", "load_case", "load_cases",
    "naming_of", "resolve_data_dir", "split_cases", "write_synthetic_dataset",
]
