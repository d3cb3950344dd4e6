"""tdlib.names: the one vocabulary every layer uses."""

from __future__ import annotations


def test_one_vocabulary() -> None:
    """Every layer uses the names of tdlib.names (one definition each)."""
    from tdlib import config, names
    from tdlib.models import layers, pyramid, spec

    assert set(spec.SPECS) == set(names.BACKBONES)
    assert config.DATASETS is names.DATASETS and config.PROTOCOLS is names.PROTOCOLS
    assert layers.MERGES is names.MERGES and pyramid.PYRAMIDS is names.PYRAMIDS
    assert spec.VARIANTS is names.VARIANTS and spec.BACKBONES is names.BACKBONES
    from tdlib.attacks import registry

    assert tuple(registry.REGISTRIES) == names.PROTOCOLS  # one registry per protocol
    assert set(registry.PAPER) == set(registry.MINIMAL) == set(names.ATTACKS)
    # the paper profile attacks with the paper's ten, and the sweep's paper extras name them the same way
    assert config.get_profile("paper").exp2_attacks is names.PAPER_ATTACKS
    from tdlib import sweep

    extras = [p for sets in sweep.PAPER_EXTRAS.values() for p in sets]
    assert all(p["ATTACKS"] == list(names.PAPER_ATTACKS) for p in extras if "ATTACKS" in p)
    assert all(p["VARIANTS"] == list(names.VARIANTS) for p in extras if "VARIANTS" in p)
