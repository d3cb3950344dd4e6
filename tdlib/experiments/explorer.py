"""An ipywidgets explorer of adversarial examples (JupyterLab; a static snapshot in the book)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from tdlib.experiments.robustness import RobustnessRun


class AdversarialExplorer:
    """Pick dataset, model, attack and sample; see original, adversarial, difference, predictions."""

    def __init__(self, runs: Sequence[RobustnessRun], class_names: dict[str, Sequence[str]] | None = None) -> None:
        import ipywidgets as w

        self.runs = {f"{r.model_run.config.data.dataset} · {r.label}": r for r in runs}
        self.class_names = class_names or {}
        first = next(iter(self.runs.values()))
        self.model_w = w.Dropdown(options=list(self.runs), description="model")
        self.attack_w = w.Dropdown(options=list(first.results), description="attack")
        self.sample_w = w.IntSlider(min=0, max=len(first.y) - 1, value=0, description="sample")
        self.out = w.Output()
        for widget in (self.model_w, self.attack_w, self.sample_w):
            widget.observe(lambda _change: self.update(), names="value")
        self.widget = w.VBox([w.HBox([self.model_w, self.attack_w, self.sample_w]), self.out])

    def render(self) -> Any:
        """The current figure (matplotlib)."""
        import matplotlib.pyplot as plt

        run = self.runs[self.model_w.value]
        attack = self.attack_w.value if self.attack_w.value in run.results else next(iter(run.results))
        res = run.results[attack]
        i = min(self.sample_w.value, len(run.y) - 1)
        x, xa = run.x[i : i + 1], res.x_adv[i : i + 1]
        model = run.model_run.model.eval()
        device = next(model.parameters()).device
        with torch.no_grad():
            p_clean = int(model(x.to(device)).argmax(1))
            p_adv = int(model(xa.to(device)).argmax(1))
        names = self.class_names.get(run.model_run.config.data.dataset)

        def lab(k: int) -> str:
            return names[k] if names else str(k)

        fig, axes = plt.subplots(1, 3, figsize=(7, 2.6))
        for ax, img, title in ((axes[0], x[0], f"original: {lab(p_clean)} (true {lab(int(run.y[i]))})"),
                               (axes[1], xa[0], f"{attack}: {lab(p_adv)}")):
            ax.imshow(img.permute(1, 2, 0).squeeze().numpy(), cmap="gray" if img.shape[0] == 1 else None,
                      vmin=0, vmax=1)
            ax.set_title(title, fontsize=8)
        d = (xa[0] - x[0]).mean(0).numpy()
        lim = max(abs(d).max(), 1e-6)
        axes[2].imshow(d, cmap="seismic", vmin=-lim, vmax=lim)
        axes[2].set_title(f"difference, L2 = {float(res.l2[i]):.2f}", fontsize=8)
        for ax in axes:
            ax.axis("off")
        fig.tight_layout()
        return fig

    def update(self) -> None:
        """Redraw into the output area."""
        import matplotlib.pyplot as plt

        run = self.runs[self.model_w.value]
        self.attack_w.options = list(run.results)
        self.sample_w.max = len(run.y) - 1
        self.out.clear_output(wait=True)
        with self.out:
            self.render()
            plt.show()


def adversarial_explorer(runs: Sequence[RobustnessRun],
                         class_names: dict[str, Sequence[str]] | None = None) -> Any:
    """Build the explorer and return its widget (display it in JupyterLab)."""
    ex = AdversarialExplorer(runs, class_names)
    ex.update()
    return ex.widget
