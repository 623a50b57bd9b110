"""Synthetic BraTS 2020: realistic-looking multi-modal glioma cases with no download.

bratslib's built-in default data.  :func:`write_synthetic_dataset` writes real NIfTI files
in the layout of the Kaggle BraTS 2020 release, so that everything downstream
(:func:`~bratslib.data.layout.find_cases`, :func:`~bratslib.data.cases.load_case`, the
generators, training, the book) runs on a laptop exactly as on the real data::

    OUT/bratslib_synthetic.json                                  (provenance)
    OUT/BraTS2020_TrainingData/MICCAI_BraTS2020_TrainingData/
        name_mapping.csv
        BraTS20_Training_001/BraTS20_Training_001_{flair,t1,t1ce,t2,seg}.nii   (.nii.gz)
        ...

Method, per case (:func:`synthesize_case`):

1. **Anatomy** comes from a real brain: the MNI ICBM152 2009a nonlinear symmetric template
   at 1 mm (skull-stripped T1 and grey / white matter probability maps); CSF (sulci and
   ventricles) is the brain mask minus grey and white matter.
2. **Pose and shape** vary per case: a random global affine (scale +-8 %, rotation +-5 deg,
   shift of a few mm) and a smooth random displacement field (std ~2 mm, correlation
   ~40 mm), composed with the placement of the template in the BraTS grid and applied in a
   single ``scipy.ndimage.map_coordinates`` pass per tissue map.
3. **A glioma** is centred in the cerebral white matter of either hemisphere: a core shaped
   as a rotated ellipsoid whose radius is modulated by smooth noise (label 1, necrosis /
   non-enhancing tumour), an enhancing rim of variable thickness with gaps (label 4; absent
   in about 30 % of cases, which are LGG-like), and oedema around it that reaches further
   in white matter than in grey matter and spares the CSF (label 2).  Tissue around the
   tumour is pushed outwards (mass effect).  Labels are hard geometric thresholds; image
   intensities use soft versions of the same regions (partial volume, oedema fading over a
   few mm across the label's edge) and smooth multiplicative heterogeneity, so no
   single-channel threshold recovers the labels (best whole-tumour Dice of a FLAIR
   threshold ~0.4-0.85, of the other modalities below ~0.6).
4. **Contrast** per modality is a partial-volume mix of tissue intensities (T1: WM > GM >
   CSF; T1ce: as T1, enhancing tumour very bright; T2: CSF > GM > WM, oedema and necrosis
   bright; FLAIR: CSF suppressed, GM > WM, oedema brightest), plus an unlabelled
   periventricular FLAIR / T2 hyperintensity of random strength, a slice-thickness blur
   for FLAIR and T2, a smooth multiplicative bias field per modality, a random global scale
   (scanner units, a few hundred to a few thousand), Rician noise, and zero outside the
   brain (skull-stripped).  Images are stored as int16, labels as uint8.

5. **Randomised to cover real scans** (the options of :data:`SYNTH_OPTIONS`, chosen with
   ``options=`` or ``python -m bratslib synth --options``; the default, :data:`DEFAULT_OPTIONS`,
   is ``artefacts`` + ``glioma`` + ``wmh`` + ``sites`` + ``leukoaraiosis``), in the spirit of
   SynthSeg (Billot et al., Medical Image Analysis 2023), which trains networks on synthetic
   scans whose every nuisance is drawn at random, so that only what holds across scans is learnt:

   * ``contrast``: per case and modality, the intensities of CSF, grey matter, oedema,
     necrosis, non-enhancing tumour and enhancement (white matter = 1) and the sign and size
     of the tumour's heterogeneity are drawn from wide ranges that keep only what a
     radiologist relies on (oedema bright on FLAIR and T2, enhancement brighter than white
     matter on T1ce, from faint to strong; necrosis from dark to bright on FLAIR);
   * ``artefacts``: stronger bias fields of varying smoothness, slices 1-6 mm thick
     (through-plane blur), in-plane blur, noise from clean to grainy;
   * ``anatomy``: a stronger warp of varying scale, atrophy (CSF growing into the tissue
     next to it), and vessels and choroid plexus that enhance on T1ce without being tumour;
   * ``glioma``: small to large tumours; oedema infiltrating along white matter with an
     irregular outline; enhancement 3-6 mm thick, closed or patchy, sometimes solid; a core
     that mixes necrosis and non-enhancing tumour; up to two further foci; stronger mass
     effect.  (Rims down to 1 mm, as in ``bratslib-synth-2``, are thinner than a pixel of
     the book's 64-pixel slices, ~2.5 mm: the book's U-Net hardly learnt the enhancement
     from them.)
   * ``sites``: tumours centred anywhere in cerebral white matter from 6 mm below the
     surface, so that they reach the cortex and the brain's edge (without it, only deep white
     matter, >= 15 mm);
   * ``surface``: a bright band, in patches and thin vessels, under the brain's surface,
     strongest on T1ce: the dura, sinuses and cortical vessels that skull stripping leaves in
     real scans, where they hold much of the hottest T1ce, so that the tumour is not always
     the brightest thing in the volume;
   * ``faint``: the enhancing tumour's brightness on T1ce drawn per case from faint (25 %
     above white matter) to bright, where the first generator always draws it at 1.9 times
     white matter (``contrast`` draws it too, with every other intensity);
   * ``subtle``: how far every tumour value (oedema, necrosis, non-enhancing core,
     enhancement) stands from normal white matter, scaled per case and modality by a factor
     drawn from 0.35 to 1: tumours from subtle to as conspicuous as the first generator's,
     whose fixed values (FLAIR oedema 1.85, T1ce enhancement 1.9 times white matter) are at
     the bright end of real gliomas;
   * ``faint_oedema``: the same for the oedema alone (necrosis, non-enhancing core and
     enhancement keep their values);
   * ``wmh``: unlabelled white-matter hyperintensities (WMH), as small-vessel disease
     leaves them in most patients of glioma age: up to 40 patches 2-10 mm across (a third of
     the cases none), as bright on FLAIR and T2 as oedema, a little dark on T1 and T1ce, with
     neither mass effect nor enhancement, so that the tumour is not the only bright thing on
     FLAIR.  Drawn last, after the tumour: a case's labels are those it has without it.
   * ``faint_edge``: where the oedema's label ends, its signal has faded to about a fifth of its
     strength, as BraTS annotators outline the whole FLAIR hyperintensity, faint edge
     included; without it the label ends where the signal is at about half its strength
     and a faint tail lies outside it (unlabelled), which teaches a network to leave faint
     oedema out.  No draws: the same labels, only the oedema's intensity profile moves
     inwards by a fifth of its radius (:data:`FAINT_EDGE`).
   * ``leukoaraiosis``: confluent, unlabelled white-matter hyperintensity around both lateral
     ventricles (leukoaraiosis, Fazekas grades 2-3, common in patients of glioma age): in half
     the cases, the ventricles' white-matter lining spread 3-10 mm into the deep white matter
     of both hemispheres, in smooth patches, 20-70 % brighter on FLAIR and T2 and a little
     darker on T1 and T1ce; no mass effect, no enhancement.  Where ``wmh`` is scattered
     patches, this is the broad, symmetric band that a network trained without it calls
     oedema.  Drawn after ``wmh``: a case's labels are those it has without it.

   With every option off (``options=()``) the generator writes the bytes of the first one
   (``bratslib-synth-1``); each option's draws come after those, so each can be switched
   on or off alone.  ``benchmarks/bench_sim2real.py`` measures what each buys on real scans.

About 3 s per case on one CPU core with every option off, about 4-6 s with the default (plus
~2 s once per process to prepare the template), ~0.5 GB of memory.

Geometry is that of the real release: shape (240, 240, 155), 1 mm isotropic, affine
``[[-1, 0, 0, 0], [0, -1, 0, 239], [0, 0, 1, 0], [0, 0, 0, 1]]`` (LPS+ voxel axes: ``i``
runs to the patient's left, ``j`` to the back, ``k`` up); axis 2 is axial.  To show a
slice the right way up (front of the head at the top, patient's right on the image's
left, i.e. radiological convention), use::

    plt.imshow(vol[:, :, k].T)                        # axial, default origin="upper"
    plt.imshow(vol[:, j, :].T, origin="lower")        # coronal
    plt.imshow(vol[i, :, :].T, origin="lower")        # sagittal (front on the left)

Randomness: case ``k`` of a data set uses the ``k``-th child of
``np.random.SeedSequence(seed)``, so it is the same whatever ``n_cases`` is.  The same seed
gives the same bytes on the same platform with the same numpy / scipy / nibabel versions
(floating-point results may differ in the last bit across CPUs or library versions).

Template credit: MNI ICBM152 2009a nonlinear symmetric template, Fonov et al. 2011
NeuroImage 54(1):313-327 and 2009; McConnell Brain Imaging Centre; copyright (C) 1993-2009
Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological Institute, McGill
University; shipped in nilearn's wheel.
"""

from __future__ import annotations

import csv
import functools
import gzip
import importlib.util
import io
import itertools
import json
import logging
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi
from scipy.special import ndtri

from bratslib.data.layout import BRATS_SHAPE, MODALITIES
from bratslib.files import write_bytes_atomic

log = logging.getLogger(__name__)

