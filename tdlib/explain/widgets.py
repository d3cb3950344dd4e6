"""A small ipywidgets browser of Grad-CAM maps (JupyterLab only; static book pages show a snapshot).

ipywidgets and matplotlib are imported when a browser is built, never on import of this module.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from tdlib.errors import InputShapeError
from tdlib.explain.gradcam import Normalisation, gradcam, resolve_stage, stage_names
from tdlib.explain.overlay import colorize, overlay

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = ["GradCamBrowser", "gradcam_browser"]

PREDICTED = -1


class GradCamBrowser:
    """Pick an image, a model, a stage and a class; see image, heatmap and overlay.

    Attributes:
        widget: the ``ipywidgets.VBox`` to display.
        index, model, stage, target: the control widgets.
        output: the ``ipywidgets.Output`` the figure is drawn into.
    """

    def __init__(
        self,
        models: Mapping[str, nn.Module],
        x: torch.Tensor,
        y: torch.Tensor | Sequence[int],
        class_names: Sequence[str],
        *,
        normalisation: Normalisation = "library",
        alpha: float = 0.5,
    ) -> None:
        """Build the controls (no computation yet; call :meth:`update` to draw).

        Args:
            models: label -> tdlib classifier.
            x: (N, C, H, W) images in [0, 1].
            y: (N,) true labels.
            class_names: name per class index.
            normalisation: Grad-CAM normalisation, ``"library"`` or ``"paper"``.
            alpha: overlay weight.
        """
        import ipywidgets as widgets

        if not models:
            raise InputShapeError("need at least one model")
        if x.ndim != 4 or len(y) != x.shape[0]:
            raise InputShapeError("need x (N, C, H, W) and one label per image")
        self.models = dict(models)
        self.x = x
        self.y = torch.as_tensor(y).reshape(-1).long()
        self.class_names = list(class_names)
        self.normalisation: Normalisation = normalisation
        self.alpha = alpha
        first = next(iter(self.models.values()))
        self.index = widgets.BoundedIntText(value=0, min=0, max=x.shape[0] - 1, description="image")
        self.model = widgets.Dropdown(options=list(self.models), description="model")
        self.stage = widgets.Dropdown(
            options=stage_names(first), value=resolve_stage(first)[0], description="stage"
        )
        options = [("predicted", PREDICTED), *((c, i) for i, c in enumerate(self.class_names))]
        self.target = widgets.Dropdown(options=options, value=PREDICTED, description="class")
        self.output = widgets.Output()
        self.model.observe(self._on_model, names="value")
        for w in (self.index, self.stage, self.target):
            w.observe(self.update, names="value")
        controls = widgets.HBox([self.index, self.model, self.stage, self.target])
        self.widget = widgets.VBox([controls, self.output])

    def _on_model(self, change: Any = None) -> None:
        net = self.models[self.model.value]
        names = stage_names(net)
        if tuple(self.stage.options) != names:
            with self.stage.hold_trait_notifications():
                keep = self.stage.value if self.stage.value in names else resolve_stage(net)[0]
                self.stage.options = names
                self.stage.value = keep
        self.update()

    def render(self) -> Figure:
        """Compute the current selection's map and return the figure (image, heatmap, overlay)."""
        from matplotlib.figure import Figure

        net = self.models[self.model.value]
        i = int(self.index.value)
        xi = self.x[i : i + 1]
        was_training = net.training
        net.eval()
        try:
            with torch.no_grad():
                device = next(net.parameters()).device
                prob = net(xi.to(device)).softmax(1)[0].cpu()
        finally:
            net.train(was_training)
        pred = int(prob.argmax())
        cls = pred if self.target.value == PREDICTED else int(self.target.value)
        cam = gradcam(
            net, xi, stage=self.stage.value, targets=[cls], normalisation=self.normalisation
        )[0]
        fig = Figure(figsize=(7.5, 2.8))
        axes = fig.subplots(1, 3)
        img = xi[0].detach().float().cpu().clamp(0, 1)
        panels = [img.expand(3, -1, -1), colorize(cam), overlay(img, cam, alpha=self.alpha)]
        label = int(self.y[i])
        names = ["image", f"Grad-CAM {self.stage.value}", f"class {self._name(cls)}"]
        for ax, panel, name in zip(axes, panels, names, strict=True):
            ax.imshow(panel.permute(1, 2, 0).numpy())
            ax.set_title(name, fontsize=9)
            ax.set_axis_off()
        fig.suptitle(
            f"{self.model.value}: true {self._name(label)}, predicted {self._name(pred)} "
            f"(p={prob[pred]:.2f})",
            fontsize=9,
        )
        return fig

    def _name(self, k: int) -> str:
        return self.class_names[k] if 0 <= k < len(self.class_names) else str(k)

    def update(self, change: Any = None) -> None:
        """Redraw the output for the current selection (the widgets' observer)."""
        from IPython.display import display

        fig = self.render()
        with self.output:
            self.output.clear_output(wait=True)
            display(fig)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def gradcam_browser(
    models: Mapping[str, nn.Module],
    x: torch.Tensor,
    y: torch.Tensor | Sequence[int],
    class_names: Sequence[str],
    *,
    normalisation: Normalisation = "library",
    alpha: float = 0.5,
) -> GradCamBrowser:
    """Build a :class:`GradCamBrowser` and draw its first view; display the returned object.

    Args:
        models: label -> tdlib classifier (e.g. ``{"BU": bu, "TD": td}``).
        x: (N, C, H, W) images in [0, 1].
        y: (N,) true labels.
        class_names: name per class index.
        normalisation: Grad-CAM normalisation, ``"library"`` or ``"paper"``.
        alpha: overlay weight.

    Returns:
        The browser; its ``widget`` attribute is the ipywidgets container.
    """
    browser = GradCamBrowser(models, x, y, class_names, normalisation=normalisation, alpha=alpha)
    browser.update()
    return browser
