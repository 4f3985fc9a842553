"""Embedded datasets: the UCI optical digits (8x8 images of handwritten digits).

The data ship inside the package (``thermodiff/data/digits.npz``, 45 kB, with its license and
provenance in ``thermodiff/data/LICENSE-digits.txt``), so loading never touches the network. It
is the default dataset of the command line and the notebooks: a real finite dataset (theory
section 3.2) small enough to analyse exactly on a laptop, with N = 1797 points in d = 64.
``load_digits_upsampled`` resamples them to an MNIST-shaped 28 x 28 (d = 784) stand-in (or any
size up to 128 x 128) for testing how an analysis scales with the dimension.

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


def _check_options(normalize, dtype) -> np.dtype:
    if not isinstance(normalize, str) or normalize not in _NORMALIZE:
        raise ValueError(f"normalize must be one of {_NORMALIZE}, got {normalize!r}")
    dtype = np.dtype(dtype)
    if not np.issubdtype(dtype, np.floating):
        raise ValueError(f"dtype must be a floating dtype (e.g. float64 or float32), got {dtype}")
    return dtype


def _normalized(x: np.ndarray, normalize: str) -> np.ndarray:
    """Pixels 0..16 as they are, divided by 16 ("unit"), or standardised per feature."""
    if normalize == "unit":
        return x / 16.0
    if normalize == "standardize":
        std = x.std(axis=0)
        return (x - x.mean(axis=0)) / np.where(std > 0, std, 1.0)
    return x


def load_digits(normalize: str = "none", *, dtype=np.float64) -> tuple[np.ndarray, np.ndarray]:
    """The UCI optical digits: 1797 images of 8x8 pixels (d = 64) with labels 0..9.

    Each pixel counts the "on" pixels of a 4x4 block of a 32x32 bitmap, an integer in 0..16.
    Class counts for the digits 0..9: 178, 182, 177, 183, 181, 182, 181, 179, 174, 180. The data
    are embedded in the package (no network access) and identical to scikit-learn's
    ``load_digits`` (the UCI test set, Alpaydin & Kaynak 1998, CC BY 4.0; see
    ``thermodiff/data/LICENSE-digits.txt``). Use them as a finite dataset (theory section 3.2):
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
    dtype = _check_options(normalize, dtype)
    raw, labels = _raw_digits()
    x = raw.astype(np.float64)
    x = _normalized(x, normalize)
    return x.astype(dtype), labels.astype(np.int64)


def _bilinear_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) bilinear resampling weights with half-pixel centres: output pixel j samples
    the input at x = (j + 1/2) n_in / n_out - 1/2, clamped to [0, n_in - 1] (edge pixels
    replicated). Each row is a convex combination of at most two neighbours (it sums to 1)."""
    x = (np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5
    x = np.clip(x, 0.0, n_in - 1.0)
    i0 = np.minimum(np.floor(x).astype(np.int64), n_in - 1)
    i1 = np.minimum(i0 + 1, n_in - 1)
    f = x - i0
    R = np.zeros((n_out, n_in))
    np.add.at(R, (np.arange(n_out), i0), 1.0 - f)
    np.add.at(R, (np.arange(n_out), i1), f)
    return R


def load_digits_upsampled(
    size: int = 28, normalize: str = "none", *, dtype=np.float64
) -> tuple[np.ndarray, np.ndarray]:
    """The UCI digits bilinearly upsampled to ``size`` x ``size`` pixels: an MNIST-SHAPED stand-in.

    At the default ``size = 28`` the images have MNIST's shape (d = 784) but they are NOT MNIST:
    they are the 1797 embedded 8x8 digits of ``load_digits`` (same order, same labels) resampled
    by separable bilinear interpolation with half-pixel centres (the convention of common image
    resizers; edge pixels replicated), implemented in NumPy, deterministic. Their information
    content is that of the 8x8 originals: the covariance has rank <= 64 (the resampling is a
    linear map of rank 64), so they test the scaling of an analysis with d, not its behaviour on
    richer images. Bilinear weights are convex, so the raw values stay in 0..16 (no overshoot),
    now real-valued. ``size = 8`` returns the original images.

    **Arguments:**
    - ``size``: output side length, an integer in [8, 128] (d = size^2; 28 gives d = 784, 64
      gives d = 4096).
    - ``normalize``: as ``load_digits``, applied after resampling: ``"none"`` (default, raw
      0..16), ``"unit"`` (divided by 16, in [0, 1]) or ``"standardize"`` (each of the size^2
      features to mean 0 and population standard deviation 1; constant features stay 0).
    - ``dtype``: floating dtype of the images (default float64).

    **Returns:** ``(images, labels)``: arrays of shape (1797, size^2) with dtype ``dtype`` (row
    ``i`` reshaped to (size, size) is the image, row-major) and (1797,) int64 labels 0..9,
    identical to ``load_digits()[1]``. Fresh arrays on every call.

    Reference: the data as in ``load_digits`` (Alpaydin & Kaynak 1998, UCI, CC BY 4.0).
    """
    if isinstance(size, (bool, np.bool_)) or not isinstance(size, (int, np.integer)) or not 8 <= size <= 128:
        raise ValueError(f"size must be an integer in [8, 128] (the output side length), got {size!r}")
    dtype = _check_options(normalize, dtype)
    raw, labels = _raw_digits()
    size = int(size)
    R = _bilinear_matrix(8, size)
    imgs = raw.astype(np.float64).reshape(-1, 8, 8)
    x = np.einsum("ia,nab,jb->nij", R, imgs, R, optimize=True).reshape(-1, size * size)
    x = np.clip(x, 0.0, 16.0)  # rounding only: the weights are convex
    if normalize == "unit":
        x = x / 16.0
    elif normalize == "standardize":
        std = x.std(axis=0)
        x = (x - x.mean(axis=0)) / np.where(std > 1e-12, std, 1.0)
        x[:, std <= 1e-12] = 0.0
    return x.astype(dtype), labels.astype(np.int64)


__all__ = ["load_digits", "load_digits_upsampled"]