__all__ = ["SyntheticCase", "synthesize_case", "write_synthetic_dataset", "GENERATOR_VERSION", "BRATS_AFFINE",
           "SYNTH_OPTIONS", "DEFAULT_OPTIONS", "synth_options",
           "options_name"]

#: Changes whenever the generator would write different bytes for the same seed and options.
GENERATOR_VERSION = "bratslib-synth-3"  # 3: option glioma's enhancement 3-6 mm thick, fewer gaps

#: The generator's options: each is one change over the first generator (``bratslib-synth-1``,
#: all options off, whose bytes it still writes), so that ``benchmarks/bench_sim2real.py`` can
#: measure what each buys on real scans.
SYNTH_OPTIONS: dict[str, str] = {
    "contrast": "per-case tissue and tumour intensities per modality drawn from wide, plausible ranges (SynthSeg-like)",
    "artefacts": "stronger bias fields, thicker slices (low through-plane resolution), blur, a wider range of noise",
    "anatomy": "stronger warps, ventricles and sulci of varying size (atrophy), per-case grey / white matter balance",
    "glioma": "oedema infiltrating along white matter, irregular or patchy enhancement, non-enhancing core, "
              "several foci, stronger mass effect",
    "sites": "tumours centred anywhere in cerebral white matter from 6 mm below the surface, reaching the cortex and "
             "the brain's edge as real gliomas often do (the first generator: deep white matter only)",
    "surface": "bright unlabelled tissue along the brain's surface, strongest on T1ce, as skull stripping leaves "
               "it in real scans (dura, sinuses, cortical vessels)",
    "faint": "the enhancing tumour's brightness on T1ce drawn per case from faint (1.25 x white matter) to bright "
             "(2.1; the first generator: always 1.9)",
    "subtle": "the tumour's contrast to normal tissue drawn per case and modality, from 35 % to all of the first "
              "generator's (FLAIR oedema 1.3 to 1.85 x white matter, T1ce enhancement 1.3 to 1.9)",
    "faint_oedema": "the oedema's contrast alone drawn per case and modality, from 35 % to all of the first "
                    "generator's (FLAIR 1.3 to 1.85 x white matter); the core and enhancement as they were",
    "wmh": "unlabelled white-matter hyperintensities (small-vessel disease, common at glioma age): up to 40 patches "
           "2-10 mm across, bright on FLAIR and T2, a little dark on T1, not enhancing",
    "faint_edge": "the oedema's label reaches its faint edge (its signal faded to about a fifth where the label "
                  "ends, as BraTS outlines the whole FLAIR hyperintensity; without it: to about a half)",
    "leukoaraiosis": "confluent unlabelled white-matter hyperintensity around both lateral ventricles (leukoaraiosis), "
                     "in half the cases: 3-10 mm into the deep white matter, bright on FLAIR and T2, no enhancement",
}
#: Option ``faint_edge``: the oedema's intensity profile is centred this far inside its label
#: (in units of the oedema's radius, where the label ends at 1): its half strength at 0.85, not
#: at 1.05.
FAINT_EDGE = 0.8
#: What the synthetic default uses: ``artefacts`` + ``glioma`` + ``wmh`` + ``sites`` + ``leukoaraiosis``.
#: ``artefacts`` + ``glioma`` is the one variant of
#: ``benchmarks/bench_sim2real.py`` (its report in ``benchmarks/results/bench_sim2real.md``: three
#: training seeds per variant at the book's smoke budget) above the first generator on the real
#: scans by more than the seeds' spread: real tumour core 0.42 against 0.23, each seed above the
#: first generator's best, the whole tumour at its level.  In the book's chapters (a build of
#: each default, chapter 11's table) it raised the real tumour core of all six segmentation
#: models.  Added to it, ``surface`` lost the real tumour core (0.08) and ``sites`` raised every
#: real mean (over five training seeds 0.61 / 0.41 / 0.14 against 0.56 / 0.31 / 0.00), a gain
#: gone with twice the cases (0.48 / 0.43 / 0.17), ``faint`` lowered them (0.46 / 0.29 /
#: 0.02, also with intensities scaled by the brain's median: 0.49 / 0.19 / 0.00), ``subtle``
#: found more of scan 901's whole tumour and lost the tumour core (0.54 / 0.03 / 0.33), as
#: ``faint_oedema`` did (0.49 / 0.16 / 0.17): measured, not on by default.  The default's
#: U-Net finds scan 901's tumour once it is made 1.3 (FLAIR) and 1.5 (T1ce) times brighter
#: (the report's probe column): its fixed tumour contrasts are above 901's.  ``wmh``
#: changed nothing alone (0.54 / 0.33 / 0.00); with intensities normalised by rank, four inputs
#: and three times the training it raised the real whole tumour with four seeds of five (over
#: five, 0.66 / 0.48 / 0.45 against 0.59 / 0.43 / 0.31).  It is on by default since the
#: real-scan chapter (12) trains chapter 2's U-Net so, on the chapters' data: most patients of
#: glioma age have such lesions, and the chapters' settings lose nothing by them.  ``faint_edge`` found more of 901's whole tumour and lost
#: 902's, as ``subtle`` did (0.52 / 0.44 / 0.33; 901 0.46, 902 0.58 against 0.85): not on by
#: default.  ``leukoaraiosis`` lowered the chapters' settings a little (0.48 / 0.30 / 0.07) and, with ranks,
#: four inputs, three times the training and the largest tumour kept (chapter 12's U-Net for real
#: scans), traded the real tumour core for steadier seeds (over five 0.79 / 0.45 / 0.76 against
#: 0.78 / 0.51 / 0.59).  ``sites`` and ``leukoaraiosis`` together, with chapter 12's recipe, gave the
#: highest real tumour core and the most seeds at issue 15's goal of any row: over five seeds 0.77 /
#: 0.57 / 0.77, three seeds of five at 0.80 / 0.50 / 0.50 (two without them), the seeds' ensembles
#: 0.81 / 0.64 / 0.88 (seeds 0-2) and 0.85 / 0.69 / 0.83 (seeds 3 and 4), at the cost of harder
#: synthetic cases (synthetic test 0.74 / 0.49 / 0.63 against 0.81 / 0.58 / 0.74).  Both are on by
#: default since: real gliomas often reach the cortex and most patients of glioma age have some
#: leukoaraiosis.  Both were built after looking at where the U-Net failed on the two real scans,
#: so those scans flatter them.  ``python -m bratslib synth --options none`` still writes the first
#: generator's data.
DEFAULT_OPTIONS: frozenset[str] = frozenset({"artefacts", "glioma", "wmh", "sites", "leukoaraiosis"})


def synth_options(options=None) -> dict[str, bool]:
    """The generator's options, every name of :data:`SYNTH_OPTIONS` -> on / off.

    ``options``: None (the default, :data:`DEFAULT_OPTIONS`), an iterable of the names to
    switch on (the others off; ``()`` is the first generator), or a mapping name -> bool
    (names not given keep their default).
    """
    if options is None:
        chosen = dict.fromkeys(SYNTH_OPTIONS, False) | dict.fromkeys(DEFAULT_OPTIONS, True)
    elif isinstance(options, dict):
        chosen = dict.fromkeys(SYNTH_OPTIONS, False) | dict.fromkeys(DEFAULT_OPTIONS, True) | {k: bool(v) for k, v in options.items()}
    else:
        options = [options] if isinstance(options, str) else list(options)
        chosen = dict.fromkeys(SYNTH_OPTIONS, False) | dict.fromkeys(options, True)
    unknown = sorted(set(chosen) - set(SYNTH_OPTIONS))
    if unknown:
        raise ValueError(f"unknown synthetic data option(s) {', '.join(unknown)}; known: {', '.join(SYNTH_OPTIONS)}")
    return chosen


def options_name(options=None) -> str:
    """A folder name for a set of options (as :func:`synth_options` takes them): the names switched
    on, sorted and joined by ``-``, or ``v1`` for the first generator; e.g. ``artefacts-glioma``."""
    return "-".join(sorted(k for k, on in synth_options(options).items() if on)) or "v1"

#: Voxel-to-world affine of every BraTS 2020 volume (the real release's).
BRATS_AFFINE = np.array([[-1.0, 0, 0, 0], [0, -1.0, 0, 239], [0, 0, 1.0, 0], [0, 0, 0, 1.0]])

TRAINING_DIR = Path("BraTS2020_TrainingData") / "MICCAI_BraTS2020_TrainingData"
PROVENANCE_FILE = "bratslib_synthetic.json"
NAME_MAPPING_COLUMNS = ("Grade", "BraTS_2017_subject_ID", "BraTS_2018_subject_ID", "TCGA_TCIA_subject_ID",
                        "BraTS_2019_subject_ID", "BraTS_2020_subject_ID")

TEMPLATE_CREDIT = {
    "name": "MNI ICBM152 2009a nonlinear symmetric template (1 mm): T1, GM and WM probability maps",
    "files": [f"nilearn/datasets/data/mni_icbm152_{k}_tal_nlin_sym_09a_converted.nii.gz" for k in ("t1", "gm", "wm")],
    "source": "shipped in nilearn's wheel; originally McConnell Brain Imaging Centre, "
              "https://www.bic.mni.mcgill.ca/ServicesAtlases/ICBM152NLin2009",
    "citation": "Fonov et al. 2011, NeuroImage 54(1):313-327; Fonov et al. 2009, NeuroImage 47:S102",
    "licence": "Copyright (C) 1993-2009 Louis Collins, McConnell Brain Imaging Centre, Montreal Neurological "
               "Institute, McGill University. Distributed by the MNI under a permissive notice (use, copy, modify "
               "and distribute, keeping the copyright notice; provided 'as is', without warranty): see the source "
               "page for the exact terms. nilearn's dataset description lists the licence as 'unknown'.",
}

