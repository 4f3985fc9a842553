"""The embedded UCI optical digits (thermodiff/data/digits.npz).

Checks: shape and dtypes, labels 0..9 with the known class counts, integer pixel values 0..16,
checksums of the stored arrays (identical to scikit-learn's digits.csv.gz), the three scalings,
fresh arrays per call, the package data files (size, license), bad input.
"""

import hashlib
from importlib import resources

import numpy as np
import pytest

from thermodiff._data import load_digits

# sha256 of the uint8 images (1797 x 64, C order) and labels as extracted from scikit-learn
# 1.9.1's sklearn/datasets/data/digits.csv.gz (that file's sha256: 09f66e6d...aa22)
_IMAGES_SHA256 = "8f26b2bd9d135c256808f68f14fdabddde6d9c7f869ae419704b051f0f14b3b3"
_LABELS_SHA256 = "8ba4f891220f5e4c9c819638d1602d74b83618f167043c6da52a2a247841ddf0"
_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]


def test_digits_shape_labels_values_checksum():
    X, y = load_digits()
    assert X.shape == (1797, 64) and X.dtype == np.float64
    assert y.shape == (1797,) and y.dtype == np.int64
    np.testing.assert_array_equal(np.bincount(y, minlength=10), _COUNTS)
    assert set(np.unique(y)) == set(range(10))
    assert X.min() == 0.0 and X.max() == 16.0
    np.testing.assert_array_equal(X, np.round(X))  # integer pixel counts
    assert hashlib.sha256(X.astype(np.uint8).tobytes()).hexdigest() == _IMAGES_SHA256
    assert hashlib.sha256(y.astype(np.uint8).tobytes()).hexdigest() == _LABELS_SHA256
    assert int(X.sum()) == 561718
    # first image (a zero, as in scikit-learn's documentation) and its label
    np.testing.assert_array_equal(X[0, :8], [0, 0, 5, 13, 9, 1, 0, 0])
    assert y[:10].tolist() == list(range(10))


def test_digits_normalizations():
    raw, y = load_digits("none")
    unit, y2 = load_digits("unit")
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_allclose(unit, raw / 16.0, rtol=0, atol=0)
    assert unit.min() == 0.0 and unit.max() == 1.0
    std, _ = load_digits("standardize")
    sd = raw.std(axis=0)
    const = sd == 0
    assert const.sum() == 3  # three pixels are 0 in every image
    np.testing.assert_array_equal(std[:, const], 0.0)
    np.testing.assert_allclose(std.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(std[:, ~const].std(axis=0), 1.0, rtol=1e-12)
    f32, _ = load_digits("unit", dtype=np.float32)
    assert f32.dtype == np.float32
    np.testing.assert_allclose(f32, unit, rtol=1e-7)


def test_digits_fresh_arrays():
    X, y = load_digits()
    X[:] = -1.0
    y[:] = 99
    X2, y2 = load_digits()
    assert X2.min() == 0.0 and y2.max() == 9


def test_digits_package_data():
    data = resources.files("thermodiff").joinpath("data")
    npz = data.joinpath("digits.npz")
    assert npz.is_file()
    assert len(npz.read_bytes()) < 100_000
    text = data.joinpath("LICENSE-digits.txt").read_text()
    assert "CC BY 4.0" in text and "Alpaydin" in text and "Kaynak" in text
    assert "10.24432/C50P49" in text


def test_digits_bad_input():
    with pytest.raises(ValueError, match="normalize"):
        load_digits("minmax")
    with pytest.raises(ValueError, match="normalize"):
        load_digits(None)
    with pytest.raises(ValueError, match="dtype must be a floating dtype"):
        load_digits(dtype=np.int32)
