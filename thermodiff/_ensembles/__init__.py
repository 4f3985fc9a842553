"""Exact data ensembles (SPEC section 3). Implementation package; the public face is thermodiff."""
