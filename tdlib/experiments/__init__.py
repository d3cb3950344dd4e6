"""Experiment-level helpers the notebooks and the CLI call in one line each.

* :mod:`tdlib.experiments.classification`: Exp 1 (BU vs TD accuracy).
* :mod:`tdlib.experiments.robustness`: Exp 2 (attacks, per-scale perturbation).
* :mod:`tdlib.experiments.explain`: Exp 3 (Grad-CAM localisation, Imagenette).
* :mod:`tdlib.experiments.claims`: the paper's numbers and the claims table.
"""