# Placement of the template in the BraTS grid: the centre of the template's brain bounding
# box lands on this voxel, after a shrink that makes the MNI152 brain (larger than an
# individual's) fit the 155 axial slices like BraTS brains do.
_GRID_CENTRE = np.array([119.5, 119.5, 72.0])
_BASE_SCALE = 0.95

# Relative tissue intensities (white matter = 1) per modality.
_TISSUE = {  #        csf    gm    wm
    "flair": np.array([0.30, 1.30, 1.00]),
    "t1": np.array([0.32, 0.66, 1.00]),
    "t1ce": np.array([0.35, 0.70, 1.00]),
    "t2": np.array([3.00, 1.45, 1.00]),
}
# Tumour: oedema gain (multiplies normal tissue), necrosis / non-enhancing core, enhancing rim.
_TUMOUR = {  #        oedema  ncr(HGG) net(LGG)  et
    "flair": np.array([1.85, 1.20, 1.75, 1.45]),
    "t1": np.array([0.75, 0.42, 0.58, 0.72]),
    "t1ce": np.array([0.78, 0.40, 0.58, 1.90]),
    "t2": np.array([1.85, 2.50, 2.10, 1.55]),
}
# Sign and strength of the tumour's internal heterogeneity per modality.
_HETERO = {"flair": 0.15, "t1": -0.10, "t1ce": -0.12, "t2": 0.15}


@dataclass
class SyntheticCase:
    """One synthetic case, as it is written to disk.

    Attributes:
        images: modality (``flair``, ``t1``, ``t1ce``, ``t2``) -> int16 array (240, 240, 155),
            positive inside the brain, 0 outside.
        seg: uint8 label map (240, 240, 155) with values in {0, 1, 2, 4}.
        params: the random draws (JSON-serialisable): pose, tumour centre (voxel), radii (mm),
            ``has_enhancing``, intensity scales, voxel counts per label...
    """

    images: dict[str, np.ndarray]
    seg: np.ndarray
    params: dict = field(default_factory=dict)

    @property
    def has_enhancing(self) -> bool:
        return bool(self.params["has_enhancing"])


# --------------------------------------------------------------------------- template


@dataclass(frozen=True)
class _Template:
    """The MNI152 2009a template and maps derived from it.

    All maps are C-ordered arrays (197, 233, 189) in the template's RAS+ voxel order, 1 mm,
    0 outside the brain; uint8 ones are multiplied by ``scale[name]`` after sampling.
    """

    t1: np.ndarray  # uint8 T1 intensity; times scale["t1"], white matter is ~1
    gm: np.ndarray  # uint8 grey matter probability (x 255)
    wm: np.ndarray  # uint8 white matter probability (x 255)
    brain: np.ndarray  # uint8 brain mask (0 / 1)
    lining: np.ndarray  # float32 0..1: white matter lining the lateral ventricles
    reach: np.ndarray  # uint8, 1 within 8 mm of the brain: where to sample
    scale: dict[str, float]  # factor that turns each sampled map into the units above
    centre: np.ndarray  # (3,) centre of the brain's bounding box, voxels
    bbox: tuple[np.ndarray, np.ndarray]  # brain bounding box (low, high), voxels
    tumour_sites: np.ndarray  # (N, 3) voxels where a glioma may be centred
    shallow_sites: np.ndarray  # (M, 3) the same from 6 mm below the surface (option sites)


def _template_folder() -> Path:
    """nilearn's bundled data folder, found without importing nilearn (``nilearn.datasets`` takes ~3 s)."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or spec.origin is None:
        raise ModuleNotFoundError("the synthetic data needs nilearn, which ships the MNI152 template: pip install nilearn")
    return Path(spec.origin).parent / "datasets" / "data"


def _distance_mm(mask: np.ndarray) -> np.ndarray:
    """Distance (mm) of each voxel of ``mask`` to the nearest voxel outside it, computed at 2 mm (fast)."""
    coarse = ndi.distance_transform_edt(mask[::2, ::2, ::2]) * 2
    return coarse.repeat(2, 0).repeat(2, 1).repeat(2, 2)[: mask.shape[0], : mask.shape[1], : mask.shape[2]]


@functools.lru_cache(maxsize=1)
def _template() -> _Template:
    """Read the template once per process (~0.5 s) and derive masks and tumour sites."""
    folder = _template_folder()

    def read(kind: str) -> np.ndarray:
        path = folder / f"mni_icbm152_{kind}_tal_nlin_sym_09a_converted.nii.gz"
        return np.ascontiguousarray(nib.load(path).dataobj, dtype=np.uint8)  # C order: fast sampling

    t1 = read("t1")
    brain = (t1 > 0).astype(np.uint8)  # the template T1 is already skull-stripped
    gm, wm = read("gm") * brain, read("wm") * brain  # the probability maps reach a little beyond the mask
    idx = np.argwhere(brain)
    low, high = idx.min(0), idx.max(0)
    depth = _distance_mm(brain > 0)  # below the brain's surface
    # Lateral ventricles: the large deep CSF components; their white matter lining.
    csf = brain - (gm.astype(np.float32) + wm) / 255
    components, _ = ndi.label((csf > 0.5) & (depth >= 20))
    sizes = np.bincount(components.ravel())
    sizes[0] = 0  # not a component: the background
    ventricles = np.isin(components, np.flatnonzero(sizes >= 5000)).astype(np.float32)
    lining = ndi.gaussian_filter(ventricles, 2.5) * (wm / np.float32(255))
    lining = np.minimum(lining / np.percentile(lining[lining > 0], 99.5), 1).astype(np.float32)
    reach = (_distance_mm(brain == 0) <= 8).astype(np.uint8)
    # Tumour sites: deep cerebral white matter (>= 15 mm below the surface, above the
    # cerebellum and brainstem: MNI z > -12 mm).
    z_mni = np.arange(t1.shape[2]) - 72.0
    sites = np.argwhere((wm > 0.9 * 255) & (depth >= 15) & (z_mni[None, None, :] > -12))
    # option sites: any white matter from 6 mm below the surface (subcortical, as well as deep)
    shallow = np.argwhere((wm > 0.5 * 255) & (depth >= 6) & (z_mni[None, None, :] > -12))
    scale = {"t1": 1 / float(np.median(t1[wm > 0.9 * 255])), "gm": 1 / 255, "wm": 1 / 255, "brain": 1.0, "lining": 1.0}
    return _Template(t1, gm, wm, brain, lining, reach, scale, (low + high) / 2.0, (low, high), sites, shallow)


# --------------------------------------------------------------------------- random fields


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int, int], spacing: float) -> np.ndarray:
    """Smooth 3-D Gaussian random field: zero mean, unit variance, float32 array of ``shape``.

    White noise on a grid of control points ``spacing`` voxels apart, interpolated with
    separable Gaussian kernels (one small contraction per axis, no per-voxel loop), so
    features are about ``spacing`` voxels (mm) wide.  Uses ``np.einsum`` rather than BLAS,
    whose results may depend on the number of threads.
    """
    weights = []
    for n in shape:
        centres = (np.arange(int(np.ceil(n / spacing)) + 3) - 1.0) * spacing
        w = np.exp(-0.5 * ((np.arange(n)[:, None] - centres[None, :]) / (0.6 * spacing)) ** 2)
        weights.append((w / np.sqrt((w**2).sum(1, keepdims=True))).astype(np.float32))
    wx, wy, wz = weights
    grid = rng.standard_normal((wx.shape[1], wy.shape[1], wz.shape[1]), dtype=np.float32)
    grid = np.einsum("kc,abc->abk", wz, grid)
    grid = np.einsum("jb,abk->ajk", wy, grid)
    return np.einsum("ia,ajk->ijk", wx, grid)


def _wobble(rng: np.random.Generator, shape: tuple[int, int, int], spacing: float, amount: float) -> np.ndarray:
    """Smooth random factor around 1, ``exp(amount * noise)`` with the noise clipped at +-2.5 std."""
    return np.exp(np.float32(amount) * np.clip(smooth_noise(rng, shape, spacing), -2.5, 2.5))


def _tubes(rng: np.random.Generator, shape: tuple[int, int, int], spacing: float, width: float) -> np.ndarray:
    """Thin random tubes (vessels), 0..1, float32: where two smooth random fields (``spacing``
    voxels) both cross zero; ``width`` in units of the fields' standard deviation."""
    a, b = smooth_noise(rng, shape, spacing), smooth_noise(rng, shape, spacing)
    return np.exp(-(a * a + b * b) / np.float32(2 * width**2))


def _rotation(angles: np.ndarray) -> np.ndarray:
    """3x3 rotation matrix from rotations (radians) about axes 0, 1 and 2, applied in that order."""
    c, s = np.cos(angles), np.sin(angles)
    rx = np.array([[1, 0, 0], [0, c[0], -s[0]], [0, s[0], c[0]]])
    ry = np.array([[c[1], 0, s[1]], [0, 1, 0], [-s[1], 0, c[1]]])
    rz = np.array([[c[2], -s[2], 0], [s[2], c[2], 0], [0, 0, 1]])
    return rz @ ry @ rx


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 + 0.5 * np.tanh(0.5 * x)


