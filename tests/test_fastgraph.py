"""The attack scans' inference graphs: polyphase merges and the space-to-depth last TD level."""

from __future__ import annotations

import copy
from collections.abc import Iterator

import pytest
import torch
from torch import nn
from torch.nn import functional as F

from tdlib.attacks.fastgraph import (
    NarrowFullResTD,
    SpaceToDepthTD,
    narrow_full_res_td,
    s2d_weight,
    space_to_depth_td,
)
from tdlib.attacks.queries import (
    UpsampledMerge,
    fold_batchnorm,
    fuse_upsampling,
    polyphase_weight,
    query_model,
    split_merges,
)
from tdlib.models import build_model
from tdlib.native import narrow_conv_available


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_polyphase_weight_is_the_convolution_of_the_upsampled_input(k: int) -> None:
    torch.manual_seed(k)
    a, w = torch.randn(3, 4, 5, 6, dtype=torch.float64), torch.randn(7, 4, k, k, dtype=torch.float64)
    ref = F.conv2d(F.interpolate(a, scale_factor=2.0, mode="nearest"), w, padding=k // 2)
    wp, pad = polyphase_weight(w)
    got = F.pixel_shuffle(F.conv2d(a, wp, padding=pad), 2)
    assert torch.allclose(got, ref, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("k", [1, 3, 5, 7])
def test_s2d_weight_is_the_convolution_in_space_to_depth_layout(k: int) -> None:
    torch.manual_seed(k)
    x, w = torch.randn(3, 2, 10, 8, dtype=torch.float64), torch.randn(5, 2, k, k, dtype=torch.float64)
    ref = F.pixel_unshuffle(F.conv2d(x, w, padding=k // 2), 2)
    ws, pad = s2d_weight(w)
    assert torch.allclose(F.conv2d(F.pixel_unshuffle(x, 2), ws, padding=pad), ref, rtol=1e-12, atol=1e-12)


def _prepared(model: nn.Module) -> nn.Module:
    fast = copy.deepcopy(model)
    fold_batchnorm(fast)
    split_merges(fast)
    return fast


@pytest.fixture(params=["native", "no-native"])
def native(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[bool]:
    """Run with tdlib.native's compiled convolution where this machine has it, and without."""
    from tdlib.native import library

    monkeypatch.setenv("TDLIB_NATIVE", "1" if request.param == "native" else "0")
    library.cache_clear()
    yield request.param == "native" and narrow_conv_available()
    monkeypatch.undo()
    library.cache_clear()


@pytest.mark.parametrize("backbone", ["lenetfc", "nin_light"])
@pytest.mark.parametrize("variant", ["td", "td_uni", "td_rev"])
def test_query_model_of_a_plain_td_is_the_same_function(backbone: str, variant: str, native: bool) -> None:
    torch.manual_seed(0)
    model = build_model(backbone, variant).eval()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so that folding shows
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    x = torch.rand(12, *model.input_shape)
    qm = query_model(model, x)
    merges = [m for m in qm.model.modules() if isinstance(m, UpsampledMerge)]
    if (backbone, variant) == ("lenetfc", "td"):  # 6 channels at full resolution: C, else space-to-depth
        assert type(qm.model) is (NarrowFullResTD if native else SpaceToDepthTD)
        assert len(merges) == model.num_scales - 2  # the last merge lives in the full-resolution graph
    else:  # 16 (td_uni), 32 (td_rev), 48 (NIN-light) channels are wide enough
        assert type(qm.model) is type(model) and len(merges) == model.num_scales - 1
    with torch.no_grad():
        ref = model(x)
        got = qm(x)
    assert torch.allclose(got, ref, rtol=1e-4, atol=1e-4 * float(ref.abs().max()))
    assert torch.equal(qm.predict(x), ref.argmax(1))


def test_fast_graphs_only_where_they_are_the_same_function() -> None:
    torch.manual_seed(0)
    model = build_model("lenetfc", "td").eval()
    silenced = copy.deepcopy(model)
    with silenced.silence(0):  # a silenced merge is not split: nothing to fuse
        fast = _prepared(silenced)
        assert fuse_upsampling(fast) == 0 and space_to_depth_td(fast) is None
    added = _prepared(build_model("lenetfc", "td", merge="add").eval())  # nothing split
    assert fuse_upsampling(added) == 0
    hooked = _prepared(model)
    hooked.act_4 = nn.ReLU()  # a hook point that does something: the graph would skip it
    assert fuse_upsampling(hooked) == 2 and space_to_depth_td(hooked) is None and narrow_full_res_td(hooked) is None
    fused = _prepared(model)
    assert fuse_upsampling(fused) == 2 and type(fused.upsample) is nn.Identity
    x = torch.rand(5, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(fused(x), model(x), rtol=1e-5, atol=1e-5)
    bu = build_model("lenetfc", "bu").eval()
    assert space_to_depth_td(_prepared(bu)) is None and fuse_upsampling(_prepared(bu)) == 0
    assert narrow_full_res_td(_prepared(bu)) is None
    wide = _prepared(build_model("lenetfc", "td_uni").eval())  # 16 channels at full resolution
    assert fuse_upsampling(wide) == 2 and narrow_full_res_td(wide) is None
    small = _prepared(build_model("lenetfc", "td", input_size=16).eval())  # rows of 16: half a vector
    assert fuse_upsampling(small) == 2 and narrow_full_res_td(small) is None


def test_padded_forwards_classify_every_row_as_the_model_does() -> None:
    from tdlib.attacks.queries import bucket

    sizes = [bucket(n) for n in range(1, 513)]
    assert all(s >= n for n, s in enumerate(sizes, 1)) and len(set(sizes)) == 40
    assert all(bucket(n) - n <= n / 8 for n in range(32, 2000))
    torch.manual_seed(0)
    model = build_model("lenetfc", "td").eval()
    x = torch.rand(41, 1, 28, 28)
    qm = query_model(model, x, batch=16)  # chunks of 16, 16 and 9 (padded to 12)
    with torch.no_grad():
        ref = model(x).argmax(1)
    for n in (1, 5, 13, 41):
        assert torch.equal(qm.predict(x[:n]), ref[:n])
    assert qm.queries == 1 + 5 + 13 + 41
