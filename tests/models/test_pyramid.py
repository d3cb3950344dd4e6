"""The TD input pyramid: TF-exact gaussian weights, sizes, blur and differentiability."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from tdlib.errors import ConfigError, UnknownNameError
from tdlib.models.pyramid import PYRAMIDS, Pyramid, tf_gaussian_matrix

pytestmark = pytest.mark.usefixtures("single_thread")


# fmt: off
# pyramid-notes.md section 3: interior half-kernels (centre -> edge) and border row 0.
HALF = {
    2: [0.352692, 0.129748, 0.017560],
    4: [0.193806, 0.150936, 0.091547, 0.043244, 0.015909, 0.004558],
    8: [0.099221, 0.093209, 0.082257, 0.068193, 0.053109, 0.038855, 0.026705, 0.017242,
        0.010458, 0.005959, 0.003189, 0.001604],
    16: [0.049904, 0.049131, 0.047619, 0.045438, 0.042685, 0.039478, 0.035945, 0.032221,
         0.028435, 0.024704, 0.021131, 0.017794, 0.014752, 0.012040, 0.009674, 0.007653,
         0.005960, 0.004570, 0.003450, 0.002563, 0.001875, 0.001351, 0.000958, 0.000669],
}
BORDER = {
    2: [0.413622, 0.413622, 0.152163, 0.020593],
    4: [0.178677, 0.229426, 0.229426, 0.178677, 0.108373, 0.051192, 0.018832, 0.005396],
    8: [0.080905, 0.097590, 0.110584, 0.117716, 0.117716, 0.110584, 0.097590, 0.080905,
        0.063009, 0.046098, 0.031683, 0.020456, 0.012407, 0.007069, 0.003784, 0.001903],
    16: [0.038248, 0.042668, 0.046862, 0.050670, 0.053938, 0.056526, 0.058321, 0.059239,
         0.059239, 0.058321, 0.056526, 0.053938, 0.050670, 0.046862, 0.042668, 0.038248,
         0.033753, 0.029326, 0.025083, 0.021122, 0.017511, 0.014292, 0.011484, 0.009085,
         0.007075, 0.005425, 0.004095, 0.003043, 0.002226, 0.001604, 0.001137, 0.000794],
}
# fmt: on
TOL = 1e-6  # the tables are rounded to 6 decimals (error <= 5e-7)


@pytest.mark.parametrize(("n", "f"), [(28, 2), (28, 4), (32, 2), (32, 4), (128, 2), (128, 4), (128, 8), (128, 16)])
def test_gaussian_matrix_matches_tf_tables(n: int, f: int) -> None:
    m = tf_gaussian_matrix(n, f)
    n_out = n // f
    assert m.shape == (n_out, n)
    torch.testing.assert_close(m.sum(1), torch.ones(n_out, dtype=torch.float64))
    interior = torch.tensor(HALF[f][::-1] + HALF[f], dtype=torch.float64)
    for o in range(1, n_out - 1):
        row = m[o]
        taps = slice(f * o - f, f * o + 2 * f)
        assert (row[taps] - interior).abs().max() < TOL
        outside = torch.ones(n, dtype=torch.bool)
        outside[taps] = False
        assert row[outside].abs().max() == 0  # nothing outside the 3f taps
    border = torch.tensor(BORDER[f], dtype=torch.float64)
    assert (m[0, : 2 * f] - border).abs().max() < TOL
    assert m[0, 2 * f :].abs().max() == 0
    assert (m[-1, n - 2 * f :] - border.flip(0)).abs().max() < TOL
    assert m[-1, : n - 2 * f].abs().max() == 0


def test_gaussian_level_is_separable_outer_product_including_corners() -> None:
    pyr = Pyramid("gaussian", 28, 28, 3)
    for scale, f in ((1, 2), (2, 4)):
        m = tf_gaussian_matrix(28, f)
        for i, j in ((0, 0), (0, 27), (27, 27), (13, 5)):
            x = torch.zeros(1, 1, 28, 28)
            x[0, 0, i, j] = 1.0
            y = pyr.level(x, scale)[0, 0].double()
            expected = torch.outer(m[:, i], m[:, j])
            assert (y - expected).abs().max() < TOL


@pytest.mark.parametrize("size", [28, 32, 128])
def test_gaussian_level_float32_matches_float64_spec(size: int) -> None:
    scales = 5 if size == 128 else 3
    pyr = Pyramid("gaussian", size, size, scales)
    x = torch.rand(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    for s in range(1, scales):
        m = tf_gaussian_matrix(size, 2**s)
        ref = torch.einsum("oh,nchw,pw->ncop", m, x.double(), m)
        assert (pyr.level(x, s).double() - ref).abs().max() < TOL


@pytest.mark.parametrize("method", PYRAMIDS)
def test_level_sizes_and_level0_is_identity(method: str) -> None:
    pyr = Pyramid(method, 32, 64, 4)
    x = torch.rand(2, 3, 32, 64)
    levels = pyr(x)
    assert [tuple(t.shape) for t in levels] == [(2, 3, 32 // 2**i, 64 // 2**i) for i in range(4)]
    assert levels[0] is x
    assert all(torch.isfinite(t).all() for t in levels)


def test_noblur_and_pool_definitions() -> None:
    x = torch.rand(1, 2, 28, 28)
    assert torch.equal(Pyramid("noblur", 28, 28, 3).level(x, 2), x[..., ::4, ::4])
    assert torch.equal(Pyramid("pool", 28, 28, 3).level(x, 2), F.max_pool2d(x, 4, 4))


def test_antialias_matches_zhang_steps() -> None:
    x = torch.rand(1, 1, 28, 28)
    pyr = Pyramid("antialias", 28, 28, 3)
    # step 1: 2x2 max over x[i:i+2, j:j+2], clipped at the bottom/right edge
    padded = F.pad(x, (0, 1, 0, 1), value=-float("inf"))
    m = F.max_pool2d(padded, 2, 1)
    assert m.shape == x.shape and m[0, 0, 27, 27] == x[0, 0, 27, 27]
    d = torch.arange(-2, 3, dtype=torch.float64)
    g = torch.exp(-(d**2) / (2 * 0.6**2))
    k = torch.outer(g, g) / torch.outer(g, g).sum()
    ref = F.conv2d(m.double(), k[None, None], padding=2)[..., ::2, ::2]
    torch.testing.assert_close(pyr.level(x, 1).double(), ref, atol=1e-6, rtol=0)


def _high_band(x: torch.Tensor, f: int) -> torch.Tensor:
    """Keep only frequencies above the Nyquist frequency of the level (1 / (2 f))."""
    spec = torch.fft.fft2(x)
    fy = torch.fft.fftfreq(x.shape[-2]).abs()[:, None]
    fx = torch.fft.fftfreq(x.shape[-1]).abs()[None, :]
    low = (fy < 0.5 / f) & (fx < 0.5 / f)
    return torch.fft.ifft2(spec * (~low)).real


@pytest.mark.parametrize("scale", [1, 2, 3, 4])
def test_gaussian_suppresses_energy_above_new_nyquist(scale: int) -> None:
    f = 2**scale
    noise = torch.randn(4, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    high = _high_band(noise, f)
    plain = Pyramid("noblur", 128, 128, 5).level(high, scale).pow(2).mean()
    blurred = Pyramid("gaussian", 128, 128, 5).level(high, scale).pow(2).mean()
    assert plain > 0.5  # plain subsampling aliases the high band at full strength
    assert blurred / plain < 0.05


@pytest.mark.parametrize("method", ["gaussian", "noblur", "antialias"])
def test_levels_are_differentiable(method: str) -> None:
    pyr = Pyramid(method, 16, 16, 3).double()
    x = torch.rand(1, 1, 16, 16, dtype=torch.float64, requires_grad=True)
    for s in (1, 2):
        assert torch.autograd.gradcheck(lambda t, s=s: pyr.level(t, s), (x,))


def test_bad_configuration() -> None:
    with pytest.raises(UnknownNameError, match="gaussian"):
        Pyramid("bilinear", 28, 28, 3)
    with pytest.raises(ConfigError, match="divisible"):
        Pyramid("gaussian", 30, 30, 3)
    with pytest.raises(ConfigError, match="scale"):
        Pyramid("gaussian", 28, 28, 3).level(torch.rand(1, 1, 28, 28), 3)
