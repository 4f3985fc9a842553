"""Embedded datasets: the UCI optical digits (8x8 images of handwritten digits).

The data ship inside the package (``thermodiff/data/digits.npz``, 45 kB, with its license and
provenance in ``thermodiff/data/LICENSE-digits.txt``), so loading never touches the network. It
is the default dataset of the command line and the notebooks: a real finite dataset (SPEC
section 3.2) small enough to analyse exactly on a laptop, with N = 1797 points in d = 64.

Reference: E. Alpaydin and C. Kaynak (1998), "Optical Recognition of Handwritten Digits", UCI
Machine Learning Repository, https://doi.org/10.24432/C50P49 (CC BY 4.0); the copy is the one
distributed by scikit-learn (``sklearn.datasets.load_digits``), values unchanged.
"""

from __future__ import annotations

import functools
from importlib import resources

import numpy as np

_NORMALIZE = ("none", "unit", "standardize")


@functools.lru_cache(maxsize=1)
def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    ref = resources.files("thermodiff").joinpath("data", "digits.npz")
    try:
        with resources.as_file(ref) as path, np.load(path) as f:
            images, labels = f["images"], f["labels"]
    except (OSError, KeyError, ValueError) as err:  # pragma: no cover - a broken installation
        raise OSError(
            "the embedded digits data (thermodiff/data/digits.npz) could not be read; "
            "reinstall thermodiff (the wheel must include its package data)"
        ) from err
    if images.shape != (1797, 64) or labels.shape != (1797,):  # pragma: no cover
        raise OSError(f"thermodiff/data/digits.npz is corrupt: shapes {images.shape}, {labels.shape}")
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def load_digits(normalize: str = "none", *, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The UCI optical digits: 1797 images of 8x8 pixels (d = 64) with labels 0..9.

    Each pixel counts the "on" pixels of a 4x4 block of a 32x32 bitmap, an integer in 0..16.
    Class counts for the digits 0..9: 178, 182, 177, 183, 181, 182, 181, 179, 174, 180. The data
    are embedded in the package (no network access) and identical to scikit-learn's
    ``load_digits`` (the UCI test set, Alpaydin & Kaynak 1998, CC BY 4.0; see
    ``thermodiff/data/LICENSE-digits.txt``). Use them as a finite dataset (SPEC section 3.2):
    ``td.FiniteDataset(load_digits("unit")[0])``.

    **Arguments:**
    - ``normalize``: how to scale the pixels.
      ``"none"`` (default): the raw counts 0..16 as floats;
      ``"unit"``: divided by 16, so values lie in [0, 1];
      ``"standardize"``: each of the 64 features shifted to mean 0 and scaled to standard
      deviation 1 over the 1797 images (population standard deviation, ``ddof=0``); the pixels
      that are 0 in every image (three of them) stay 0.
    - ``dtype``: floating dtype of the images (default float64; float32 for JAX without x64).

    **Returns:** ``(images, labels)``: NumPy arrays of shape (1797, 64) with dtype ``dtype`` (row
    ``i`` reshaped to (8, 8) is the image, row-major) and (1797,) int64 with values 0..9.
    Fresh arrays on every call (safe to modify).
    """
    if not isinstance(normalize, str) or normalize not in _NORMALIZE:
        raise ValueError(f"normalize must be one of {_NORMALIZE}, got {normalize!r}")
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"dtype must be a floating dtype (e.g. float64 or float32), got {dtype}")
    raw, labels = _raw_digits()
    x = raw.astype(np.float64)
    if normalize == "unit":
        x = x / 16.0
    elif normalize == "standardize":
        std = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return x.astype(dtype), labels.astype(np.int64)


__all__ = ["load_digits"]
