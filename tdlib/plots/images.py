"""Image grids (matplotlib): images and CAMs in, figure out; never ``plt.show()`` or saving."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from tdlib.errors import InputShapeError
from tdlib.explain.overlay import overlay

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = ["image_rows", "plot_cam", "plot_cam_grid"]


def _show_image(ax: Axes, image: torch.Tensor) -> None:
    img = image.detach().float().cpu().clamp(0, 1)
    if img.shape[0] == 1:
        ax.imshow(img[0].numpy(), cmap="gray", vmin=0, vmax=1)
    else:
        ax.imshow(img.permute(1, 2, 0).numpy())


def plot_cam(
    image: torch.Tensor,
    cam: torch.Tensor,
    *,
    ax: Axes | None = None,
    alpha: float | None = 0.5,
    cmap: str = "jet",
    title: str | None = None,
) -> Figure:
    """Draw one heatmap, blended over its image (``alpha``) or alone (``alpha=None``).

    Args:
        image: (C, H, W) image in [0, 1].
        cam: (H, W) map in [0, 1].
        ax: axes to draw into; ``None`` makes a new figure.
        alpha: heatmap weight of the overlay; ``None`` draws the bare heatmap.
        cmap: matplotlib colormap.
        title: axes title.

    Returns:
        The figure that holds ``ax``.
    """
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=(2.5, 2.5))
    if alpha is None:
        ax.imshow(cam.detach().float().cpu().numpy(), cmap=cmap, vmin=0, vmax=1)
    else:
        ax.imshow(overlay(image, cam, alpha=alpha, cmap=cmap).permute(1, 2, 0).numpy())
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=8)
    fig = ax.get_figure()
    assert fig is not None
    return fig  # type: ignore[return-value]


def plot_cam_grid(
    images: torch.Tensor,
    cams_by_model: Mapping[str, torch.Tensor],
    *,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    alpha: float | None = 0.5,
    cmap: str = "jet",
    panel_size: float = 1.6,
    outlines: torch.Tensor | None = None,
) -> Figure:
    """Grid in the layout of the supplement's Figure 5: image row, then one heatmap row per model.

    With ``ncols`` smaller than the number of images the grid wraps into blocks of
    ``1 + len(cams_by_model)`` rows (Figure 5: rows 1/4 images, 2/5 BU, 3/6 TD for 2 blocks).

    Args:
        images: (N, C, H, W) images in [0, 1].
        cams_by_model: model label (e.g. ``"BU"``, ``"TD"``) -> (N, H, W) maps, in row order.
        titles: one title per image (e.g. the class name), drawn above the image row.
        ncols: images per block row; ``None`` puts all images in one block.
        alpha: overlay weight; ``None`` draws bare heatmaps.
        cmap: matplotlib colormap.
        panel_size: inches per panel.
        outlines: (N, H, W) boolean masks (e.g. object boxes) drawn as white outlines on every
            panel of their image.

    Returns:
        The new figure.
    """
    import matplotlib.pyplot as plt

    n = images.shape[0]
    if outlines is not None and tuple(outlines.shape) != (n, *images.shape[2:]):
        raise InputShapeError(f"outlines have shape {tuple(outlines.shape)}, expected "
                              f"{(n, *images.shape[2:])}")
    if images.ndim != 4:
        raise InputShapeError(f"images must be (N, C, H, W), got {tuple(images.shape)}")
    for label, cams in cams_by_model.items():
        if tuple(cams.shape) != (n, *images.shape[2:]):
            raise InputShapeError(
                f"cams of {label!r} have shape {tuple(cams.shape)}, expected "
                f"{(n, *images.shape[2:])}"
            )
    if titles is not None and len(titles) != n:
        raise InputShapeError(f"got {len(titles)} titles for {n} images")
    ncols = max(1, min(ncols or n, n)) if n else 1
    per_block = 1 + len(cams_by_model)
    blocks = max(1, math.ceil(n / ncols))
    fig, axes = plt.subplots(
        blocks * per_block,
        ncols,
        figsize=(panel_size * ncols, panel_size * blocks * per_block),
        squeeze=False,
    )
    for ax in axes.flat:
        ax.set_axis_off()
    labels = ["image", *cams_by_model]
    for i in range(n):
        block, col = divmod(i, ncols)
        row0 = block * per_block
        ax = axes[row0, col]
        _show_image(ax, images[i])
        if titles is not None:
            ax.set_title(titles[i], fontsize=8)
        for k, cams in enumerate(cams_by_model.values(), start=1):
            plot_cam(images[i], cams[i], ax=axes[row0 + k, col], alpha=alpha, cmap=cmap)
        if outlines is not None:
            m = outlines[i].detach().float().cpu().numpy()
            for k in range(per_block):
                axes[row0 + k, col].contour(m, levels=[0.5], colors="white", linewidths=1.0)
        for k in range(per_block):
            axes[row0 + k, col].set_axis_on()
            axes[row0 + k, col].set_xticks([])
            axes[row0 + k, col].set_yticks([])
            if col == 0:
                axes[row0 + k, col].set_ylabel(labels[k], fontsize=8)
    fig.tight_layout()
    plt.close(fig)  # returned for display; an open pyplot figure would be shown a second time
    return fig


def image_rows(rows: Mapping[str, torch.Tensor], *, titles: Sequence[str] | None = None,
               diff_rows: Sequence[str] = ()) -> Any:
    """A matplotlib grid: one row per entry of ``rows`` ((N, C, H, W) in [0, 1]; difference rows
    are shown with a diverging colour map)."""
    import matplotlib.pyplot as plt

    n = max(v.shape[0] for v in rows.values())
    fig, axes = plt.subplots(len(rows), n, figsize=(1.4 * n, 1.5 * len(rows)), squeeze=False)
    for i, (name, imgs) in enumerate(rows.items()):
        for j in range(n):
            ax = axes[i][j]
            ax.set_xticks([])
            ax.set_yticks([])
            if j >= imgs.shape[0]:
                ax.axis("off")
                continue
            img = imgs[j].detach().cpu()
            if name in diff_rows:
                d = img.mean(0).numpy()
                lim = max(float(np.abs(d).max()), 1e-6)
                ax.imshow(d, cmap="seismic", vmin=-lim, vmax=lim)
            else:
                ax.imshow(img.permute(1, 2, 0).numpy().squeeze(), cmap="gray" if img.shape[0] == 1 else None,
                          vmin=0, vmax=1)
            if j == 0:
                ax.set_ylabel(name, fontsize=8)
            if titles is not None and i == 0 and j < len(titles):
                ax.set_title(titles[j], fontsize=7)
    fig.tight_layout()
    plt.close(fig)  # returned for display; an open pyplot figure would be shown a second time
    return fig
