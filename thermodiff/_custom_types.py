"""Type aliases used across thermodiff (one place, as in diffrax/_custom_types.py)."""

from typing import Union

import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

RealScalarLike = Union[float, int, np.floating, Float[ArrayLike, ""]]
Scalar = Float[Array, ""]
Vector = Float[Array, " d"]
Matrix = Float[Array, "d d"]
Key = PRNGKeyArray

__all__ = ["Array", "ArrayLike", "Float", "Key", "Matrix", "RealScalarLike", "Scalar", "Vector"]
