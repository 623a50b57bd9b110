"""bratslib: the library behind the brats-book.

Data flows one way: ``data`` (BraTS cases on disk, synthetic BraTS, preprocessing and
generators) -> ``models`` -> ``training`` -> ``evaluate`` -> ``results`` -> the book.

Importing ``bratslib`` or ``bratslib.data`` does not import TensorFlow; only the Keras
generators, models, losses and training do.
"""

__version__ = "0.1.0"