# --------------------------------------------------------------------------- draws


def _draw_pose(rng: np.random.Generator) -> dict:
    """Random global affine: isotropic scale +-6 % times per-axis +-2 %, rotation +-5 deg, shift."""
    return {
        "scale": (_BASE_SCALE * rng.uniform(0.94, 1.06) * rng.uniform(0.98, 1.02, 3)).tolist(),
        "rotation_deg": rng.uniform(-5, 5, 3).tolist(),
        "shift_vox": (rng.uniform(-4, 4, 3) * [1, 1, 0.5]).tolist(),
    }


def _pose_matrix(pose: dict) -> np.ndarray:
    """3x3 matrix taking template voxel offsets (RAS+) to BraTS grid offsets (LPS+)."""
    flip = np.diag([-1.0, -1.0, 1.0])
    return flip @ np.diag(pose["scale"]) @ _rotation(np.deg2rad(pose["rotation_deg"]))


def _to_grid(pose: dict, template: _Template, q: np.ndarray) -> np.ndarray:
    """Template voxel coordinates (..., 3) -> BraTS grid voxel coordinates (..., 3)."""
    return _GRID_CENTRE + np.asarray(pose["shift_vox"]) + (q - template.centre) @ _pose_matrix(pose).T


def _draw_tumour(rng: np.random.Generator, template: _Template, enhancing: bool | None) -> dict:
    """Random glioma: centre (template voxel), core radii and orientation, rim, oedema, mass effect."""
    has_enhancing = bool(rng.random() >= 0.3) if enhancing is None else bool(enhancing)
    site = template.tumour_sites[rng.integers(len(template.tumour_sites))] + rng.uniform(-0.5, 0.5, 3)
    radius = rng.uniform(11, 23) if has_enhancing else rng.uniform(11, 24)
    return {
        "has_enhancing": has_enhancing,
        "site_template_vox": site.tolist(),
        "core_radii_mm": (radius * np.exp(rng.uniform(-0.2, 0.2, 3))).tolist(),
        "orientation_deg": rng.uniform(-180, 180, 3).tolist(),
        "rim_mm": float(rng.uniform(3.0, 7.0)),
        "oedema_mm": float(rng.uniform(6, 28) if has_enhancing else rng.uniform(3, 14)),
        "mass_effect": float(rng.uniform(0.0, 0.4)),
        "core_value_jitter": float(rng.uniform(-0.2, 0.1)),
    }


def _draw_glioma(rng: np.random.Generator, tumour: dict) -> dict:
    """Option ``glioma``: redraws of the first generator's tumour (drawn after it, so that
    turning the option off gives its bytes) for the variety of real gliomas.

    Sizes from small to large; oedema from a thin rim to most of a lobe, following white
    matter (``infiltration``: 0 isotropic, 1 strongly along white matter, with an irregular
    outline); enhancement 3 to 6 mm thick (at least a pixel of the book's 64-pixel slices,
    ~2.5 mm), a closed ring to a ring with gaps (``patch_offset``), sometimes solid (nodular,
    no necrosis); a core that mixes necrosis and non-enhancing tumour (``net_share``, with its
    own smooth pattern); up to two further foci near the main one; a stronger mass effect.
    """
    r = float(np.mean(tumour["core_radii_mm"]))
    size = float(rng.uniform(0.6, 1.15))
    enh = tumour["has_enhancing"]
    solid = bool(enh and rng.random() < 0.2)
    n_foci = int(rng.choice(3, p=[0.7, 0.2, 0.1]))
    foci = []
    for _ in range(n_foci):
        direction = rng.standard_normal(3)
        direction /= np.linalg.norm(direction)
        factor = float(rng.uniform(0.25, 0.6))
        foci.append({"offset_mm": (direction * r * size * rng.uniform(1.1, 2.2)).tolist(),
                     "radius_factor": factor, "orientation_deg": rng.uniform(-180, 180, 3).tolist()})
    out = {
        **tumour,
        "core_radii_mm": (np.asarray(tumour["core_radii_mm"]) * size).tolist(),
        "oedema_mm": float(rng.uniform(2, 26) if enh else rng.uniform(1, 16)),
        "infiltration": float(rng.uniform(0.2, 1.0)),
        "oedema_wobble": float(rng.uniform(0.15, 0.4)),
        "rim_mm": float(r * size if solid else rng.uniform(3.0, 6.0)),
        "solid": solid,
        "patch_offset": float(rng.uniform(0.5, 3.0)),
        "net_share": float(rng.uniform(0.0, 1.0)) if enh else 1.0,
        "mass_effect": float(rng.uniform(0.0, 0.6)),
        "foci": foci,
    }
    return out


def _draw_contrast(rng: np.random.Generator, look: dict) -> dict:
    """Option ``contrast``: tissue and tumour intensities (white matter = 1) and the sign and
    strength of the tumour's heterogeneity drawn per case and modality from ranges that hold
    the relations a radiologist reads (oedema bright on FLAIR and T2, enhancement brighter
    than white matter on T1ce, necrosis dark on T1), not fixed values.  Necrosis on FLAIR
    ranges from dark to as bright as the oedema; enhancement from faint (20 % above white
    matter) to very bright."""
    ranges = {  #      csf          gm            oedema        ncr           net           et
        "flair": [(0.15, 0.6), (1.05, 1.5), (1.2, 2.1), (0.6, 2.1), (1.15, 2.1), (0.9, 2.0)],
        "t1": [(0.2, 0.5), (0.55, 0.85), (0.6, 0.95), (0.3, 0.8), (0.4, 0.85), (0.55, 1.05)],
        "t1ce": [(0.2, 0.55), (0.6, 0.9), (0.65, 1.0), (0.3, 0.85), (0.4, 0.9), (1.2, 2.3)],
        "t2": [(1.8, 4.0), (1.15, 1.7), (1.3, 2.4), (1.4, 3.2), (1.5, 2.9), (1.1, 2.2)],
    }
    out = {}
    for m, rs in ranges.items():
        v = [float(rng.uniform(lo, hi)) for lo, hi in rs]
        out[m] = {**look[m], "tissue": [v[0], v[1], 1.0], "tumour": v[2:], "hetero": float(rng.uniform(-0.25, 0.3)),
                  "t1_detail": float(rng.uniform(0.2, 0.7)) if m in ("t1", "t1ce") else 0.0}
    return out


def _draw_artefacts(rng: np.random.Generator, look: dict) -> dict:
    """Option ``artefacts``: per modality a stronger bias field of varying smoothness, a slice
    thickness of 1-6 mm (through-plane blur, as of 2-D acquisitions resampled to 1 mm), some
    in-plane blur, and noise from very clean to grainy."""
    out = {}
    for m in MODALITIES:
        thick = float(rng.uniform(1.0, 6.0)) if rng.random() < 0.6 else 1.0
        out[m] = {**look[m], "bias": float(rng.uniform(0.03, 0.16)), "bias_spacing": float(rng.uniform(40, 110)),
                  "slice_blur_mm": thick / 2.355, "blur_mm": float(rng.uniform(0.0, 0.9)),
                  "noise": float(np.exp(rng.uniform(np.log(0.01), np.log(0.1))))}
    return out


def _draw_anatomy(rng: np.random.Generator) -> dict:
    """Option ``anatomy``: a stronger smooth warp of varying scale, atrophy (wider sulci and
    ventricles), and bright vessels and choroid plexus on T1ce (unlabelled: enhancement that
    is not tumour)."""
    return {"warp_mm": float(rng.uniform(1.5, 4.0)), "warp_spacing": float(rng.uniform(22, 50)),
            "atrophy": float(rng.uniform(0.0, 0.8)), "vessels": float(rng.uniform(0.3, 1.6))}


def _draw_site(rng: np.random.Generator, template: _Template, tumour: dict) -> dict:
    """Option ``sites``: the tumour's centre redrawn from any cerebral white matter at least 6 mm
    below the brain's surface.  The first generator centres tumours >= 15 mm deep, so its
    tumour cores lie 15-40 mm below the surface; real gliomas often reach the cortex (the two
    real scans of ``book/data/real``: tumour core 9 and 17 mm deep at the median, the whole
    tumour touching the surface)."""
    site = template.shallow_sites[rng.integers(len(template.shallow_sites))] + rng.uniform(-0.5, 0.5, 3)
    return {**tumour, "site_template_vox": site.tolist()}


def _draw_surface(rng: np.random.Generator) -> dict:
    """Option ``surface``: what skull stripping leaves at the edge of real brains (dura, venous
    sinuses, cortical vessels), strongest on T1ce.  In real BraTS scans much of the hottest
    T1ce lies within a few mm of the brain's surface, so the tumour is not the brightest
    thing in the volume; in the first generator it is.

    ``depth_mm``: how far below the surface the band reaches; ``coverage``: share of the
    surface it covers (patches ``patch_mm`` across, plus thin vessels); ``gain``: per modality,
    the relative change of intensity at full strength (T1ce +60 % to +180 %, from below to
    above the enhancing tumour's usual brightness).  Measured on the two real scans of
    ``book/data/real`` (T1ce over the 75th percentile of normal brain): the outer 3 mm reach
    1.4-1.8 at their 99th percentile, and 20-50 % of the voxels above the brain's 99.5th
    percentile lie there; the first generator's outer 3 mm stay at ~1.0 and hold none of them."""
    return {"depth_mm": float(rng.uniform(1.0, 3.0)), "coverage": float(rng.uniform(0.15, 0.7)),
            "patch_mm": float(rng.uniform(8.0, 25.0)),
            "gain": {"t1ce": float(rng.uniform(0.6, 1.8)), "t1": float(rng.uniform(0.0, 0.4)),
                     "flair": float(rng.uniform(-0.2, 0.6)), "t2": float(rng.uniform(-0.3, 0.4))}}


