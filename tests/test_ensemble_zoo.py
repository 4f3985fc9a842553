"""The shared ensemble zoo (tests/_ensemble_zoo.py) covers every exported ensemble and fails loudly."""

import inspect

import pytest

import thermodiff as td
from _ensemble_zoo import ZooError, zoo


def _exported_concrete_ensembles():
    out = set()
    for name in td.__all__:
        obj = getattr(td, name)
        if (isinstance(obj, type) and issubclass(obj, td.AbstractEnsemble) and not inspect.isabstract(obj)
                and not name.startswith("Abstract")):
            out.add(obj)
    return out


def test_zoo_covers_every_exported_ensemble():
    exported = _exported_concrete_ensembles()
    # the five ensembles of theory section 3 at least (guards the discovery itself)
    assert {td.TwoDeltas, td.FiniteDataset, td.GaussianMixture, td.Hypersphere, td.CurieWeiss} <= exported
    covered = {type(ens) for ens, _ in zoo().values()}
    missing = sorted(c.__name__ for c in exported - covered)
    assert not missing, f"ensembles exported by thermodiff but missing from tests/_ensemble_zoo.py: {missing}"


def test_zoo_fails_loudly_naming_the_ensemble(monkeypatch):
    def broken(*args, **kwargs):
        raise ImportError("simulated: the module stopped importing")

    monkeypatch.setattr(td, "Hypersphere", broken)
    with pytest.raises(ZooError, match="ensemble zoo: 'hypersphere_3d' failed to import or construct: ImportError"):
        zoo()
