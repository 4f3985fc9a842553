"""Exact data ensembles (theory section 3). Implementation package; the public face is thermodiff."""
from ._certified import CertifiedDataset as CertifiedDataset  # noqa: F401