def _draw_faint(rng: np.random.Generator, look: dict) -> dict:
    """Option ``faint``: the enhancing tumour's value on T1ce (white matter = 1), log-uniform in
    1.25-2.1; the first generator's is always 1.9.  Enhancement in real gliomas ranges from
    barely visible to very bright (scan 901 of ``book/data/real``: its enhancing tumour's
    median is 1.15 times the 75th percentile of normal brain on T1ce; the first generator's
    cases 1.4-2.0 by the same measure).  Overrides the value ``contrast`` draws."""
    return {**look, "t1ce": {**look["t1ce"], "et_value": float(np.exp(rng.uniform(np.log(1.25), np.log(2.1))))}}


def _draw_subtle(rng: np.random.Generator, look: dict) -> dict:
    """Option ``subtle``: per modality, a factor uniform in 0.35-1 by which every tumour value's
    distance from white matter (1) shrinks: ``v -> 1 + (v - 1) * factor`` for the oedema's gain,
    necrosis, the non-enhancing core and the enhancement (after ``contrast`` and ``faint``).
    The relations a radiologist reads are kept (oedema brighter on FLAIR, enhancement brighter
    on T1ce), how conspicuous they are is not: lesion-to-white-matter ratios of real gliomas
    run from about 1.3 to 2 on FLAIR and on contrast-enhanced T1, so a network should not
    learn one threshold.  (A network trained without it missed most of scan 901's oedema and
    enhancement and found them once they were made 1.3 and 1.5 times as bright:
    ``benchmarks/results/bench_sim2real.md``; the real scans are never training data.  Measured
    there, added to the default it found more of 901's whole tumour and lost the real tumour
    core (902's), even with three times the training: not on by default.)"""
    return {m: {**look[m], "tumour_contrast": float(rng.uniform(0.35, 1.0))} for m in MODALITIES}


def _draw_faint_oedema(rng: np.random.Generator, look: dict) -> dict:
    """Option ``faint_oedema``: as :func:`_draw_subtle` for the oedema's gain alone, a factor
    uniform in 0.35-1 per modality (``subtle``, when on too, applies on top)."""
    return {m: {**look[m], "oedema_contrast": float(rng.uniform(0.35, 1.0))} for m in MODALITIES}


def _draw_wmh(rng: np.random.Generator) -> dict:
    """Option ``wmh``: how many white-matter hyperintensities (0-40, a third of
    the cases none) and how bright, per modality, at full strength (a relative change of
    intensity: FLAIR and T2 +30 % to +90 %, T1 and T1ce -5 % to -25 %).  Most patients of
    glioma age have some (small-vessel disease): patches as bright on FLAIR as oedema, without
    mass effect or enhancement, that a segmentation must leave out; in the first generator the
    tumour is the only bright thing on FLAIR but the ventricles' lining."""
    count = 0 if rng.random() < 1 / 3 else int(rng.integers(1, 41))
    dark = float(rng.uniform(-0.25, -0.05))
    flair, t2 = (float(rng.uniform(0.3, 0.9)) for _ in range(2))
    return {"count": count, "gain": {"flair": flair, "t2": t2, "t1": dark, "t1ce": dark}}


def _wmh_map(rng: np.random.Generator, anatomy: dict[str, np.ndarray], draw: dict) -> np.ndarray:
    """Strength 0..1 of the white-matter hyperintensities (option ``wmh``) in the
    work box, float32: ``draw["count"]`` patches centred in white matter (probability > 0.9),
    each a Gaussian (sigma 1-4 mm, each axis stretched or squeezed up to 1.35 times; 1 mm
    voxels) cut off flat at its top, kept to white matter."""
    wm = anatomy["wm"]
    out = np.zeros(wm.shape, np.float32)
    candidates = np.flatnonzero(wm.ravel() > 0.9)
    if draw["count"] == 0 or candidates.size == 0:
        return out
    centres = np.stack(np.unravel_index(rng.choice(candidates, draw["count"]), wm.shape), axis=1)
    for centre in centres:
        sigma = np.exp(rng.uniform(np.log(1.0), np.log(4.0))) * np.exp(rng.uniform(-0.3, 0.3, 3))
        reach = np.ceil(3 * sigma).astype(int)
        box = tuple(slice(max(c - r, 0), min(c + r + 1, n)) for c, r, n in zip(centre, reach, wm.shape))
        r2 = sum(((g - c) / s) ** 2 for g, c, s in zip(np.ogrid[box], centre, sigma))
        patch = np.clip(np.float32(rng.uniform(1.2, 2.0)) * np.exp(-0.5 * r2), 0, 1).astype(np.float32)
        out[box] = np.maximum(out[box], patch)
    return out * np.clip(wm * np.float32(1.25), 0, 1)


def _draw_leukoaraiosis(rng: np.random.Generator) -> dict:
    """Option ``leukoaraiosis``: whether the case has it (half of them), how far it spreads from
    the ventricles' lining (3-10 mm), the scale of its patches (15-40 mm) and how bright it is
    at full strength, per modality (a relative change of intensity: FLAIR and T2 +20 % to
    +70 %, T1 and T1ce -3 % to -15 %).  Every number is drawn, present or not."""
    present = bool(rng.random() < 0.5)
    extent, patch = float(rng.uniform(3.0, 10.0)), float(rng.uniform(15.0, 40.0))
    dark = float(rng.uniform(-0.15, -0.03))
    flair, t2 = (float(rng.uniform(0.2, 0.7)) for _ in range(2))
    return {"present": present, "extent_mm": extent, "patch_mm": patch,
            "gain": {"flair": flair, "t2": t2, "t1": dark, "t1ce": dark}}


def _leukoaraiosis_map(rng: np.random.Generator, anatomy: dict[str, np.ndarray], draw: dict) -> np.ndarray:
    """Strength 0..1 of the periventricular hyperintensity (option ``leukoaraiosis``) in the
    work box, float32 (1 mm voxels): the ventricles' white-matter lining blurred by
    ``extent_mm``, confluent (1) wherever the blurred lining reaches its median over the lining
    itself (where the lining is above 0.5), modulated by smooth patches (0.3 to 1) and kept to
    white matter.  All zero for a case without it (no draws then)."""
    lining = anatomy["lining"]
    if not draw["present"] or not (lining > 0.5).any():
        return np.zeros(lining.shape, np.float32)
    spread = ndi.gaussian_filter(lining, draw["extent_mm"], truncate=2.5)
    peak = max(float(np.median(spread[lining > 0.5])), 1e-6)
    spread = np.clip(spread * np.float32(1 / peak), 0, 1)
    patches = np.clip(np.float32(0.65) + np.float32(0.35) * smooth_noise(rng, lining.shape, draw["patch_mm"]), 0.3, 1)
    return (spread * patches * np.clip(anatomy["wm"] * np.float32(1.25), 0, 1)).astype(np.float32)


def _surface_map(rng: np.random.Generator, brain: np.ndarray, surface: dict) -> np.ndarray:
    """Strength 0..1 of the bright band under the brain's surface (option ``surface``), float32.

    ``brain``: brain fraction in the work box.  The band is where a Gaussian-blurred brain mask
    (sigma ``depth_mm``) falls below 1, cut into patches by smooth noise, with thin vessels
    (where two smooth fields both cross zero) along it.
    """
    inside = brain > 0.5
    band = np.clip(2 * (1 - ndi.gaussian_filter(inside.astype(np.float32), surface["depth_mm"], truncate=2.5)), 0, 1)
    # patches: where the unit-variance smooth noise exceeds its (1 - coverage) quantile
    noise = smooth_noise(rng, brain.shape, surface["patch_mm"])
    patch = _sigmoid(np.float32(4.0) * (noise - np.float32(ndtri(1 - surface["coverage"]))))
    return (band * np.clip(patch + _tubes(rng, brain.shape, 12.0, 0.1), 0, 1) * inside).astype(np.float32)


def _draw_appearance(rng: np.random.Generator) -> dict:
    """Per-modality scanner scale (intensity of white matter), bias strength, noise, contrast jitter.

    Also ``periventricular``: strength of the (unlabelled) FLAIR / T2 hyperintensity of the
    white matter lining the ventricles, common in patients of glioma age.
    """
    periventricular = float(rng.uniform(0.0, 0.6))
    return {
        m: {
            "white_matter": float(np.exp(rng.uniform(np.log(250), np.log(1200)))),
            "bias": float(rng.uniform(0.04, 0.14)),
            "noise": float(rng.uniform(0.025, 0.06)),
            "contrast_jitter": np.exp(rng.normal(0, 0.05, 3)).tolist(),
            "slice_blur_mm": float(rng.uniform(0.0, 1.2)) if m in ("flair", "t2") else 0.0,
            "periventricular": periventricular * {"flair": 1.0, "t2": 0.5}.get(m, 0.0),
        }
        for m in MODALITIES
    }


