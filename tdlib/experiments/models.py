"""Where an experiment's models come from: the pretrained zoo, or training at the profile's size.

The profile decides (``Profile.pretrained``: the book's ``quick`` profile takes MNIST /
Fashion-MNIST models from the zoo, ``paper`` and ``smoke`` train their own); a notebook's
``PRETRAINED`` parameter overrides it. With ``PRETRAINED=True`` a model the zoo does not hold is an
error; with the profile's default it is trained instead (and its :class:`ModelRef` says so).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from torch import nn

from tdlib.config import RunConfig, run_config
from tdlib.data import DatasetBundle, load_dataset
from tdlib.errors import ConfigError, UnknownNameError
from tdlib.experiments.params import Common
from tdlib.experiments.records import ModelRef
from tdlib.training import fit_or_load, get_dataset
from tdlib.zoo import find_entry, load_entry

__all__ = ["ProvidedModel", "provide", "zoo_has"]


@dataclass(frozen=True)
class ProvidedModel:
    """A model ready for an experiment (eval mode) and the facts about it."""

    ref: ModelRef
    model: nn.Module
    data: DatasetBundle  # the data the model is evaluated on (full test set for zoo models)
    config: RunConfig  # the configuration it was trained with
    key: str  # folder-safe identity, for attack results


def zoo_has(dataset: str, backbone: str, variant: str, seed: int) -> bool:
    """True when the zoo holds this model."""
    try:
        find_entry(dataset, backbone, variant, seed)
    except UnknownNameError:
        return False
    return True


def provide(dataset: str, backbone: str, variant: str, common: Common, *, pretrained: bool | None,
            rep: int = 0, progress: bool = True, require_zoo: bool = False) -> ProvidedModel:
    """The model of (``dataset``, ``backbone``, ``variant``) with seed ``common.seed + rep``.

    Args:
        pretrained: take it from the zoo; ``None`` means "from the zoo where it holds the model".
        require_zoo: with ``pretrained``, a missing zoo entry is an error instead of a training.

    Raises:
        ConfigError: ``require_zoo`` and the zoo lacks the model (the message lists what it holds).
    """
    seed = common.seed + rep
    if pretrained and (require_zoo or zoo_has(dataset, backbone, variant, seed)):
        try:
            entry = find_entry(dataset, backbone, variant, seed)
        except UnknownNameError as exc:
            raise ConfigError(f"{exc}; set PRETRAINED=False to train it at this profile") from exc
        model = load_entry(entry)
        size = entry.config.get("data", {}).get("image_size") if dataset == "imagenette" else None
        cfg = run_config(dataset, backbone, variant, profile="paper", epochs=entry.recipe["epochs"],
                         seed=seed, repetitions=1, root=common.data_dir,
                         amp=bool(entry.config["train"].get("amp")), image_size=size)
        data = load_dataset(replace(cfg.data, test_per_class=None))
        ref = ModelRef(dataset, backbone, variant, seed, "zoo", entry.name, entry.test_accuracy,
                       entry.test_images)
        return ProvidedModel(ref, model, data, cfg, f"zoo-{entry.name}-{entry.sha256[:12]}")
    cfg = run_config(dataset, backbone, variant, profile=common.profile, seed=common.seed,
                     root=common.data_dir)
    data = get_dataset(cfg.data)
    run = fit_or_load(cfg, rep=rep, runs_root=common.run_dir, device=common.device, data=data,
                      progress=progress)
    folder = Path(run.folder)
    ref = ModelRef(dataset, backbone, variant, run.seed, "trained",
                   f"{folder.parent.name}/{folder.name}", 100.0 * run.test_accuracy, len(data.test))
    return ProvidedModel(ref, run.model.eval(), data, cfg, f"{folder.parent.name}-{folder.name}")
