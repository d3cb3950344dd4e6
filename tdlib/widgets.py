"""ipywidgets browsers for JupyterLab (the static book shows a snapshot of their first view).

* :class:`AdversarialExplorer` -- pick a model, an attack and an image; see the original, the
  adversarial, their difference and both predictions (Exp 2).
* :class:`GradCamBrowser` -- pick an image, a model, a stage and a class; see the image, the
  Grad-CAM map and the overlay (Exp 3).

Both build their controls in ``widget``, draw into an ``ipywidgets.Output`` with ``update()`` and
return matplotlib figures from ``render()``. ipywidgets and matplotlib are imported when a browser
is built, never on import of this module.
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

    from tdlib.experiments.robustness import RobustnessRun

__all__ = ["AdversarialExplorer", "GradCamBrowser", "adversarial_explorer", "gradcam_browser"]


def _show(output: Any, fig: Any) -> None:
    from IPython.display import display

    with output:
        output.clear_output(wait=True)
        display(fig)


class AdversarialExplorer:
    """Pick model, attack and sample; see original, adversarial, difference and predictions.

    Attributes:
        widget: the ``ipywidgets.VBox`` to display.
        model, attack, sample: the control widgets.
        output: the ``ipywidgets.Output`` the figure is drawn into.
    """

    def __init__(self, runs: Sequence[RobustnessRun],
                 class_names: Mapping[str, Sequence[str]] | None = None) -> None:
        import ipywidgets as widgets

        if not runs:
            raise InputShapeError("need at least one attacked model")
        self.runs = {f"{r.provided.ref.dataset} · {r.label}": r for r in runs}
        self.class_names = dict(class_names or {})
        first = next(iter(self.runs.values()))
        self.model = widgets.Dropdown(options=list(self.runs), description="model")
        self.attack = widgets.Dropdown(options=list(first.results), description="attack")
        self.sample = widgets.IntSlider(min=0, max=max(len(first.y) - 1, 0), value=0,
                                        description="sample")
        self.output = widgets.Output()
        self.model.observe(self._on_model, names="value")
        for w in (self.attack, self.sample):
            w.observe(self.update, names="value")
        self.widget = widgets.VBox([widgets.HBox([self.model, self.attack, self.sample]), self.output])

    def _on_model(self, change: Any = None) -> None:
        run = self.runs[self.model.value]
        with self.attack.hold_trait_notifications(), self.sample.hold_trait_notifications():
            if list(self.attack.options) != list(run.results):
                self.attack.options = list(run.results)
            self.sample.max = max(len(run.y) - 1, 0)
        self.update()

    def render(self) -> Figure:
        """The current selection as a figure (original, adversarial, difference)."""
        from matplotlib.figure import Figure

        run = self.runs[self.model.value]
        attack = self.attack.value if self.attack.value in run.results else next(iter(run.results))
        res = run.results[attack]
        i = min(int(self.sample.value), len(run.y) - 1)
        x, xa = run.x[i : i + 1], res.x_adv[i : i + 1]
        model = run.model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            p_clean = int(model(x.to(device)).argmax(1))
            p_adv = int(model(xa.to(device)).argmax(1))
        names = self.class_names.get(run.provided.ref.dataset)

        def lab(k: int) -> str:
            return str(names[k]) if names else str(k)

        fig = Figure(figsize=(7, 2.6))
        axes = fig.subplots(1, 3)
        for ax, img, title in ((axes[0], x[0], f"original: {lab(p_clean)} (true {lab(int(run.y[i]))})"),
                               (axes[1], xa[0], f"{attack}: {lab(p_adv)}")):
            ax.imshow(img.permute(1, 2, 0).squeeze().numpy(), cmap="gray" if img.shape[0] == 1 else None,
                      vmin=0, vmax=1)
            ax.set_title(title, fontsize=8)
        d = (xa[0] - x[0]).mean(0).numpy()
        lim = max(float(abs(d).max()), 1e-6)
        axes[2].imshow(d, cmap="seismic", vmin=-lim, vmax=lim)
        axes[2].set_title(f"difference, L2 = {float(res.l2[i]):.2f}", fontsize=8)
        for ax in axes:
            ax.axis("off")
        fig.tight_layout()
        return fig

    def update(self, change: Any = None) -> None:
        """Redraw the output for the current selection (the widgets' observer)."""
        _show(self.output, self.render())

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget)


def adversarial_explorer(runs: Sequence[RobustnessRun],
                         class_names: Mapping[str, Sequence[str]] | None = None) -> AdversarialExplorer:
    """Build an :class:`AdversarialExplorer` and draw its first view; display the returned object."""
    explorer = AdversarialExplorer(runs, class_names)
    explorer.update()
    return explorer


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
        _show(self.output, self.render())

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