# --------------------------------------------------------------------------- anatomy


def _work_box(pose: dict, template: _Template, margin: int = 12) -> tuple[slice, ...]:
    """The part of the BraTS grid that can hold brain: the template's brain box, posed, plus a margin."""
    low, high = template.bbox
    grid = _to_grid(pose, template, np.array(list(itertools.product(*zip(low, high))), float))
    lo = np.maximum(np.floor(grid.min(0)) - margin, 0).astype(int)
    hi = np.minimum(np.ceil(grid.max(0)) + margin + 1, BRATS_SHAPE).astype(int)
    return tuple(slice(a, b) for a, b in zip(lo, hi))


def _sample_anatomy(rng: np.random.Generator, pose: dict, tumour: dict, box: tuple[slice, ...],
                    centre: np.ndarray, template: _Template, extra: dict | None = None) -> dict[str, np.ndarray]:
    """Warp the template into the box of the BraTS grid.

    Each grid voxel ``p`` reads the template at ``q = c_t + M^-1 (p + u(p) - c_g)``, where
    ``M`` is the pose and ``u`` the sum of a smooth random displacement (mm) and a radial
    mass effect that pushes tissue away from the tumour ``centre`` (grid voxels).

    Returns:
        float32 arrays of the box's shape: ``t1`` (template T1, WM ~1), ``gm``, ``wm``, ``csf``
        (tissue probabilities), ``brain`` (brain fraction, > 0.5 inside the brain) and
        ``lining`` (0..1, periventricular white matter); with ``extra`` (option ``anatomy``,
        :func:`_draw_anatomy`) the warp's size and scale come from it, CSF grows into the
        tissue next to it (atrophy) and ``vessels`` (0..1) is added.
    """
    shape = tuple(s.stop - s.start for s in box)
    axes = [np.arange(s.start, s.stop, dtype=np.float32) - np.float32(c) for s, c in zip(box, centre)]
    off = [a.reshape([-1 if i == k else 1 for k in range(3)]) for i, a in enumerate(axes)]  # p - centre
    r2 = off[0] ** 2 + off[1] ** 2 + off[2] ** 2
    sigma = 1.3 * float(np.mean(tumour["core_radii_mm"]))
    push = np.float32(1.0) - np.float32(tumour["mass_effect"]) * np.exp(r2 / np.float32(-2 * sigma**2))
    del r2
    minv = np.linalg.inv(_pose_matrix(pose)).astype(np.float32)
    base = (centre - _GRID_CENTRE - np.asarray(pose["shift_vox"])).astype(np.float32)
    warp_mm, warp_spacing = (2.0, 40.0) if extra is None else (extra["warp_mm"], extra["warp_spacing"])
    displacement = [np.float32(warp_mm) * np.clip(smooth_noise(rng, shape, warp_spacing), -3, 3) for _ in range(3)]  # mm
    warped = [off[a] * push + (base[a] + displacement[a]) for a in range(3)]
    del displacement
    coords = np.empty((3, *shape), np.float32)
    for a in range(3):  # q = c_t + M^-1 (p' - c_g)
        coords[a] = template.centre[a] + minv[a, 0] * warped[0] + minv[a, 1] * warped[1] + minv[a, 2] * warped[2]
    del warped, push
    # Sample only where brain may be (about 40 % of the box): look every 4th voxel first.
    coarse = ndi.map_coordinates(template.reach, coords[:, ::4, ::4, ::4], order=0) > 0
    coarse = ndi.binary_dilation(coarse, np.ones((3, 3, 3), bool))
    where = coarse.repeat(4, 0).repeat(4, 1).repeat(4, 2)[: shape[0], : shape[1], : shape[2]]
    points = coords[:, where]
    del coords

    def sample(name: str) -> np.ndarray:
        out = np.zeros(shape, np.float32)
        values = ndi.map_coordinates(getattr(template, name), points, order=1, mode="constant", output=np.float32)
        out[where] = values * np.float32(template.scale[name])
        return out

    out = {k: sample(k) for k in ("t1", "gm", "wm", "brain", "lining")}
    out["csf"] = np.clip(out["brain"] - out["gm"] - out["wm"], 0, 1)
    if extra is not None:
        # atrophy: CSF takes over part of the tissue next to it (sulci, ventricles widen)
        csf_blur = ndi.gaussian_filter(out["csf"], 1.5, truncate=2.5)
        grow = np.minimum(np.float32(extra["atrophy"]) * csf_blur, 1)
        keep = (1 - grow) * (out["gm"] + out["wm"] > 0)
        out["csf"] = np.clip(out["csf"] + grow * (out["gm"] + out["wm"]), 0, 1)
        out["gm"] *= keep
        out["wm"] *= keep
        out["t1"] *= 1 - grow * np.float32(0.6)
        # vessels: thin tubes where two smooth random fields both cross zero, in CSF and along the surface
        tube = _tubes(rng, shape, 14.0, 0.12)
        near_csf = np.clip(csf_blur * 2, 0, 1)
        out["vessels"] = (tube * near_csf * np.float32(extra["vessels"]) + np.float32(0.8) * out["lining"] * out["csf"]) * out["brain"]
    return out


# --------------------------------------------------------------------------- tumour


