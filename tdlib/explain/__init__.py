"""Explainability: Grad-CAM maps, localisation and faithfulness scores, overlays and plots.

Importing this package is cheap and has no side effects: pytorch_grad_cam is imported inside the
functions that need it. Plots of maps live in :mod:`tdlib.plots` and the JupyterLab browser in
:mod:`tdlib.widgets`.
"""

from __future__ import annotations

from tdlib.explain.faithfulness import road_score, road_scores
from tdlib.explain.gradcam import (
    NORMALISATIONS,
    OUTPUTS,
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
    localization_per_image,
    localization_scores,
    pointing_game,
)
from tdlib.explain.overlay import colorize, overlay

__all__ = [
    "NORMALISATIONS",
    "OUTPUTS",
    "GradCamExplainer",
    "colorize",
    "energy_on_object",
    "foreground_mask",
    "gradcam",
    "localization_per_image",
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
