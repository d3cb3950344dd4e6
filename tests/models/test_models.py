"""Contracts of tdlib.models: architecture size/cost vs the reference, shapes, gradients,
multi-input equivalence, scale ablation, validation and hook points."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tdlib.errors import ConfigError, InputShapeError, InputValueError, UnknownNameError
from tdlib.models import (
    BACKBONES,
    MERGES,
    PYRAMIDS,
    VARIANTS,
    TDLibModel,
    available_variants,
    build_model,
    layer_table,
    model_summary,
    summarize_all,
)
from tdlib.models.layers import Conv2dSame, Dropout, MaxPool2dSame, ResolutionMerge, tf_same_padding
from tdlib.models.spec import get_spec, td_stages
from tdlib.models.summary import count_macs, count_params

pytestmark = pytest.mark.usefixtures("single_thread")


# reference-notes.md section 1.7: (trainable params, Keras total incl. BN moving stats, MACs)
# of a transcription of the official Keras models.
REFERENCE = {
    ("lenetfc", "bu"): (7_670, 7_798, 0.83e6),
    ("lenetfc", "td"): (14_452, 14_712, 3.67e6),
    ("lenetfc", "td_uni"): (23_486, 23_730, 11.31e6),
    ("lenetfc", "td_rev"): (57_846, 58_262, 37.74e6),
    ("nin_light", "bu"): (62_094, 62_818, 10.90e6),
    ("nin_light", "td"): (212_670, 213_778, 101.75e6),
    ("nin_light", "td_uni"): (214_734, 215_906, 103.29e6),
    ("nin_light", "td_rev"): (214_206, 215_410, 101.57e6),
    ("nin", "bu"): (969_822, 972_658, 222.5e6),
    ("nin", "td"): (3_368_478, 3_372_850, 2_117e6),
    ("nin", "td_uni"): (3_397_470, 3_402_098, 2_146e6),
    ("nin", "td_rev"): (3_388_446, 3_393_202, 2_110e6),
    ("resnet32", "bu"): (467_946, 470_218, 69.1e6),
    ("resnet32", "td"): (528_042, 530_602, 86.0e6),
    ("resnet32", "td_uni"): (319_626, 321_866, 148.6e6),
    ("resnet32", "td_rev"): (563_274, 565_930, 465.3e6),
    ("resnet18_half", "bu"): (2_799_114, 2_803_018, 567.8e6),
    ("resnet18_half", "td"): (4_966_538, 4_972_810, 4_129e6),
}
ALL = [(b, v) for b in BACKBONES for v in available_variants(b)]
TD_ALL = [(b, v) for b, v in ALL if v != "bu"]
# Small TD instances for gradient tests (ResNet18 at 32x32 keeps 5 scales: 32 .. 2).
SMALL = {"resnet18_half": 32}


def _small(backbone: str, variant: str, **kw: object) -> TDLibModel:
    return build_model(backbone, variant, input_size=SMALL.get(backbone), **kw)  # type: ignore[arg-type]


def _rand(model: TDLibModel, n: int = 2, seed: int = 0) -> torch.Tensor:
    return torch.rand((n, *model.input_shape), generator=torch.Generator().manual_seed(seed))


# -- size and cost ----------------------------------------------------------------------
def test_reference_table_covers_every_model() -> None:
    assert set(REFERENCE) == set(ALL)
    assert len(ALL) == 18


@pytest.mark.parametrize(("backbone", "variant"), ALL)
def test_params_and_macs_match_reference(backbone: str, variant: str) -> None:
    params, keras_total, macs = REFERENCE[(backbone, variant)]
    model = build_model(backbone, variant)
    # The acceptance bound is 3%; the architectures reproduce the counts exactly, and the MACs
    # differ only by the table's rounding (< 0.1%), so the test pins them tightly.
    assert count_params(model) == params
    moving = sum(
        m.running_mean.numel() + m.running_var.numel() for m in model.modules() if isinstance(m, nn.BatchNorm2d)
    )
    assert params + moving == keras_total
    assert count_macs(model) == pytest.approx(macs, rel=0.005)


def test_model_summary() -> None:
    s = model_summary(build_model("nin_light", "td"))
    assert s == {
        "params": 212_670,
        "macs": s["macs"],
        "input_shape": (1, 28, 28),
        "final_feature_map": (24, 28, 28),
        "num_scales": 3,
    }
    assert model_summary(build_model("resnet32", "bu"))["final_feature_map"] == (64, 8, 8)


def test_summarize_all() -> None:
    rows = summarize_all()
    assert [(r["backbone"], r["variant"]) for r in rows] == ALL
    by = {(r["backbone"], r["variant"]): r for r in rows}
    assert by[("nin_light", "td")]["final_feature_map"] == (24, 28, 28)
    assert by[("nin_light", "bu")]["final_feature_map"] == (48, 7, 7)
    assert by[("resnet18_half", "td")]["final_feature_map"] == (32, 128, 128)
    assert by[("resnet18_half", "bu")]["final_feature_map"] == (256, 8, 8)
    assert by[("resnet18_half", "td")]["num_scales"] == 5
    assert by[("resnet32", "bu")]["num_scales"] == 1
    assert set(by[("nin", "td")]) == {
        "backbone",
        "variant",
        "params",
        "macs",
        "input_shape",
        "final_feature_map",
        "num_scales",
    }


# -- shapes -----------------------------------------------------------------------------
@pytest.mark.parametrize(("backbone", "variant"), ALL)
def test_output_shape_and_final_map(backbone: str, variant: str) -> None:
    model = build_model(backbone, variant, num_classes=7).eval()
    spec = get_spec(backbone)
    assert model.input_shape == (spec.in_channels, spec.input_size, spec.input_size)
    assert model.num_scales == (1 if variant == "bu" else spec.num_scales)
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [
        model.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, tuple(out.shape))
        )
        for name in model.stage_names
    ]
    with torch.no_grad():
        out = model(_rand(model))
    for h in hooks:
        h.remove()
    assert out.shape == (2, 7) and out.dtype == torch.float32
    assert list(seen) == list(model.stage_names)
    cam = seen[model.default_cam_stage]
    size = model.input_shape[1]
    if variant == "bu":
        assert cam[2:] == (size // 2 ** (spec.num_scales - 1),) * 2
    else:
        assert cam[2:] == (size, size)  # TD: Grad-CAM map at full input resolution


def test_stage_names_and_cam_stage() -> None:
    assert build_model("lenetfc", "td").stage_names == ("act_1", "act_2", "act_3", "act_4")
    assert build_model("nin", "bu").default_cam_stage == "act_3"
    assert build_model("resnet32", "td").default_cam_stage == "act_4"
    r18 = build_model("resnet18_half", "td")
    assert r18.stage_names == ("act_1", "act_2", "act_3", "act_4", "act_5")
    assert r18.default_cam_stage == "act_5"
    assert isinstance(r18.get_submodule("act_3"), nn.Identity)


def test_custom_shape_and_channels() -> None:
    model = build_model("nin_light", "td", in_channels=3, input_size=36, num_classes=4)
    assert model.input_shape == (3, 36, 36)
    assert model(torch.rand(1, 3, 36, 36)).shape == (1, 4)
    with pytest.raises(ConfigError, match="multiple of 16"):
        build_model("resnet18_half", "bu", input_size=120)
    with pytest.raises(ConfigError, match="multiple of 4"):
        build_model("lenetfc", "td", input_size=30)


def test_layer_table_bu_vs_td() -> None:
    bu = layer_table(build_model("nin_light", "bu"))
    td = layer_table(build_model("nin_light", "td"))
    for rows in (bu, td):
        assert set(rows[0]) == {"name", "kind", "channels", "height", "width"}
        assert [r["name"] for r in rows if r["kind"] == "stage"] == ["act_1", "act_2", "act_3", "act_4"]
    assert [r["height"] for r in bu if r["kind"] == "stage"] == [28, 14, 7, 7]
    assert [r["height"] for r in td if r["kind"] == "stage"] == [7, 14, 28, 28]
    assert [r["height"] for r in td if r["kind"] == "pyramid"] == [28, 14, 7]
    assert sum(r["kind"] == "merge" for r in td) == 2
    assert sum(r["kind"] == "pool" for r in bu) == 2
    convs = [r for r in td if r["kind"] == "conv"]
    assert convs[-1]["channels"] == 10 and convs[-1]["height"] == 28


# -- the reversal rule -------------------------------------------------------------------
def _widths(backbone: str, variant: str) -> list[list[tuple[int, int]]]:
    return [[(u.kernel, u.width) for u in st.units] for st in td_stages(get_spec(backbone), variant)]


def test_reversal_rule_reproduces_reference_layouts() -> None:
    assert _widths("lenetfc", "td") == [[(3, 32)], [(5, 16)], [(5, 6)]]
    assert _widths("lenetfc", "td_uni") == [[(3, 16)], [(5, 16)], [(5, 16)]]
    assert _widths("lenetfc", "td_rev") == [[(3, 6)], [(5, 16)], [(5, 32)]]
    assert _widths("nin", "td_rev") == [
        [(3, 192), (1, 160), (1, 96)],
        [(5, 192), (1, 192), (1, 192)],
        [(5, 192), (1, 192)],
    ]
    assert [st[0][1] for st in _widths("resnet32", "td")] == [64, 32, 16]
    assert [st[0][1] for st in _widths("resnet32", "td_rev")] == [16, 32, 64]
    # NIN TD_rev: the 96-wide low block gets a 1x1 adapter to the 192-wide merge.
    model = build_model("nin", "td_rev")
    assert isinstance(model.adapters[0][0], nn.Conv2d)
    assert model.adapters[0][0].weight.shape[:2] == (192, 96)
    assert isinstance(model.adapters[1], nn.Identity)


# -- gradients, multi-input, determinism ------------------------------------------------
@pytest.mark.parametrize(("backbone", "variant"), TD_ALL)
def test_gradients_reach_every_level_and_side_branch(backbone: str, variant: str) -> None:
    model = _small(backbone, variant).train()
    xs = [_rand(model, n=4, seed=i).requires_grad_(True) for i in range(model.num_scales)]
    out = model.forward_multi(xs)
    (out * torch.linspace(-1, 1, out.shape[1])).sum().backward()
    for i, x in enumerate(xs):
        assert x.grad is not None and x.grad.abs().sum() > 0, f"no gradient at scale {i}"
    assert sorted(int(k) for k in model.side_branches) == list(range(model.num_scales - 1))
    for key, side in model.side_branches.items():
        convs = [m for m in side.modules() if isinstance(m, nn.Conv2d)]
        assert convs and all(c.weight.grad is not None and c.weight.grad.abs().sum() > 0 for c in convs), key


@pytest.mark.parametrize(("backbone", "variant"), ALL)
def test_forward_multi_with_identical_inputs_equals_forward(backbone: str, variant: str) -> None:
    model = _small(backbone, variant).eval()
    x = _rand(model)
    with torch.no_grad():
        assert torch.equal(model.forward_multi([x] * model.num_scales), model(x))
        assert torch.equal(model(x), model(x))  # eval-mode determinism
    with pytest.raises(InputShapeError, match="inputs"):
        model.forward_multi([x] * (model.num_scales + 1))


def test_forward_multi_routes_each_input_to_its_level() -> None:
    model = build_model("lenetfc", "td").eval()
    x, noise = _rand(model, seed=0), _rand(model, seed=1)
    with torch.no_grad():
        ref = model(x)
        for scale in range(3):
            xs = [x, x, x]
            xs[scale] = noise
            assert not torch.allclose(model.forward_multi(xs), ref)
        # xs[-1] feeds the stem: silencing every side branch leaves only that path.
        with model.silence(0), model.silence(1):
            a = model.forward_multi([noise, noise, x])
            b = model.forward_multi([x, x, x])
    assert torch.equal(a, b)


@pytest.mark.parametrize("pyramid", PYRAMIDS)
def test_every_pyramid_method_runs(pyramid: str) -> None:
    model = build_model("resnet32", "td", pyramid=pyramid).eval()
    with torch.no_grad():
        assert torch.isfinite(model(_rand(model))).all()


# -- merges and scale ablation ----------------------------------------------------------
@pytest.mark.parametrize("merge", MERGES)
@pytest.mark.parametrize("backbone", ["lenetfc", "resnet32", "resnet18_half"])
def test_merge_methods_channel_counts(merge: str, backbone: str) -> None:
    model = _small(backbone, "td", merge=merge).eval()
    merges = model.merges()
    assert sorted(merges) == list(range(model.num_scales - 1))
    seen: dict[int, int] = {}
    for scale, m in merges.items():
        conv = next(x for x in m.post.modules() if isinstance(x, nn.Conv2d))
        factor = 1 if merge == "add" else 2
        assert m.in_channels == conv.in_channels == factor * m.channels
        assert conv.out_channels == m.channels
        m.register_forward_hook(lambda _m, i, _o, s=scale: seen.__setitem__(s, i[0].shape[1]))
    with torch.no_grad():
        model(_rand(model))
    assert seen == {s: m.channels for s, m in merges.items()}


def test_merge_combinations() -> None:
    u, s = torch.full((1, 2, 1, 1), 3.0), torch.full((1, 2, 1, 1), 1.0)
    out = {m: ResolutionMerge(m, 2, nn.Identity(), scale=0)(u, s).flatten().tolist() for m in MERGES}
    assert out == {"add": [4, 4], "concat": [3, 3, 1, 1], "add_concat": [4, 4, 1, 1]}


@pytest.mark.parametrize("backbone", BACKBONES)
def test_silence_changes_output_and_restores(backbone: str) -> None:
    model = _small(backbone, "td").eval()
    x = _rand(model)
    with torch.no_grad():
        ref = model(x)
        for scale in range(model.num_scales - 1):
            with model.silence(scale) as m:
                assert m is model and model.silenced == frozenset({scale})
                assert not torch.allclose(model(x), ref)
            assert model.silenced == frozenset()
            assert torch.equal(model(x), ref)
    with pytest.raises(ConfigError, match="side branch"), model.silence(model.num_scales - 1):
        pass
    with pytest.raises(ConfigError), build_model(backbone, "bu").silence(0):
        pass


def test_silence_restores_after_exception() -> None:
    model = build_model("lenetfc", "td")
    with pytest.raises(RuntimeError), model.silence(1):
        raise RuntimeError("boom")
    assert model.silenced == frozenset()


# -- validation and normalisation -------------------------------------------------------
def test_bad_input_shapes_raise() -> None:
    model = build_model("lenetfc", "td")
    for bad in (torch.rand(2, 3, 28, 28), torch.rand(1, 28, 28), torch.rand(2, 1, 32, 32)):
        with pytest.raises(InputShapeError, match=r"expected \(N, 1, 28, 28\)"):
            model(bad)
    with pytest.raises(InputShapeError, match="floating"):
        model(torch.zeros(2, 1, 28, 28, dtype=torch.uint8))
    with pytest.raises(InputShapeError):
        model.forward_multi([torch.rand(2, 1, 28, 28), torch.rand(3, 1, 28, 28), torch.rand(2, 1, 28, 28)])


@pytest.mark.parametrize(("backbone", "variant"), [("lenetfc", "bu"), ("nin_light", "td")])
def test_nan_or_inf_pixels_are_refused_not_nan_logits(backbone: str, variant: str) -> None:
    model = build_model(backbone, variant).eval()
    x = torch.rand(4, 1, 28, 28)
    x[0, 0, 3, 3] = float("nan")
    x[2, 0, 5, 5] = float("inf")
    x[2, 0, 6, 6] = -float("inf")
    with pytest.raises(InputValueError, match=r"1 NaN and 2 inf value\(s\) in 2 of 4 image"):
        model(x)
    with pytest.raises(InputValueError, match="NaN"):
        model.forward_multi([torch.rand(4, 1, 28, 28)] * (model.num_scales - 1) + [x])


@pytest.mark.parametrize(
    ("scale", "fragment"),
    [(255.0, r"values in \[0(\.\d+)?, 25\d(\.\d+)?\].*divide 0-255 images by 255"),
     (None, r"values in \[-0\.42\d*, 2\.8\d*\].*do not normalise")],
)
def test_values_outside_unit_range_are_refused(scale: float | None, fragment: str) -> None:
    model = build_model("lenetfc", "bu").eval()
    x = torch.rand(3, 1, 28, 28)
    x[0, 0, 0, 0], x[0, 0, 0, 1] = 0.0, 1.0
    x = x * scale if scale is not None else (x - 0.1307) / 0.3081  # 0-255, or standardised
    with pytest.raises(InputValueError, match=fragment):
        model(x)
    assert issubclass(InputValueError, InputShapeError)


def test_small_overshoot_passes_unchanged_and_is_not_clamped() -> None:
    model = build_model("lenetfc", "bu").eval()
    x = torch.rand(2, 1, 28, 28)
    over = x.clone()
    over[:, :, :4] = 1.05  # e.g. bicubic resampling overshoot
    with torch.no_grad():
        out = model(over)
        assert not torch.equal(out, model(over.clamp(0, 1)))  # the model saw 1.05, not 1.0


def test_float64_input_from_numpy_is_cast_to_the_model_dtype() -> None:
    model = build_model("lenetfc", "td").eval()
    arr = np.random.default_rng(0).random((3, 1, 28, 28))  # float64, as numpy makes it
    x64 = torch.from_numpy(arr).requires_grad_(True)
    out = model(x64)
    assert out.dtype == torch.float32 and out.shape == (3, 10)
    with torch.no_grad():
        assert torch.equal(out.detach(), model(x64.detach().float()))
    out.sum().backward()  # the cast is differentiable
    assert x64.grad is not None and x64.grad.dtype == torch.float64
    with pytest.raises(InputShapeError, match=r"got ndarray; convert it with torch.from_numpy"):
        model(arr)  # type: ignore[arg-type]


def test_input_on_another_device_is_a_clear_error() -> None:
    model = build_model("lenetfc", "bu").to("meta")
    with pytest.raises(InputShapeError, match=r"is on cpu but the model is on meta; move the input"):
        model(torch.rand(2, 1, 28, 28))


@pytest.mark.parametrize(("backbone", "variant"), [("lenetfc", "td"), ("nin_light", "bu"), ("resnet32", "td")])
def test_empty_batch_gives_empty_logits_in_eval_and_train(backbone: str, variant: str) -> None:
    model = build_model(backbone, variant)
    x = torch.rand(0, *model.input_shape)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for train in (False, True):
        model.train(train)
        out = model(x)
        assert out.shape == (0, 10)
        assert out.shape == model.forward_multi([x] * model.num_scales).shape
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if not k.endswith("num_batches_tracked"))


def test_trusted_inputs_skips_only_the_value_check_and_restores() -> None:
    from tdlib.models.base import trusted_inputs

    model = build_model("lenetfc", "bu").eval()
    wrapper = torch.nn.Sequential(model)
    bad = torch.rand(2, 1, 28, 28) * 255
    with trusted_inputs(wrapper):
        assert not model.check_values
        with torch.no_grad():
            assert model(bad).shape == (2, 10)
        with pytest.raises(InputShapeError, match="expected"):
            model(torch.rand(2, 3, 28, 28))  # shapes are still checked
    assert model.check_values
    with pytest.raises(InputValueError):
        model(bad)


def test_unknown_names_raise_with_accepted_values() -> None:
    with pytest.raises(UnknownNameError, match="resnet32"):
        build_model("resnet50", "bu")
    with pytest.raises(UnknownNameError, match="td_rev"):
        build_model("nin", "tdx")
    with pytest.raises(UnknownNameError, match="bu, td$"):
        build_model("resnet18_half", "td_uni")
    with pytest.raises(UnknownNameError, match="gaussian"):
        build_model("nin", "td", pyramid="bicubic")
    with pytest.raises(UnknownNameError, match="add_concat"):
        build_model("nin", "td", merge="mul")
    with pytest.raises(UnknownNameError):
        available_variants("vgg")
    assert VARIANTS == ("bu", "td", "td_uni", "td_rev")
    assert BACKBONES == ("lenetfc", "nin_light", "nin", "resnet32", "resnet18_half")
    assert available_variants("resnet18_half") == ("bu", "td")


def test_normalisation_is_first_layer_and_state_dict_is_stable() -> None:
    plain = build_model("resnet32", "td")
    assert torch.equal(plain.normalize.mean, torch.zeros(3, 32, 32))
    assert torch.equal(plain.normalize.std, torch.ones(3, 1, 1))
    mean_img = torch.rand(3, 32, 32)
    a = build_model("resnet32", "td", mean=mean_img, std=torch.tensor([0.5, 0.5, 0.5]))
    b = build_model("resnet32", "td", mean=torch.tensor([0.1, 0.2, 0.3]))
    assert torch.equal(a.normalize.mean, mean_img)
    assert torch.equal(b.normalize.mean[:, 5, 7], torch.tensor([0.1, 0.2, 0.3]))
    assert list(a.state_dict()) == list(plain.state_dict()) == list(b.state_dict())
    assert "normalize.mean" in a.state_dict() and "normalize.std" in a.state_dict()
    # Pyramid matrices are derived buffers and do not go into checkpoints.
    assert not any(k.startswith("pyramid.") for k in a.state_dict())
    x = torch.rand(1, 3, 32, 32)
    a.eval()
    shifted = a.normalize(x)
    torch.testing.assert_close(shifted, (x - mean_img) / 0.5)
    with pytest.raises(ConfigError, match="mean"):
        build_model("resnet32", "td", mean=torch.zeros(3, 28, 28))
    with pytest.raises(ConfigError, match="std"):
        build_model("resnet32", "td", std=torch.ones(3, 32, 32))


def test_batchnorm_and_init_follow_reference() -> None:
    for backbone, (mom, eps) in {"nin": (0.01, 1e-3), "resnet32": (0.1, 1e-5)}.items():
        model = build_model(backbone, "td")
        bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
        assert bns and all(m.momentum == mom and m.eps == eps for m in bns)
        convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
        assert all(c.bias is not None and torch.all(c.bias == 0) for c in convs)
    dropouts = [m for m in build_model("nin_light", "td").modules() if isinstance(m, Dropout)]
    assert len(dropouts) == 2 and all(d.p == 0.5 for d in dropouts)
    assert not any(isinstance(m, Dropout | nn.Dropout) for m in build_model("lenetfc", "bu").modules())
    w = build_model("resnet32", "bu").stem.weight
    assert abs(float(w.detach().std()) - (2 / w[0].numel()) ** 0.5) < 0.3 * (2 / w[0].numel()) ** 0.5


# -- TF "SAME" layers ---------------------------------------------------------------------
def test_tf_same_padding_is_bottom_right() -> None:
    assert tf_same_padding(32, 3, 2) == (0, 1)
    assert tf_same_padding(32, 1, 2) == (0, 0)
    assert tf_same_padding(28, 5, 1) == (2, 2)
    assert tf_same_padding(7, 3, 2) == (1, 1)
    conv = Conv2dSame(1, 1, 3, stride=2)
    x = torch.rand(1, 1, 8, 8)
    ref = F.conv2d(F.pad(x, (0, 1, 0, 1)), conv.weight, conv.bias, stride=2)
    torch.testing.assert_close(conv(x), ref)
    same = Conv2dSame(3, 4, 5)  # stride 1, odd kernel: padded natively, same result as F.pad
    x = torch.rand(2, 3, 9, 9)
    torch.testing.assert_close(same(x), F.conv2d(F.pad(x, (2, 2, 2, 2)), same.weight, same.bias))
    pool = MaxPool2dSame(3, 2)
    y = pool(-torch.ones(1, 1, 4, 4))
    assert y.shape == (1, 1, 2, 2) and torch.all(y == -1)  # padding never wins


@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_pointwise_conv_is_the_convolution_forward_and_backward(layout: str) -> None:
    """1x1 Conv2dSame on NCHW tensors runs as a matrix product: same values and gradients as the
    convolution (float64), and channels_last tensors keep their layout through the convolution."""
    torch.manual_seed(0)
    conv = Conv2dSame(6, 10, 1).double()
    x = torch.randn(3, 6, 5, 7, dtype=torch.float64)
    if layout == "channels_last":
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    y = conv(x)
    ref_x = x.detach().clone().requires_grad_(True)
    w, b = conv.weight.detach().clone().requires_grad_(True), conv.bias.detach().clone().requires_grad_(True)
    ref = F.conv2d(ref_x, w, b)
    torch.testing.assert_close(y, ref)
    assert y.shape == (3, 10, 5, 7)
    if layout == "channels_last":
        assert y.is_contiguous(memory_format=torch.channels_last)
    g = torch.randn_like(ref)
    y.backward(g)
    ref.backward(g)
    torch.testing.assert_close(x.grad, ref_x.grad)
    torch.testing.assert_close(conv.weight.grad, w.grad)
    torch.testing.assert_close(conv.bias.grad, b.grad)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_runs_on_cuda() -> None:
    for backbone, variant in [("nin_light", "td"), ("resnet32", "td_rev"), ("resnet18_half", "td")]:
        model = build_model(backbone, variant).cuda().eval()
        x = torch.rand((2, *model.input_shape))
        with torch.no_grad():
            out = model(x.cuda())
            assert out.is_cuda and out.shape == (2, 10)
            cpu = build_model(backbone, variant)
            cpu.load_state_dict(model.state_dict())
            torch.testing.assert_close(out.cpu(), cpu.eval()(x), atol=1e-3, rtol=1e-3)
        summary = model_summary(model)
        assert summary["params"] == REFERENCE[(backbone, variant)][0]


# -- dropout ------------------------------------------------------------------------------
@pytest.mark.parametrize("channels_last", [False, True])
def test_dropout_keeps_one_minus_p_scaled_and_backprops_the_same_mask(channels_last: bool) -> None:
    torch.manual_seed(0)
    x = torch.rand(64, 8, 12, 12) + 0.5
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    x.requires_grad_(True)
    drop = Dropout(0.5).train()
    y = drop(x)
    kept = y != 0
    assert abs(float(kept.float().mean()) - 0.5) < 0.01
    torch.testing.assert_close(y[kept], 2 * x.detach()[kept])
    y.sum().backward()
    assert x.grad is not None
    torch.testing.assert_close(x.grad, 2.0 * kept.float())
    # independent masks per call, reproducible from torch's seed, identity in eval mode
    torch.manual_seed(1)
    a = drop(x.detach())
    torch.manual_seed(1)
    assert torch.equal(a, drop(x.detach())) and not torch.equal(a, drop(x.detach()))
    assert drop.eval()(x) is x


def test_dropout_other_rates_and_bad_rate() -> None:
    torch.manual_seed(0)
    x = torch.ones(200_000)
    for p in (0.25, 0.3):  # 0.25 takes the byte path, 0.3 torch's own dropout
        kept = float((Dropout(p).train()(x) != 0).float().mean())
        assert abs(kept - (1 - p)) < 0.01
    with pytest.raises(ConfigError):
        Dropout(1.0)
