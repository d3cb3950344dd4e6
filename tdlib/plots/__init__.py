"""Plot primitives for the notebooks: data in, figure out (nothing is shown or saved here).

* :mod:`tdlib.plots.charts` -- interactive plotly charts (learning curves, the paper's robustness
  figure, bars, the forest plot of the claims);
* :mod:`tdlib.plots.images` -- matplotlib image grids (examples, Grad-CAM maps in the layout of
  the supplement's Figure 5).
"""

from __future__ import annotations

from tdlib.plots.charts import (
    COLORS,
    accuracy_bars,
    architecture_profile,
    forest_plot,
    grouped_bars,
    heatmaps,
    learning_curves,
    robustness_curves,
)
from tdlib.plots.images import image_rows, plot_cam, plot_cam_grid

__all__ = [
    "COLORS",
    "accuracy_bars",
    "architecture_profile",
    "forest_plot",
    "grouped_bars",
    "heatmaps",
    "image_rows",
    "learning_curves",
    "plot_cam",
    "plot_cam_grid",
    "robustness_curves",
]
