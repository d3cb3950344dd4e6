"""Explainability: Grad-CAM maps, localisation and faithfulness scores, overlays and plots.

Importing this package is cheap and has no side effects: pytorch_grad_cam, matplotlib and
ipywidgets are imported inside the functions that need them. Plots live in
:mod:`tdlib.explain.plots` and the notebook browser in :mod:`tdlib.explain.widgets`.
"""

from __future__ import annotations

from tdlib.explain.faithfulness import road_score, road_scores
from tdlib.explain.gradcam import (
    NORMALISATIONS,
    GradCamExplainer,
    gradcam,
    paper_gradcam,
    paper_normalise,
    resolve_stage,
    stage_names,
)
from tdlib.explain.localization import (
    energy_on_object,
    foreground_mask,
    localization_scores,
    pointing_game,
)
from tdlib.explain.overlay import colorize, overlay

__all__ = [
    "NORMALISATIONS",
    "GradCamExplainer",
    "colorize",
    "energy_on_object",
    "foreground_mask",
    "gradcam",
    "localization_scores",
    "overlay",
    "paper_gradcam",
    "paper_normalise",
    "pointing_game",
    "resolve_stage",
    "road_score",
    "road_scores",
    "stage_names",
]