def _foci(tumour: dict, centre: np.ndarray) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(centre in grid voxels, core radii in mm, orientation in degrees) of the main tumour and
    its further foci (option ``glioma``)."""
    radii = np.asarray(tumour["core_radii_mm"])
    out = [(np.asarray(centre, float), radii, np.asarray(tumour["orientation_deg"]))]
    for f in tumour.get("foci", []):
        out.append((centre + np.asarray(f["offset_mm"]), radii * f["radius_factor"], np.asarray(f["orientation_deg"])))
    return out


def _tumour_box(centre: np.ndarray, tumour: dict, box: tuple[slice, ...]) -> tuple[slice, ...]:
    """Part of the work box that the tumour (oedema included) can reach, in box coordinates."""
    widen = 1.0 if "infiltration" not in tumour else 1.0 + 0.6 * tumour["infiltration"]
    lows, highs = [], []
    for c, radii, _ in _foci(tumour, centre):
        reach = 1.9 * radii.max() / radii.mean() * (radii.mean() + tumour["oedema_mm"] * widen) + 3
        lows.append(c - reach)
        highs.append(c + reach)
    low, high = np.min(lows, 0), np.max(highs, 0)
    out = []
    for s, lo_c, hi_c in zip(box, low, high):
        lo, hi = max(int(lo_c), s.start), min(int(hi_c) + 1, s.stop)
        lo = min(lo, s.stop - 1)
        out.append(slice(lo - s.start, max(hi, lo + 1) - s.start))
    return tuple(out)


def _grow_tumour(rng: np.random.Generator, tumour: dict, centre: np.ndarray, offset: np.ndarray,
                 wm: np.ndarray, csf: np.ndarray, brain: np.ndarray) -> dict[str, np.ndarray]:
    """Tumour regions in a box around the tumour.

    Args:
        centre: tumour centre, grid voxels; ``offset``: grid voxel of the box's first voxel.
        wm, csf, brain: white matter / CSF probability and brain fraction in the box, float32.

    Returns:
        ``seg`` (uint8 labels 0/1/2/4, hard geometric thresholds) and soft float32 maps for the
        images: ``core`` (necrosis + rim), ``ncr``, ``et`` (they sum to ``core``), ``oedema``
        (strength 0..1 of the oedema outside the core) and ``hetero`` (smooth noise, std 1).
    """
    shape = wm.shape
    glioma = "infiltration" in tumour  # option glioma
    radii = np.asarray(tumour["core_radii_mm"], np.float32)
    r_mean = float(radii.mean())
    radius = ed_radius = None
    for c, r, angles in _foci(tumour, centre):
        rot = _rotation(np.deg2rad(angles)).astype(np.float32)
        r = np.asarray(r, np.float32)
        axes = [np.arange(n, dtype=np.float32) + np.float32(o - cc) for n, o, cc in zip(shape, offset, c)]
        off = [a.reshape([-1 if i == k else 1 for k in range(3)]) for i, a in enumerate(axes)]
        local = [rot[a, 0] * off[0] + rot[a, 1] * off[1] + rot[a, 2] * off[2] for a in range(3)]  # tumour frame, mm
        rad = np.sqrt(sum((x / ri) ** 2 for x, ri in zip(local, r)))  # 1 on this focus' core ellipsoid
        del local
        ed = rad * np.float32(float(r.mean()) / (float(r.mean()) + tumour["oedema_mm"]))
        radius = rad if radius is None else np.minimum(radius, rad)
        ed_radius = ed if ed_radius is None else np.minimum(ed_radius, ed)
        del rad, ed
    # Core: irregular outline from smooth noise; soft version for the images (~1 mm edge).
    u_core = radius * _wobble(rng, shape, 12.0, 0.18)
    core = _sigmoid((1 - u_core) * np.float32(r_mean / 1.2)) * brain
    core_lbl = (u_core < 1) & (brain > 0.5)
    if tumour["has_enhancing"]:
        # Enhancing rim: thick (nodular) where the patch noise is high, absent where it is low.
        patch_noise = smooth_noise(rng, shape, 9.0)
        rim = np.float32(tumour["rim_mm"] / r_mean) * np.exp(np.float32(0.35) * np.clip(patch_noise, -2.5, 2.5))
        inner_edge = 1 - rim
        patch = _sigmoid(np.float32(3.0) * patch_noise + np.float32(tumour.get("patch_offset", 2.5)))
        et = np.clip(core - _sigmoid((inner_edge - u_core) * np.float32(r_mean / 1.2)) * brain, 0, 1) * patch
        et_lbl = core_lbl & (u_core >= inner_edge) & (patch > 0.5)
        del patch_noise, rim, inner_edge, patch
    else:
        et, et_lbl = np.zeros_like(core), np.zeros(shape, bool)
    # Oedema: larger irregular ellipsoid, reaching further in white matter, sparing CSF.
    wm_smooth = ndi.gaussian_filter(wm, 2.0)
    if glioma:  # infiltrating along white matter, with an irregular (finger-like) outline
        k = np.float32(tumour["infiltration"])
        u_ed = ed_radius * _wobble(rng, shape, 10.0, tumour["oedema_wobble"])
        u_ed /= (1 - k) * np.float32(0.85) + k * (np.float32(0.3) + np.float32(1.0) * ndi.gaussian_filter(wm, 1.0))
    else:
        u_ed = ed_radius * _wobble(rng, shape, 15.0, 0.22)
        u_ed /= np.float32(0.6) + np.float32(0.5) * wm_smooth
    ed_lbl = (u_ed < 1) & ~core_lbl & (csf < 0.5) & (brain > 0.5)
    # Oedema strength: strongest next to the core, fading over a few mm across the label's edge
    # (at ``oedema_edge`` 1, half strength just outside the label; option faint_edge: inside it).
    fade = np.float32(1.25) - np.float32(0.5) * np.minimum(u_ed, 1)
    edge = np.float32(tumour.get("oedema_edge", 1.0))
    oedema = _sigmoid((edge - u_ed) / np.float32(0.12) + np.float32(0.4)) * fade * (1 - csf) * brain * (1 - core)
    seg = np.zeros(shape, np.uint8)
    seg[ed_lbl] = 2
    seg[core_lbl] = 1
    seg[et_lbl] = 4
    out = {"seg": seg, "core": core, "et": et, "ncr": core - et, "oedema": oedema,
           "hetero": smooth_noise(rng, shape, 6.0)}
    if glioma:  # share of non-enhancing tumour (vs necrosis) in the core, a smooth pattern around net_share
        share = np.float32(tumour["net_share"])
        out["net_mix"] = np.clip(share + np.float32(0.35) * smooth_noise(rng, shape, 8.0), 0, 1)
    return out


# --------------------------------------------------------------------------- images


def _render(rng: np.random.Generator, modality: str, anatomy: dict[str, np.ndarray], tumour_maps: dict[str, np.ndarray],
            tbox: tuple[slice, ...], tumour: dict, look: dict) -> np.ndarray:
    """Intensity of one modality in the work box, float32 (white matter ~1), before noise and masking.

    Partial-volume mix of CSF / GM / WM intensities (T1 and T1ce also take half their
    detail from the template's T1), periventricular hyperintensity, then oedema (multiplies
    the normal tissue), necrosis and enhancing rim (replace it) with smooth heterogeneity, a
    slice-thickness blur for FLAIR and T2, and a smooth multiplicative bias field.
    """
    tissue = np.asarray(look["tissue"]) if "tissue" in look else _TISSUE[modality] * np.asarray(look["contrast_jitter"])
    img = (tissue[0] * anatomy["csf"] + tissue[1] * anatomy["gm"] + tissue[2] * anatomy["wm"]).astype(np.float32)
    if modality in ("t1", "t1ce"):
        detail = np.float32(look.get("t1_detail", 0.5))
        img = (1 - detail) * img + detail * anatomy["t1"]
    if look["periventricular"] > 0:
        img *= 1 + np.float32(look["periventricular"]) * anatomy["lining"]
    if "vessels" in anatomy:  # option anatomy: vessels and choroid plexus enhance on T1ce
        strength = {"t1ce": 1.6, "t1": 0.15, "flair": 0.1}.get(modality, -0.2)
        img *= 1 + np.float32(strength) * anatomy["vessels"]
    if "surface" in anatomy:  # option surface: dura, sinuses and vessels under the brain's edge
        img *= 1 + np.float32(look["surface_gain"]) * anatomy["surface"]
    if "wmh" in anatomy:  # option wmh: unlabelled white-matter hyperintensities
        img *= 1 + np.float32(look["wmh_gain"]) * anatomy["wmh"]
    if "leukoaraiosis" in anatomy:  # option leukoaraiosis: confluent periventricular hyperintensity
        img *= 1 + np.float32(look["leukoaraiosis_gain"]) * anatomy["leukoaraiosis"]
    if "tumour" in look:  # option contrast: this case's values
        oedema, ncr, net, et = look["tumour"]
        core_value = ncr if tumour["has_enhancing"] else net
        hetero_amount = look["hetero"]
    else:
        oedema, ncr, net, et = _TUMOUR[modality]
        core_value = (ncr if tumour["has_enhancing"] else net) * (1 + tumour["core_value_jitter"] * (modality == "flair"))
        hetero_amount = _HETERO[modality]
    et = look.get("et_value", et)  # option faint (T1ce)
    if "oedema_contrast" in look:  # option faint_oedema: the oedema closer to normal tissue
        oedema = 1 + (oedema - 1) * look["oedema_contrast"]
    if "tumour_contrast" in look:  # option subtle: every tumour value closer to white matter
        factor = look["tumour_contrast"]
        oedema, ncr, net, et, core_value = (1 + (v - 1) * factor for v in (oedema, ncr, net, et, core_value))
    t = tumour_maps
    hetero = np.exp(np.float32(hetero_amount) * t["hetero"])
    gain = 1 + t["oedema"] * np.float32(oedema - 1) * hetero**2  # oedema: more heterogeneous
    if "net_mix" in t:  # option glioma: necrosis and non-enhancing tumour mixed in the core
        core_value = np.float32(ncr) + (np.float32(net) - np.float32(ncr)) * t["net_mix"]
    sub = img[tbox]  # a view: the tumour's box
    sub[...] = (1 - t["core"]) * sub * gain + (t["ncr"] * np.float32(core_value) + t["et"] * np.float32(et)) * hetero
    if look.get("blur_mm", 0) > 0.3:
        img = ndi.gaussian_filter(img, (look["blur_mm"], look["blur_mm"], 0), truncate=3.0)
    if look["slice_blur_mm"] > 0:
        img = ndi.gaussian_filter1d(img, look["slice_blur_mm"], axis=2)
    img *= np.exp(np.float32(look["bias"]) * smooth_noise(rng, img.shape, look.get("bias_spacing", 70.0)))
    return img


def _finish(rng: np.random.Generator, img: np.ndarray, brain: np.ndarray, look: dict) -> np.ndarray:
    """Scale to scanner units, add Rician noise inside the brain, zero outside; int16 (box shape)."""
    white = np.float32(look["white_matter"])
    sigma = np.float32(look["noise"]) * white
    signal = img[brain] * white  # only brain voxels: background is exactly 0, as in BraTS
    real = signal + sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    imag = sigma * rng.standard_normal(signal.shape, dtype=np.float32)
    out = np.zeros(img.shape, np.int16)
    out[brain] = np.clip(np.rint(np.sqrt(real * real + imag * imag)), 1, 32767)
    return out


def synthesize_case(seed: int | np.random.SeedSequence, *, enhancing: bool | None = None,
                    options=None) -> SyntheticCase:
    """Generate one synthetic BraTS 2020 case in memory (no disk access but the template).

    Args:
        seed: an int or a ``np.random.SeedSequence``; the same seed gives the same arrays.
        enhancing: force an enhancing (HGG-like, labels 1/2/4) or non-enhancing (LGG-like,
            labels 1/2) tumour; by default drawn, with about 30 % non-enhancing.
        options: the generator's options (:func:`synth_options`); None: :data:`DEFAULT_OPTIONS`.

    Returns:
        A :class:`SyntheticCase`: four int16 images and a uint8 label map, all (240, 240, 155)
        in the BraTS 2020 grid (see the module docstring for orientation), and the draws.
    """
    opts = synth_options(options)
    rng = np.random.default_rng(seed)
    template = _template()
    pose = _draw_pose(rng)
    tumour = _draw_tumour(rng, template, enhancing)
    look = _draw_appearance(rng)
    # each option's draws come after the first generator's, so that with every option off
    # the bytes are those of bratslib-synth-1
    if opts["glioma"]:
        tumour = _draw_glioma(rng, tumour)
    if opts["contrast"]:
        look = _draw_contrast(rng, look)
    if opts["artefacts"]:
        look = _draw_artefacts(rng, look)
    extra = _draw_anatomy(rng) if opts["anatomy"] else None
    surface = _draw_surface(rng) if opts["surface"] else None
    if opts["sites"]:
        tumour = _draw_site(rng, template, tumour)
    if opts["faint"]:
        look = _draw_faint(rng, look)
    if opts["subtle"]:
        look = _draw_subtle(rng, look)
    if opts["faint_oedema"]:
        look = _draw_faint_oedema(rng, look)
    if opts["faint_edge"]:  # no draws: every byte but the oedema's intensity as without it
        tumour = {**tumour, "oedema_edge": FAINT_EDGE}
    centre = _to_grid(pose, template, np.asarray(tumour["site_template_vox"]))
    box = _work_box(pose, template)
    anatomy = _sample_anatomy(rng, pose, tumour, box, centre, template, extra)
    tbox = _tumour_box(centre, tumour, box)
    offset = np.array([s.start + t.start for s, t in zip(box, tbox)])
    maps = _grow_tumour(rng, tumour, centre, offset, *(anatomy[k][tbox] for k in ("wm", "csf", "brain")))
    if surface is not None:
        anatomy["surface"] = _surface_map(rng, anatomy["brain"], surface)
        look = {m: {**look[m], "surface_gain": surface["gain"][m]} for m in MODALITIES}
    wmh = _draw_wmh(rng) if opts["wmh"] else None
    if wmh is not None:  # drawn after every option but leukoaraiosis: with it off, the others' bytes stay
        anatomy["wmh"] = _wmh_map(rng, anatomy, wmh)
        look = {m: {**look[m], "wmh_gain": wmh["gain"][m]} for m in MODALITIES}
    leukoaraiosis = _draw_leukoaraiosis(rng) if opts["leukoaraiosis"] else None
    if leukoaraiosis is not None:  # drawn after wmh: with it off, every other option's bytes stay
        anatomy["leukoaraiosis"] = _leukoaraiosis_map(rng, anatomy, leukoaraiosis)
        look = {m: {**look[m], "leukoaraiosis_gain": leukoaraiosis["gain"][m]} for m in MODALITIES}
    brain = anatomy["brain"] > 0.5
    seg = np.zeros(BRATS_SHAPE, np.uint8)
    seg[box][tbox] = maps["seg"]
    full = {}
    for m in MODALITIES:
        full[m] = np.zeros(BRATS_SHAPE, np.int16)
        full[m][box] = _finish(rng, _render(rng, m, anatomy, maps, tbox, tumour, look[m]), brain, look[m])
    counts = np.bincount(seg.ravel(), minlength=5)
    params = {
        "options": sorted(k for k, on in opts.items() if on),
        "pose": pose,
        "tumour": tumour,
        "has_enhancing": tumour["has_enhancing"],
        "centre_vox": np.round(centre, 1).tolist(),
        "hemisphere": "left" if centre[0] > _GRID_CENTRE[0] else "right",  # i runs to the patient's left
        "appearance": look,
        **({"anatomy": extra} if extra is not None else {}),
        **({"surface": surface} if surface is not None else {}),
        **({"wmh": wmh} if wmh is not None else {}),
        **({"leukoaraiosis": leukoaraiosis} if leukoaraiosis is not None else {}),
        "voxels": {"brain": int(brain.sum()), "ncr": int(counts[1]), "oedema": int(counts[2]), "et": int(counts[4])},
    }
    return SyntheticCase(images=full, seg=seg, params=params)


# --------------------------------------------------------------------------- writing


def _nifti_bytes(data: np.ndarray, compress: bool) -> bytes:
    """A BraTS-like NIfTI-1 file (qform and sform code 1, mm units) as bytes; gzip with mtime 0."""
    img = nib.Nifti1Image(data, BRATS_AFFINE)
    img.header.set_data_dtype(data.dtype)
    img.header.set_qform(BRATS_AFFINE, code=1)
    img.header.set_sform(BRATS_AFFINE, code=1)
    img.header.set_xyzt_units("mm", "sec")
    img.header["descrip"] = b"bratslib synthetic BraTS 2020"
    raw = img.to_bytes()
    return gzip.compress(raw, compresslevel=1, mtime=0) if compress else raw


def _provenance(seed: int, n_cases: int, compress: bool, options: dict[str, bool]) -> dict:
    import scipy

    from bratslib import __version__

    return {
        "generator": "bratslib.data.synth",
        "generator_version": GENERATOR_VERSION,
        "options": sorted(k for k, on in options.items() if on),
        "seed": seed,
        "n_cases": n_cases,
        "compress": compress,
        "bratslib_version": __version__,
        "layout": "Kaggle BraTS 2020: " + str(TRAINING_DIR.as_posix()) + "/<case>/<case>_<modality>.nii",
        "case_seeds": f"numpy.random.SeedSequence({seed}).spawn({n_cases})[k] for case k+1",
        "template": TEMPLATE_CREDIT,
        "versions": {"numpy": np.__version__, "scipy": scipy.__version__, "nibabel": nib.__version__,
                     "python": platform.python_version()},
    }


_IDENTITY = ("generator_version", "options", "seed", "n_cases", "compress")


def _claim(out: Path, data_dir: Path, provenance: dict) -> None:
    """Write the provenance file, refusing a folder that holds a different data set."""
    path = out / PROVENANCE_FILE
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (OSError, ValueError) as e:
            raise FileExistsError(f"{path} exists but cannot be read ({e}); choose another folder or delete it") from e
        diff = {k: (old.get(k), provenance[k]) for k in _IDENTITY if old.get(k) != provenance[k]}
        if diff:
            detail = ", ".join(f"{k} {a!r} there, {b!r} asked" for k, (a, b) in diff.items())
            raise FileExistsError(f"{out} already holds a different synthetic data set ({detail}); "
                                  "choose another folder or delete it")
    elif data_dir.exists() and any(data_dir.iterdir()):
        raise FileExistsError(f"{data_dir} already holds files that bratslib did not write (no {PROVENANCE_FILE}); "
                              "choose another folder")
    data_dir.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, (json.dumps(provenance, indent=2) + "\n").encode())


def _write_case(data_dir: Path, k: int, seed: np.random.SeedSequence, suffix: str, opts, compress: bool) -> tuple[str, str]:
    """Write case ``k`` (0-based) unless its five files exist; returns ``(case_id, grade)``."""
    case_id = f"BraTS20_Training_{k + 1:03d}"
    folder = data_dir / case_id
    paths = {m: folder / f"{case_id}_{m}{suffix}" for m in (*MODALITIES, "seg")}
    if all(p.exists() for p in paths.values()):
        log.info("%s: complete, skipped", case_id)
        enhancing = bool((np.asarray(nib.load(paths["seg"]).dataobj) == 4).any())
    else:
        case = synthesize_case(seed, options=opts)
        folder.mkdir(exist_ok=True)
        for m, p in paths.items():
            write_bytes_atomic(p, _nifti_bytes(case.seg if m == "seg" else case.images[m], compress))
        enhancing = bool((case.seg == 4).any())
    return case_id, "HGG" if enhancing else "LGG"


def write_synthetic_dataset(out_dir: str | os.PathLike, n_cases: int, seed: int = 0, *,
                            compress: bool = False, progress: bool = True, options=None, workers: int = 1) -> Path:
    """Write ``n_cases`` synthetic cases in the layout of the Kaggle BraTS 2020 release.

    Case ``k`` (1-based, ``BraTS20_Training_{k:03d}``) is :func:`synthesize_case` of the
    ``k-1``-th child of ``np.random.SeedSequence(seed)``, so it does not depend on
    ``n_cases``.  Every file is written atomically (temporary name, then rename), so a file
    that exists is complete.  Running again with the same arguments resumes: cases whose five
    files exist are skipped.  A folder holding a different data set (other seed, ``n_cases``,
    ``compress`` or generator version in ``bratslib_synthetic.json``, or case files without
    that file) is refused.

    Args:
        out_dir: the folder to write into (created if needed).
        n_cases: number of cases (>= 1).
        seed: the data set's seed.
        compress: write ``.nii.gz`` (gzip, deterministic) instead of ``.nii``.
        progress: show a tqdm progress bar.
        options: the generator's options (:func:`synth_options`): None for the default
            (:data:`DEFAULT_OPTIONS`), ``()`` for the first generator; recorded in
            ``bratslib_synthetic.json``.
        workers: write that many cases at once, in worker processes (the bytes do not
            depend on it: each case has its own seed).

    Returns:
        The ``MICCAI_BraTS2020_TrainingData`` folder that holds the case folders.

    Raises:
        FileExistsError: ``out_dir`` holds a different data set.
    """
    if int(n_cases) < 1:
        raise ValueError(f"n_cases must be at least 1, got {n_cases}")
    n_cases, seed = int(n_cases), int(seed)
    out = Path(out_dir).expanduser()
    data_dir = out / TRAINING_DIR
    opts = synth_options(options)
    _claim(out, data_dir, _provenance(seed, n_cases, compress, opts))
    suffix = ".nii.gz" if compress else ".nii"
    seeds = np.random.SeedSequence(seed).spawn(n_cases)
    from tqdm import tqdm

    jobs = [(data_dir, k, seeds[k], suffix, opts, compress) for k in range(n_cases)]
    bar = functools.partial(tqdm, total=n_cases, desc="synthetic BraTS", unit="case", disable=not progress)
    if int(workers) > 1 and n_cases > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        # spawn, not fork: the caller may be a kernel with TensorFlow's threads running
        with ProcessPoolExecutor(min(int(workers), n_cases), mp_context=multiprocessing.get_context("spawn")) as pool:
            grades = list(bar(pool.map(_write_case, *zip(*jobs))))
    else:
        grades = [_write_case(*job) for job in bar(jobs)]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(NAME_MAPPING_COLUMNS)
    writer.writerows([grade, "NA", "NA", "NA", "NA", case_id] for case_id, grade in grades)
    write_bytes_atomic(data_dir / "name_mapping.csv", buf.getvalue().encode())
    return data_dir
