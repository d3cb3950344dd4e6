"""Tests of tdlib.explain on a tiny model that follows the tdlib model contract."""

from __future__ import annotations

import math
import subprocess
import sys

import pytest
import torch
from torch import nn

from tdlib.errors import InputShapeError, UnknownNameError
from tdlib.explain import (
    GradCamExplainer,
    energy_on_object,
    foreground_mask,
    gradcam,
    localization_scores,
    overlay,
    paper_gradcam,
    paper_normalise,
    pointing_game,
    road_score,
    road_scores,
)
from tdlib.explain.gradcam import Normalisation


class TinyNet(nn.Module):
    """Two conv stages with nn.Identity hook points act_1 (full res) and act_2 (half res)."""

    stage_names = ("act_1", "act_2")
    default_cam_stage = "act_2"

    def __init__(self, in_ch: int = 1, classes: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Sequential(nn.Conv2d(in_ch, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.act_1 = nn.Identity()
        self.conv2 = nn.Sequential(nn.MaxPool2d(2), nn.Conv2d(4, 6, 3, padding=1), nn.ReLU())
        self.act_2 = nn.Identity()
        self.head = nn.Sequential(nn.Dropout(0.5), nn.Linear(6, classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.act_2(self.conv2(self.act_1(self.conv1(x))))
        return self.head(a.mean(dim=(2, 3)))


def _hook_count(model: nn.Module) -> int:
    return sum(
        len(m._forward_hooks)
        + len(m._forward_pre_hooks)
        + len(m._backward_hooks)
        + len(getattr(m, "_backward_pre_hooks", {}))
        for m in model.modules()
    )


@pytest.fixture()
def model() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet()


@pytest.fixture()
def x() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(5, 1, 12, 12)


@pytest.mark.parametrize("normalisation", ["library", "paper"])
@pytest.mark.parametrize("stage", [None, "act_1", "act_2"])
def test_gradcam_shape_and_range(
    model: TinyNet, x: torch.Tensor, normalisation: Normalisation, stage: str | None
) -> None:
    maps = gradcam(model, x, stage=stage, batch_size=2, normalisation=normalisation)
    assert maps.shape == (5, 12, 12)
    assert maps.dtype == torch.float32
    assert maps.min() >= 0 and maps.max() <= 1
    assert torch.isfinite(maps).all()


def test_gradcam_targets_and_batching_agree(model: TinyNet, x: torch.Tensor) -> None:
    pred = model.eval()(x).argmax(1)
    by_default = gradcam(model, x, batch_size=64)
    by_target = gradcam(model, x, targets=pred.tolist(), batch_size=2)
    torch.testing.assert_close(by_default, by_target, atol=1e-5, rtol=0)


def test_paper_gradcam_is_paper_normalisation(model: TinyNet, x: torch.Tensor) -> None:
    torch.testing.assert_close(
        paper_gradcam(model, x), gradcam(model, x, normalisation="paper", output="softmax"),
        atol=0, rtol=0
    )


def test_hooks_released_over_many_calls(model: TinyNet, x: torch.Tensor) -> None:
    before = _hook_count(model)
    for _ in range(100):
        gradcam(model, x[:1])
    assert _hook_count(model) == before == 0


def test_hooks_released_and_error_propagates(model: TinyNet, x: torch.Tensor) -> None:
    # grad-cam's own __exit__ swallows IndexError; ours must not.
    with pytest.raises(IndexError):
        gradcam(model, x[:2], targets=[0, 99])
    assert _hook_count(model) == 0


def test_explainer_context_manager(model: TinyNet, x: torch.Tensor) -> None:
    with GradCamExplainer(model, stage="act_1") as explain:
        assert _hook_count(model) > 0
        a = explain(x)
        b = explain(x[:2])
    assert _hook_count(model) == 0
    torch.testing.assert_close(a[:2], b)
    with pytest.raises(RuntimeError):
        explain(x)
    assert "act_1" in repr(explain)


def test_input_not_mutated(model: TinyNet, x: torch.Tensor) -> None:
    x_copy = x.clone()
    x_req = x.clone().requires_grad_(True)
    gradcam(model, x)
    gradcam(model, x_req)
    assert torch.equal(x, x_copy)
    assert x_req.grad is None


def test_unknown_stage(model: TinyNet, x: torch.Tensor) -> None:
    with pytest.raises(UnknownNameError) as info:
        gradcam(model, x, stage="act_9")
    assert "act_1" in str(info.value) and "act_2" in str(info.value)
    assert _hook_count(model) == 0


def test_bad_input_shape(model: TinyNet) -> None:
    with pytest.raises(InputShapeError):
        gradcam(model, torch.rand(1, 12, 12))
    with pytest.raises(InputShapeError):
        gradcam(model, torch.rand(2, 1, 12, 12), targets=[0])


@pytest.mark.parametrize("training", [True, False])
def test_training_flag_and_grads_restored(model: TinyNet, x: torch.Tensor, training: bool) -> None:
    model.train(training)
    model(x).sum().backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert len(grads) == len(list(model.parameters()))
    first = gradcam(model, x)
    assert all(m.training == training for m in model.modules())
    torch.testing.assert_close(gradcam(model, x), first)  # eval mode: dropout off, BN frozen
    for n, p in model.named_parameters():
        assert p.grad is not None and torch.equal(p.grad, grads[n])


def test_frozen_model_still_gets_maps(model: TinyNet, x: torch.Tensor) -> None:
    model.requires_grad_(False)
    maps = gradcam(model, x, stage="act_1")
    assert maps.shape == (5, 12, 12) and maps.max() > 0


def test_paper_normalise() -> None:
    raw = torch.zeros(2, 4, 4)
    raw[0, 1, 1] = 3.0
    raw[1] = 7.0  # constant map: nothing above the mean
    out = paper_normalise(raw, (8, 8))
    assert out.shape == (2, 8, 8)
    assert out[0].max() == pytest.approx(1.0) and out[0].min() == 0
    assert (out[0, 5:, 5:] == 0).all()  # far from the peak: below the mean
    assert (out[1] == 0).all()


def test_energy_on_object() -> None:
    masks = torch.zeros(3, 10, 10, dtype=torch.bool)
    masks[:, 2:6, 3:8] = True  # 20 of 100 pixels
    cams = torch.zeros(3, 10, 10)
    cams[0, 3:5, 4:6] = torch.rand(2, 2) + 0.1  # inside the mask
    cams[1] = 0.7  # uniform
    # cams[2] all zero
    energy = energy_on_object(cams, masks)
    assert energy[0] == pytest.approx(1.0)
    assert energy[1] == pytest.approx(0.2)
    assert energy[2] == pytest.approx(0.2)
    assert math.isnan(energy_on_object(cams, masks, empty="nan")[2].item())
    with pytest.raises(InputShapeError):
        energy_on_object(cams, masks[:2])


def test_pointing_game() -> None:
    masks = torch.zeros(4, 10, 10, dtype=torch.bool)
    masks[:, 2:5, 2:5] = True
    cams = torch.zeros(4, 10, 10)
    cams[0, 3, 3] = 1.0  # hit
    cams[1, 8, 8] = 1.0  # miss
    cams[2, 6, 3] = 1.0  # miss, but within 2 px of the mask
    # cams[3] all zero: miss
    assert pointing_game(cams, masks).tolist() == [True, False, False, False]
    assert pointing_game(cams, masks, tolerance=2).tolist() == [True, False, True, False]


def test_foreground_mask() -> None:
    x = torch.zeros(1, 3, 2, 2)
    x[0, :, 0, 0] = 0.2
    x[0, :, 0, 1] = 0.21
    x[0, 0, 1, 1] = 0.9  # channel mean 0.3
    assert foreground_mask(x).tolist() == [[[False, True], [False, True]]]
    assert foreground_mask(x, threshold=0.25).tolist() == [[[False, False], [False, True]]]


def test_overlay() -> None:
    img = torch.rand(1, 6, 7)
    cam = torch.rand(6, 7)
    out = overlay(img, cam, alpha=0.4)
    assert out.shape == (3, 6, 7) and out.min() >= 0 and out.max() <= 1
    torch.testing.assert_close(overlay(img, cam, alpha=0.0), img.expand(3, -1, -1))
    assert overlay(torch.rand(3, 6, 7), cam).shape == (3, 6, 7)
    with pytest.raises(InputShapeError):
        overlay(img, torch.rand(5, 7))


def test_localization_scores(model: TinyNet, x: torch.Tensor) -> None:
    y = torch.tensor([0, 1, 2, 0, 1])
    rows = localization_scores(model, x, y, stages=["act_1", "act_2"])
    assert [r["stage"] for r in rows] == ["act_1", "act_2"]
    for r in rows:
        assert r["n"] == 5
        assert 0 <= r["energy_mean"] <= 1 and 0 <= r["pointing"] <= 1
        assert 0 <= r["accuracy"] <= 1
    assert localization_scores(model, x, y, target="label", stages=["act_2"])[0]["n"] == 5


def test_road_scores(model: TinyNet, x: torch.Tensor) -> None:
    cams = gradcam(model, x)
    rng = torch.get_rng_state()
    a = road_scores(model, x, cams, percentiles=(50,), batch_size=2)
    assert torch.equal(torch.get_rng_state(), rng)  # caller's RNG untouched
    b = road_scores(model, x, cams, percentiles=(50,), batch_size=2)
    assert a.shape == (5,) and torch.isfinite(a).all() and a.abs().max() <= 0.5
    assert torch.equal(a, b)  # seeded imputation noise
    assert road_score(model, x, cams, percentiles=(30, 70)) == pytest.approx(
        road_scores(model, x, cams, percentiles=(30, 70)).mean().item()
    )


def test_browser_builds(model: TinyNet, x: torch.Tensor) -> None:
    pytest.importorskip("ipywidgets")
    from tdlib.widgets import GradCamBrowser, gradcam_browser

    other = TinyNet()
    browser = GradCamBrowser({"BU": model, "TD": other}, x, [0, 1, 2, 0, 1], ["a", "b", "c"])
    fig = browser.render()
    assert len(fig.axes) == 3
    browser.update()
    browser.stage.value = "act_1"
    browser.target.value = 2
    browser.model.value = "TD"
    assert _hook_count(model) == 0 and _hook_count(other) == 0
    assert gradcam_browser({"BU": model}, x, [0] * 5, ["a", "b", "c"]).widget is not None


def test_plot_cam_grid(model: TinyNet, x: torch.Tensor) -> None:
    import matplotlib.pyplot as plt

    from tdlib.plots import plot_cam, plot_cam_grid

    cams = gradcam(model, x)
    fig = plot_cam_grid(x[:4], {"BU": cams[:4], "TD": cams[:4]}, titles=list("abcd"), ncols=2)
    assert len(fig.axes) == 2 * 3 * 2
    assert fig.axes[0].get_ylabel() == "image"
    fig2, ax = plt.subplots()
    assert plot_cam(x[0], cams[0], ax=ax) is fig2
    plt.close("all")


def test_import_has_no_heavy_side_effects() -> None:
    code = (
        "import sys, tdlib.explain, tdlib.widgets, tdlib.plots;"
        "heavy = {'pytorch_grad_cam', 'ipywidgets', 'matplotlib.pyplot'} & set(sys.modules);"
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# -- bad values and the reference's protocol ------------------------------------------------
@pytest.mark.parametrize(("targets", "fragment"), [
    ([0, 1, 2, 0, -1], r"outside \[0, 3\)"),
    ([0, 1, 2, 0, 3], r"outside \[0, 3\)"),
    (torch.tensor([0.0, 1.0, 2.0, 0.0, 1.0]), "integer class indices"),
    ([0, 1], "got 2 targets for 5 images"),
])
def test_targets_out_of_range_are_refused(model: TinyNet, x: torch.Tensor, targets: object,
                                          fragment: str) -> None:
    model.num_classes = 3  # type: ignore[assignment]
    with pytest.raises(InputShapeError, match=fragment):
        gradcam(model, x, targets=targets)  # type: ignore[arg-type]
    assert _hook_count(model) == 0


@pytest.mark.parametrize(("bad", "fragment"), [
    ("nan", "NaN/inf"), ("inf", "NaN/inf"), ("255", "0-255"), ("negative", r"\[0, 1\]"),
])
def test_bad_pixel_values_are_refused(model: TinyNet, x: torch.Tensor, bad: str, fragment: str) -> None:
    y = x.clone()
    if bad == "nan":
        y[0, 0, 0, 0] = float("nan")
    elif bad == "inf":
        y[1, 0, 2, 2] = float("inf")
    elif bad == "255":
        y = y * 255
    else:
        y[0, 0, 0, 0] = -0.5
    with pytest.raises(InputShapeError, match=fragment):
        gradcam(model, y)


def test_softmax_output_target_is_an_option_and_differs(model: TinyNet, x: torch.Tensor) -> None:
    logit = gradcam(model, x, normalisation="paper")
    soft = gradcam(model, x, normalisation="paper", output="softmax")
    assert soft.shape == logit.shape and not torch.allclose(soft, logit)
    assert torch.equal(paper_gradcam(model, x), soft)
    with pytest.raises(UnknownNameError, match="Grad-CAM output"):
        gradcam(model, x, output="probability")  # type: ignore[arg-type]


def test_empty_batch_gives_empty_maps(model: TinyNet, x: torch.Tensor) -> None:
    assert gradcam(model, x[:0]).shape == (0, *x.shape[-2:])


class _IndexOracle(nn.Module):
    """Predicts the label of image i (its pixels hold i) when ``right(i)``, else the next class."""

    def __init__(self, labels: torch.Tensor, right: object) -> None:
        super().__init__()
        self.labels, self.right = labels, right

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = x[:, 0, 0, 0].round().long()
        cls = torch.tensor([int(self.labels[j]) if self.right(int(j)) else (int(self.labels[j]) + 1) % 3  # type: ignore[operator]
                            for j in i])
        return nn.functional.one_hot(cls, 3).float()


def test_correctly_classified_takes_the_first_images_every_model_gets_right() -> None:
    from types import SimpleNamespace

    from tdlib.experiments.explain import correctly_classified

    n = 50
    labels = torch.arange(n) % 3
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()

    class Split:
        y = labels

        def __len__(self) -> int:
            return n

        def images(self, idx: torch.Tensor | None = None) -> torch.Tensor:
            return images if idx is None else images[idx]

    data = SimpleNamespace(test=Split())
    models = {"bu": SimpleNamespace(data=data, model=_IndexOracle(labels, lambda i: i % 2 == 0)),
              "td": SimpleNamespace(data=data, model=_IndexOracle(labels, lambda i: i % 3 == 0))}
    order = torch.randperm(n, generator=torch.Generator().manual_seed(4))
    want = [int(i) for i in order if int(i) % 6 == 0][:3]
    for chunk in (1, 4, 256):
        x, y = correctly_classified(models, 3, seed=4, chunk=chunk)  # type: ignore[arg-type]
        assert x[:, 0, 0, 0].long().tolist() == want and y.tolist() == labels[want].tolist()
    x, _ = correctly_classified(models, 100, seed=4, chunk=7)  # type: ignore[arg-type]
    assert sorted(x[:, 0, 0, 0].long().tolist()) == list(range(0, n, 6))
