"""tdlib.native: the compiled MT19937 replays draw what numpy and CPython draw, value for value, and
the compiled narrow convolution computes what ``F.conv2d`` computes (to float rounding)."""

from __future__ import annotations

import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from tdlib.attacks.pointwise import run_pointwise
from tdlib.attacks.queries import query_model
from tdlib.attacks.streams import DoubleStream
from tdlib.native import MTState, library

needs_native = pytest.mark.skipif(library() is None, reason="no C compiler: tdlib.native unavailable")


@pytest.fixture
def no_native(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TDLIB_NATIVE", "0")
    library.cache_clear()
    yield
    monkeypatch.delenv("TDLIB_NATIVE")
    library.cache_clear()


@needs_native
@pytest.mark.parametrize("seed", [0, 1, 2**31 + 7, 2**32 - 1])
def test_doubles_and_gaussians_replay_randomstate(seed: int) -> None:
    rs = np.random.RandomState(seed)
    rs.standard_normal(3)  # leaves a spare Gaussian: the state carries it over
    st = MTState.from_numpy(rs)
    # sizes that end on, before and after the 624-word twist (312 doubles per block), odd positions
    for n in (1, 311, 312, 313, 1, 1000, 100_003, 7):
        out = np.empty(n)
        st.doubles(out)
        assert np.array_equal(out, rs.random_sample(n)), n
        out = np.empty(n % 1000 + 1)
        st.gauss(out)
        assert np.array_equal(out, rs.standard_normal(out.size)), n


@needs_native
@pytest.mark.parametrize("seed", [0, 3, 2**32 - 1])
def test_shuffle_replays_python_random(seed: int) -> None:
    rng = random.Random(seed)
    rng.random()
    st = MTState.from_python(rng)
    for n in (784, 2, 1, 0, 3072, 100_000, 5):
        ref = list(range(n))
        rng.shuffle(ref)
        got = np.arange(n, dtype=np.int64)
        st.shuffle(got)
        assert got.tolist() == ref, n
    assert st.to_python() == rng.getstate()


@needs_native
def test_bad_state_is_refused() -> None:
    with pytest.raises(ValueError, match="624 words"):
        MTState(np.zeros(10, dtype=np.uint32), 0)


@needs_native
def test_bad_output_arrays_are_refused_before_any_draw() -> None:
    rs = np.random.RandomState(5)
    st = MTState.from_numpy(rs)
    for bad in (np.empty(10, dtype=np.float32), np.empty((4, 6))[:, ::2], np.empty(3)[::-1]):
        with pytest.raises(ValueError, match="C-contiguous float64"):
            st.doubles(bad)
        with pytest.raises(ValueError, match="C-contiguous float64"):
            st.gauss(bad)
    frozen = np.zeros(5)
    frozen.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        st.doubles(frozen)
    with pytest.raises(ValueError, match="int64"):
        st.shuffle(np.arange(5, dtype=np.int32))
    out = np.empty(7)
    st.doubles(out)  # nothing was drawn by the refused calls
    assert np.array_equal(out, rs.random_sample(7))


def test_disabled_or_unbuildable_library_falls_back(no_native: None, monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    assert library() is None
    with pytest.raises(RuntimeError, match="not available"):
        MTState.from_python(random.Random(0))
    monkeypatch.setenv("TDLIB_NATIVE", "1")
    monkeypatch.setenv("TDLIB_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # a compiler that always fails
    library.cache_clear()
    with pytest.warns(RuntimeWarning, match="unavailable"):
        assert library() is None
    assert list(tmp_path.iterdir()) == []  # no half-written library left behind


def _stream_values(kind: str) -> np.ndarray:
    s = DoubleStream(11, kind)
    parts = [s.window(0, 5).copy(), s.window(5, 70_000).copy()]
    s.release(70_000)
    parts.append(s.window(100_000, 100_013).copy())
    return np.concatenate(parts)


@pytest.mark.parametrize("kind", ["uniform", "normal"])
def test_streams_are_the_same_with_and_without_native(kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _stream_values(kind)
    monkeypatch.setenv("TDLIB_NATIVE", "0")
    library.cache_clear()
    try:
        slow = _stream_values(kind)
    finally:
        monkeypatch.delenv("TDLIB_NATIVE")
        library.cache_clear()
    rs = np.random.RandomState(11)
    ref = rs.random_sample(100_013) if kind == "uniform" else rs.standard_normal(100_013)
    assert np.array_equal(slow, fast)
    assert np.array_equal(fast, np.concatenate([ref[:70_000], ref[100_000:]]))


def test_pointwise_is_the_same_with_and_without_native(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    x = torch.rand(24, 1, 8, 8)
    with torch.no_grad():
        y = net(x).argmax(1)
    start = torch.where(torch.rand_like(x) < 0.5, torch.zeros_like(x), torch.ones_like(x))
    with torch.no_grad():
        keep = net(start).argmax(1) != y  # adversarial starting points only
    x, y, start = x[keep], y[keep], start[keep]
    assert x.shape[0] >= 2
    linf = (start - x).abs().flatten(1).amax(1)

    def run() -> torch.Tensor:
        rngs = [random.Random(i) for i in range(x.shape[0])]
        return run_pointwise(query_model(net, x[:2]), x, y, start, linf, rngs)

    fast = run()
    monkeypatch.setenv("TDLIB_NATIVE", "0")
    library.cache_clear()
    try:
        slow = run()
    finally:
        monkeypatch.delenv("TDLIB_NATIVE")
        library.cache_clear()
    assert torch.equal(fast, slow)
    assert not torch.equal(fast, start)  # the attack moved


# --- NarrowConv: the compiled convolution of the attack query graphs -------------------------------------
CONV_CASES = [  # (ci, co, k, h, w): LeNetFC's full-resolution layers, odd sizes, the widest row, 1x1
    (1, 6, 5, 28, 28), (6, 6, 3, 28, 28), (6, 6, 5, 28, 28), (12, 6, 3, 28, 28), (6, 10, 1, 28, 28),
    (3, 7, 7, 5, 9), (2, 13, 3, 1, 1), (5, 1, 1, 3, 32), (4, 8, 5, 32, 32), (16, 16, 3, 7, 30),
]


@needs_native
@pytest.mark.parametrize(("ci", "co", "k", "h", "w"), CONV_CASES)
@pytest.mark.parametrize("relu", [False, True])
def test_narrow_conv_is_the_convolution(ci: int, co: int, k: int, h: int, w: int, relu: bool) -> None:
    from tdlib.native import NarrowConv

    torch.manual_seed(ci * 100 + co * 10 + k)
    conv = torch.nn.Conv2d(ci, co, k, padding=k // 2, bias=(co % 2 == 0))
    native = NarrowConv(conv, relu=relu)
    for n in (0, 1, 3):
        x = torch.randn(n, ci, h, w)
        with torch.no_grad():
            ref = conv(x)
            ref = ref.relu() if relu else ref
            got = native(x)
            assert got.shape == ref.shape and got.is_contiguous()
            torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-5)
            # any layout in, NCHW out
            torch.testing.assert_close(native(x.contiguous(memory_format=torch.channels_last)), ref,
                                       rtol=1e-5, atol=1e-5)


@needs_native
@pytest.mark.parametrize(("ci", "cu", "k", "h", "w"), [(6, 6, 3, 28, 28), (1, 3, 5, 6, 10), (16, 16, 3, 14, 14)])
@pytest.mark.parametrize("relu", [False, True])
def test_narrow_conv_upsamples_its_second_input(ci: int, cu: int, k: int, h: int, w: int, relu: bool) -> None:
    """``forward(x, u)`` is the convolution of ``cat([x, up2(u)])`` (the merge of a top-down level)."""
    from tdlib.native import NarrowConv

    torch.manual_seed(ci + cu + k)
    conv = torch.nn.Conv2d(ci + cu, 6, k, padding=k // 2)
    native = NarrowConv(conv, relu=relu, up_channels=cu)
    x = torch.randn(3, ci, h, w)
    u = torch.randn(3, cu, h // 2, w // 2)
    with torch.no_grad():
        ref = conv(torch.cat([x, F.interpolate(u, scale_factor=2, mode="nearest")], dim=1))
        ref = ref.relu() if relu else ref
        torch.testing.assert_close(native(x, u), ref, rtol=1e-5, atol=1e-5)
        # u in any strides: channels-last, and a sliced view
        torch.testing.assert_close(native(x, u.contiguous(memory_format=torch.channels_last)), ref,
                                   rtol=1e-5, atol=1e-5)
        wide = torch.randn(3, cu + 2, h // 2, w // 2)
        wide[:, 1:cu + 1] = u
        torch.testing.assert_close(native(x, wide[:, 1:cu + 1]), ref, rtol=1e-5, atol=1e-5)


@needs_native
def test_narrow_conv_refuses_what_it_cannot_compute() -> None:
    from tdlib.native import NarrowConv

    with pytest.raises(ValueError, match="stride-1 'same'"):
        NarrowConv(torch.nn.Conv2d(2, 2, 3, stride=2, padding=1), relu=False)
    with pytest.raises(ValueError, match="stride-1 'same'"):
        NarrowConv(torch.nn.Conv2d(2, 2, 4, padding=2), relu=False)
    with pytest.raises(ValueError, match="stride-1 'same'"):
        NarrowConv(torch.nn.Conv2d(2, 2, 3, padding=0), relu=False)
    native = NarrowConv(torch.nn.Conv2d(2, 3, 3, padding=1), relu=False)
    for bad in (torch.zeros(1, 3, 8, 8), torch.zeros(1, 2, 8, native.max_width + 2), torch.zeros(2, 8, 8),
                torch.zeros(1, 2, 8, 8, dtype=torch.float64)):
        with pytest.raises(ValueError, match="expected a CPU float32"):
            native(bad)
    with pytest.raises(ValueError, match="u must be float32"):  # built without an upsampled input
        native(torch.zeros(1, 2, 8, 8), torch.zeros(1, 1, 4, 4))
    with pytest.raises(ValueError, match="up_channels must be in"):
        NarrowConv(torch.nn.Conv2d(2, 3, 3, padding=1), relu=False, up_channels=2)
    with pytest.raises(ValueError, match="up_channels must be in"):
        NarrowConv(torch.nn.Conv2d(2, 3, 1), relu=False, up_channels=1)
    up = NarrowConv(torch.nn.Conv2d(5, 3, 3, padding=1), relu=False, up_channels=3)
    for x, u in ((torch.zeros(1, 2, 8, 8), None), (torch.zeros(1, 2, 8, 8), torch.zeros(1, 3, 8, 8)),
                 (torch.zeros(1, 2, 7, 8), torch.zeros(1, 3, 3, 4)),
                 (torch.zeros(1, 2, 8, 8), torch.zeros(1, 3, 4, 4, dtype=torch.float64))):
        with pytest.raises(ValueError, match="u must be float32"):
            up(x, u)
