"""torch.hub entry points of td-networks.

    >>> import torch
    >>> model = torch.hub.load("<checkout or owner/repo>", "td_network", dataset="mnist",
    ...                        backbone="nin_light", variant="td", pretrained=True,
    ...                        source="local")  # doctest: +SKIP

``pretrained=True`` loads a zoo model (``weights/``, sha256-checked, safetensors: no pickle);
``pretrained=False`` builds the same architecture, freshly initialised as in the reference.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn

dependencies = ["torch", "safetensors"]


def td_network(dataset: str = "mnist", backbone: str = "nin_light", variant: str = "td",
               pretrained: bool = False, seed: int = 0, device: str = "cpu") -> nn.Module:
    """A BU or TD network of the paper for ``dataset`` (input shape and classes follow it).

    Args:
        dataset: mnist, fashion_mnist, cifar10, cifar10_aug or imagenette.
        backbone: lenetfc, nin_light, nin, resnet32 or resnet18_half.
        variant: bu, td, td_uni or td_rev.
        pretrained: load the zoo's weights (``python -m tdlib zoo list`` shows what it holds).
        seed: which zoo seed (pretrained only).
        device: where to put the model.

    Returns:
        a ``torch.nn.Module`` taking (N, C, H, W) images in [0, 1] and returning logits; in eval
        mode when pretrained.
    """
    from tdlib.config import BACKBONES, DATASETS, VARIANTS
    from tdlib.data.datasets import SPECS
    from tdlib.errors import check_name

    check_name("dataset", dataset, DATASETS)
    check_name("backbone", backbone, BACKBONES)
    check_name("variant", variant, VARIANTS)
    if pretrained:
        from tdlib.zoo import load_pretrained

        return load_pretrained(dataset, backbone, variant, seed, device=device)
    from tdlib.models import build_model

    spec = SPECS[dataset]
    c, h, _ = spec.input_shape
    return build_model(backbone, variant, spec.num_classes, in_channels=c, input_size=h).to(device)
