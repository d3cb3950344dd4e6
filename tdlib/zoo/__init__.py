"""Pretrained, claim-grade models trained by tdlib's own recipe (the zoo).

The zoo folder (``weights/`` of the checkout, or ``$TDLIB_ZOO``) holds one ``<name>.safetensors``
(tensors only: no pickle is ever loaded) and one ``<name>.json`` manifest per model. The plan of
what it holds and how each entry is trained is :data:`tdlib.zoo.plan.ZOO_PLAN`.

* :func:`load_pretrained` -- a model in eval mode, its weights' sha256 checked against the
  manifest first;
* ``python -m tdlib zoo list | verify | train`` -- list the entries, recompute every entry's
  full-test-set accuracy against its manifest, (re)train entries with their recorded recipe;
* ``torch.hub.load(<checkout>, "td_network", dataset=..., backbone=..., variant=...,
  pretrained=True, source="local")`` -- the same models through torch.hub (``hubconf.py``).
"""

from __future__ import annotations

from tdlib.zoo.manifest import ZooEntry, ZooError, read_entries, zoo_dir
from tdlib.zoo.plan import ZOO_PLAN, PlanEntry
from tdlib.zoo.registry import EvalResult, evaluate_entry, find_entry, load_entry, load_pretrained, verify

__all__ = [
    "ZOO_PLAN",
    "EvalResult",
    "PlanEntry",
    "ZooEntry",
    "ZooError",
    "evaluate_entry",
    "find_entry",
    "load_entry",
    "load_pretrained",
    "read_entries",
    "verify",
    "zoo_dir",
]
