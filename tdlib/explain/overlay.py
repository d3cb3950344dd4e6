"""Heatmap colouring and blending in pixel space ([0, 1] tensors, no plotting)."""

from __future__ import annotations

import torch

from tdlib.errors import InputShapeError

__all__ = ["colorize", "overlay"]


def colorize(cam: torch.Tensor, *, cmap: str = "jet") -> torch.Tensor:
    """Map a (H, W) heatmap in [0, 1] to a (3, H, W) RGB image with a matplotlib colormap.

    Args:
        cam: (H, W) map; values are clipped to [0, 1].
        cmap: matplotlib colormap name (``"jet"`` as in keras-gradcam and the paper's figures).

    Returns:
        (3, H, W) float32 tensor in [0, 1].
    """
    if cam.ndim != 2:
        raise InputShapeError(f"cam must be (H, W), got shape {tuple(cam.shape)}")
    import matplotlib

    lut = torch.as_tensor(matplotlib.colormaps[cmap](range(256))[:, :3], dtype=torch.float32)
    idx = (cam.detach().float().cpu().clamp(0, 1) * 255).round().long()
    return lut[idx].permute(2, 0, 1).contiguous()


def overlay(
    image: torch.Tensor, cam: torch.Tensor, *, alpha: float = 0.5, cmap: str = "jet"
) -> torch.Tensor:
    """Blend a coloured heatmap over an image: ``(1 - alpha) * image + alpha * colour(cam)``.

    Args:
        image: (C, H, W) image in [0, 1], C = 1 (grey, repeated to RGB) or 3.
        cam: (H, W) map in [0, 1] at the image's resolution.
        alpha: weight of the heatmap, in [0, 1].
        cmap: matplotlib colormap name.

    Returns:
        (3, H, W) float32 tensor in [0, 1].

    Raises:
        InputShapeError: shapes do not match or the image has neither 1 nor 3 channels.
    """
    if image.ndim != 3 or image.shape[0] not in (1, 3):
        raise InputShapeError(f"image must be (1|3, H, W), got shape {tuple(image.shape)}")
    if cam.shape != image.shape[1:]:
        raise InputShapeError(
            f"cam shape {tuple(cam.shape)} does not match image size {tuple(image.shape[1:])}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise InputShapeError(f"alpha must lie in [0, 1], got {alpha}")
    rgb = image.detach().float().cpu().clamp(0, 1).expand(3, -1, -1)
    return ((1 - alpha) * rgb + alpha * colorize(cam, cmap=cmap)).clamp(0, 1)
