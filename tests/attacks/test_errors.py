"""Every bad input to the attack engine is one clear tdlib error, raised before anything
is written (the sweep's out_dir and lock do not exist afterwards); queries skip the per-forward
value checks without changing results."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import Tensor, nn

import tdlib.attacks.core as core_mod
import tdlib.models.base as base_mod
from tdlib.attacks import fourier_sensitivity, robustness_sweep, run_attack
from tdlib.errors import ConfigError, InputShapeError, InputValueError, TdlibError, UnknownNameError
from tdlib.models import build_model

SIZE, CLASSES, N = 8, 3, 4

Case = Callable[[Tensor, Tensor], tuple[Any, Any]]


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(2 * SIZE * SIZE, CLASSES)).eval()


@pytest.fixture()
def batch() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.rand(N, 1, SIZE, SIZE, generator=g), torch.tensor([0, 1, 2, 1])


def _set(x: Tensor, value: float) -> Tensor:
    x = x.clone()
    x[1, 0, 2, 3] = value
    return x


def _labels(y: Tensor, value: int) -> Tensor:
    y = y.clone()
    y[2] = value
    return y


#: (x, y) -> bad (x, y), the error class and a fragment of its message, shared by all entry points
DATA_CASES: dict[str, tuple[Case, type[TdlibError], str]] = {
    "nan_pixel": (lambda x, y: (_set(x, float("nan")), y), InputValueError, "1 NaN and 0 inf"),
    "inf_pixel": (lambda x, y: (_set(x, float("inf")), y), InputValueError, "0 NaN and 1 inf"),
    "minus_inf_pixel": (lambda x, y: (_set(x, -float("inf")), y), InputValueError, "1 inf"),
    "0_255_floats": (lambda x, y: (x * 255, y), InputValueError, "divide 0-255 images by 255"),
    "normalised": (lambda x, y: ((x - 0.5) / 0.25, y), InputValueError, "do not normalise"),
    "slightly_above_1": (lambda x, y: (_set(x, 1.01), y), InputValueError, r"in \[0, 1\]"),
    "uint8_images": (lambda x, y: ((x * 255).to(torch.uint8), y), InputShapeError,
                     r"x\.float\(\) / 255"),
    "numpy_float64_array": (lambda x, y: (x.double().numpy(), y), InputShapeError,
                            r"torch\.from_numpy"),
    "missing_batch_dim": (lambda x, y: (x[0], y), InputShapeError, r"\(N, C, H, W\)"),
    "label_equal_to_num_classes": (lambda x, y: (x, _labels(y, CLASSES)), InputShapeError,
                                   r"labels range over \[0, 3\] but the model has 3 outputs"),
    "negative_label": (lambda x, y: (x, _labels(y, -1)), InputShapeError,
                       r"labels range over \[-1, 1\].*class indices from 0"),
    "float_labels": (lambda x, y: (x, y.float()), InputShapeError, r"integer class indices.*y\.long"),
    "numpy_labels": (lambda x, y: (x, y.numpy()), InputShapeError, r"torch\.from_numpy"),
    "fewer_labels_than_images": (lambda x, y: (x, y[:3]), InputShapeError, "length 4"),
    "more_labels_than_images": (lambda x, y: (x[:3], y), InputShapeError, "length 3"),
}


def _sweep(net: nn.Module, x: Any, y: Any, out: Path, **kw: Any) -> None:
    args: dict[str, Any] = {"attacks": ["contrast_reduction"], "reps": 1, "steps": 5,
                            "progress": False, **kw}
    robustness_sweep(net, x, y, args.pop("attacks"), out_dir=out, **args)


# -- robustness_sweep: one error, and out_dir (with its lock) never created ------------------------

@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_sweep_bad_data_fails_before_out_dir_exists(net: nn.Module, batch: tuple[Tensor, Tensor],
                                                    tmp_path: Path, case: str) -> None:
    make, err, fragment = DATA_CASES[case]
    out = tmp_path / "sweep"
    with pytest.raises(err, match=fragment):
        _sweep(net, *make(*batch), out)
    assert not out.exists()


SWEEP_ARG_CASES: dict[str, tuple[dict[str, Any], type[TdlibError], str]] = {
    "unknown_attack": ({"attacks": ["contrast_reduction", "deepfool"]}, UnknownNameError,
                       "unknown attack 'deepfool'; accepted:"),
    "duplicated_attack": ({"attacks": ["contrast_reduction", "spatial", "contrast_reduction"]},
                          ConfigError, "contrast_reduction more than once.*raise reps"),
    "attacks_as_one_string": ({"attacks": "contrast_reduction"}, ConfigError, r"pass \[name\]"),
    "no_attacks": ({"attacks": []}, ConfigError, "attacks is empty"),
    "reps_zero": ({"reps": 0}, ConfigError, "reps must be an int >= 1; got 0"),
    "reps_negative": ({"reps": -2}, ConfigError, "reps must be an int >= 1; got -2"),
    "reps_fractional": ({"reps": 1.5}, ConfigError, "reps must be an int >= 1; got 1.5"),
    "steps_zero": ({"steps": 0}, ConfigError, "steps must be an int >= 1"),
    "whitebox_steps_zero": ({"whitebox_steps": 0}, ConfigError, "whitebox_steps must be an int"),
    "batch_size_zero": ({"batch_size": 0}, ConfigError, "batch_size must be an int >= 1"),
    "unknown_protocol": ({"protocol": "v2"}, UnknownNameError, "unknown protocol 'v2'"),
    "other_device": ({"device": "cuda:0"}, ConfigError, r"model\.to\(device\)"),
}


@pytest.mark.parametrize("case", sorted(SWEEP_ARG_CASES))
def test_sweep_bad_arguments_fail_before_out_dir_exists(net: nn.Module, batch: tuple[Tensor, Tensor],
                                                        tmp_path: Path, case: str) -> None:
    kw, err, fragment = SWEEP_ARG_CASES[case]
    out = tmp_path / "sweep"
    with pytest.raises(err, match=fragment):
        _sweep(net, *batch, out, **kw)
    assert not out.exists()


def test_sweep_model_in_training_mode_fails_before_out_dir_exists(
        batch: tuple[Tensor, Tensor], tmp_path: Path) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(SIZE * SIZE, CLASSES)).train()
    out = tmp_path / "sweep"
    with pytest.raises(ConfigError, match=r"call model\.eval\(\)"):
        _sweep(model, *batch, out)
    assert not out.exists()


def test_sweep_empty_batch_fails_before_out_dir_exists(net: nn.Module, batch: tuple[Tensor, Tensor],
                                                       tmp_path: Path) -> None:
    x, y = batch
    out = tmp_path / "sweep"
    with pytest.raises(InputShapeError, match="at least one image"):
        _sweep(net, x[:0], y[:0], out)
    assert not out.exists()


# -- run_attack ------------------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_run_attack_bad_data_is_one_clear_error(net: nn.Module, batch: tuple[Tensor, Tensor],
                                                case: str) -> None:
    make, err, fragment = DATA_CASES[case]
    with pytest.raises(err, match=fragment):
        run_attack(net, *make(*batch), "contrast_reduction", steps=5)


@pytest.mark.parametrize(("kw", "fragment"), [
    ({"steps": 0}, "steps must be an int >= 1; got 0"),
    ({"steps": 2.5}, "steps must be an int >= 1; got 2.5"),
    ({"batch_size": 0}, "batch_size must be an int >= 1; got 0"),
    ({"batch_size": True}, "batch_size must be an int >= 1; got True"),
    ({"epsilon": float("nan")}, "epsilon must be None or >= 0"),
])
def test_run_attack_bad_settings_are_config_errors(net: nn.Module, batch: tuple[Tensor, Tensor],
                                                   kw: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        run_attack(net, *batch, "contrast_reduction", **kw)


def test_run_attack_model_in_training_mode(batch: tuple[Tensor, Tensor]) -> None:
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(SIZE * SIZE, CLASSES)).train()
    with pytest.raises(ConfigError, match=r"call model\.eval\(\)"):
        run_attack(model, *batch, "contrast_reduction")


def test_run_attack_float64_tensor_is_cast_like_the_models(net: nn.Module,
                                                            batch: tuple[Tensor, Tensor]) -> None:
    """Documented conversion (as TDLibModel.check_input): float64 is attacked in float32."""
    x, y = batch
    a = run_attack(net, x, y, "additive_uniform", steps=20, seed=3)
    b = run_attack(net, x.double(), y, "additive_uniform", steps=20, seed=3)
    assert b.x_adv.dtype == torch.float32
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.l2, b.l2)


def test_run_attack_empty_batch_is_an_empty_result(net: nn.Module,
                                                   batch: tuple[Tensor, Tensor]) -> None:
    """Documented: unlike the sweep and the Fourier map, N = 0 is well defined here."""
    x, y = batch
    res = run_attack(net, x[:0], y[:0], "contrast_reduction")
    assert res.x_adv.shape == (0, 1, SIZE, SIZE) and res.l2.numel() == 0


# -- fourier_sensitivity ---------------------------------------------------------------------------

@pytest.mark.parametrize("case", sorted(DATA_CASES))
def test_fourier_bad_data_is_one_clear_error(net: nn.Module, batch: tuple[Tensor, Tensor],
                                             case: str) -> None:
    make, err, fragment = DATA_CASES[case]
    with pytest.raises(err, match=fragment):
        fourier_sensitivity(net, *make(*batch), size=2)


def test_fourier_empty_batch(net: nn.Module, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    with pytest.raises(InputShapeError, match="at least one image"):
        fourier_sensitivity(net, x[:0], y[:0], size=2)


@pytest.mark.parametrize(("kw", "fragment"), [
    ({"eps": float("nan")}, "eps must be a finite L2 norm >= 0; got nan"),
    ({"eps": float("inf")}, "eps must be a finite L2 norm >= 0; got inf"),
    ({"eps": -1.0}, "eps must be a finite L2 norm >= 0; got -1.0"),
    ({"size": 0}, "size must be an int >= 1; got 0"),
    ({"batch_size": 0}, "batch_size must be an int >= 1; got 0"),
])
def test_fourier_bad_settings_are_config_errors(net: nn.Module, batch: tuple[Tensor, Tensor],
                                                kw: dict[str, Any], fragment: str) -> None:
    with pytest.raises(ConfigError, match=fragment):
        fourier_sensitivity(net, *batch, **kw)


def test_fourier_float64_tensor_is_cast(net: nn.Module, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    assert torch.equal(fourier_sensitivity(net, x, y, size=3),
                       fourier_sensitivity(net, x.double(), y, size=3))


# -- trusted inputs: validated once at the entry, not per query -------------------------------------

def _counting(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = base_mod.check_pixel_values

    def counted(x: Tensor, *args: Any, **kw: Any) -> None:
        calls.append(int(x.shape[0]))
        real(x, *args, **kw)

    monkeypatch.setattr(base_mod, "check_pixel_values", counted)  # what TDLibModel.forward calls
    return calls


@pytest.fixture(scope="module")
def lenet() -> nn.Module:
    torch.manual_seed(0)
    return build_model("lenetfc", "bu").eval()


def _lenet_batch() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(2)
    return torch.rand(3, 1, 28, 28, generator=g), torch.tensor([0, 4, 9])


@pytest.mark.parametrize("attack", ["contrast_reduction", "additive_gaussian", "fgsm"])
def test_attack_queries_skip_model_value_checks_without_changing_results(
        lenet: nn.Module, attack: str, monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _lenet_batch()
    calls = _counting(monkeypatch)
    trusted = run_attack(lenet, x, y, attack, steps=20, seed=1)
    assert calls == []  # the entry checked x once (tdlib.attacks.checks), no forward re-checked
    assert lenet.check_values  # restored
    monkeypatch.setattr(core_mod, "trusted_inputs", lambda m: contextlib.nullcontext(m))
    checked = run_attack(lenet, x, y, attack, steps=20, seed=1)
    assert calls  # without trusted_inputs every query is value-checked again ...
    for field in ("x_adv", "success", "l2", "clean_correct"):  # ... with the same result
        assert torch.equal(getattr(trusted, field), getattr(checked, field)), field


def test_fourier_queries_skip_model_value_checks(lenet: nn.Module,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    x, y = _lenet_batch()
    calls = _counting(monkeypatch)
    heat = fourier_sensitivity(lenet, x, y, size=3)
    assert calls == [] and lenet.check_values
    assert heat.shape == (3, 3) and bool(torch.isfinite(heat).all())


def test_lenet_labels_beyond_num_classes(lenet: nn.Module, tmp_path: Path) -> None:
    x, _ = _lenet_batch()
    out = tmp_path / "sweep"
    with pytest.raises(InputShapeError, match="model has 10 outputs.*num_classes=11"):
        _sweep(lenet, x, torch.tensor([0, 10, 3]), out)
    assert not out.exists()


def test_numpy_float64_hint_names_the_conversion(net: nn.Module, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    arr = x.double().numpy()
    assert isinstance(arr, np.ndarray) and arr.dtype == np.float64
    res = run_attack(net, torch.from_numpy(arr), y, "contrast_reduction", steps=5)  # the fix works
    assert res.x_adv.dtype == torch.float32
