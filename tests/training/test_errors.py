"""Empty data and labels that do not fit the model in the training engine."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from tdlib.config import DataConfig, ModelConfig, RunConfig, TrainConfig
from tdlib.data import ArrayDataset
from tdlib.errors import InputShapeError
from tdlib.models import build_model
from tdlib.training import evaluate, fit_or_load, make_optimizer, train_epoch
from tdlib.training.engine import recalibrate_bn

CPU = torch.device("cpu")


def _data(n: int, label: int = 0, channels: int = 1, size: int = 28) -> ArrayDataset:
    g = torch.Generator().manual_seed(n)
    x = torch.randint(0, 256, (n, channels, size, size), generator=g, dtype=torch.uint8)
    return ArrayDataset(x, torch.full((n,), label, dtype=torch.long))


def test_evaluate_on_no_images_is_nan_not_zero() -> None:
    stats = evaluate(build_model("lenetfc", "bu"), _data(0), device=CPU)
    assert stats.n == 0 and math.isnan(stats.accuracy) and math.isnan(stats.loss)


def test_train_epoch_on_no_images_is_nan_and_takes_no_step() -> None:
    model = build_model("lenetfc", "bu")
    before = {k: v.clone() for k, v in model.state_dict().items()}
    stats = train_epoch(model, _data(0), make_optimizer(model, TrainConfig(epochs=1)), batch_size=8,
                        generator=torch.Generator().manual_seed(0), device=CPU)
    assert stats.n == 0 and math.isnan(stats.accuracy) and math.isnan(stats.loss)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_recalibrate_bn_on_no_images_keeps_the_statistics() -> None:
    model = build_model("nin_light", "bu")
    bn = next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    with torch.no_grad():
        bn.running_mean.fill_(0.3)
        bn.running_var.fill_(2.0)
    recalibrate_bn(model, _data(0), device=CPU)
    assert torch.all(bn.running_mean == 0.3) and torch.all(bn.running_var == 2.0)  # not reset to 0/1


def test_labels_beyond_the_model_outputs_are_one_clear_error() -> None:
    model = build_model("lenetfc", "bu")  # 10 outputs
    data = _data(6, label=10)  # e.g. an 11th class folder
    with pytest.raises(InputShapeError, match=r"labels range over \[10, 10\] but the model has 10 outputs"):
        evaluate(model, data, device=CPU)
    with pytest.raises(InputShapeError, match="model has 10 outputs"):
        train_epoch(model, data, make_optimizer(model, TrainConfig(epochs=1)), batch_size=4,
                    generator=torch.Generator().manual_seed(0), device=CPU)
    with pytest.raises(InputShapeError, match=r"\[-1, -1\]"):
        evaluate(model, _data(3, label=-1), device=CPU)


def test_no_validation_split_records_nan_val_accuracy_not_zero(tmp_path: Path, single_thread: None) -> None:
    cfg = RunConfig(DataConfig("mnist", train_per_class=5, test_per_class=2, val_fraction=0.0),
                    ModelConfig("lenetfc", "bu"), TrainConfig(epochs=1))
    res = fit_or_load(cfg, runs_root=tmp_path, device="cpu", progress=False)
    assert math.isnan(res.history[0]["val_accuracy"]) and math.isnan(res.val_accuracy)
    assert 0.0 <= res.test_accuracy <= 1.0
    again = fit_or_load(cfg, runs_root=tmp_path, device="cpu", progress=False)  # NaN survives JSON
    assert again.reused and math.isnan(again.val_accuracy)
