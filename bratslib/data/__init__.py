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
from bratslib.data.layout import (
    BRATS_SHAPE,
    LABEL_NAMES,
    LABELS,
    MODALITIES,
    CaseFiles,
    NoCasesFoundError,
    case_files,
    find_cases,
)

__all__ = [
    "BRATS_SHAPE", "LABELS", "LABEL_NAMES", "MODALITIES",
    "BratsCase", "BratsDataError", "CaseFiles", "NoCasesFoundError", "Problem",
    "case_files", "check_case", "check_dataset", "find_cases", "load_case", "load_cases",
]
