"""The ``paper`` protocol's engines against sequential ports of foolbox 2.2.1 and against scipy.

The ports below follow foolbox 2.2.1's code line by line for one image (an ``Adversarial`` that keeps
the strictly Linf-smaller adversarial, numpy float32 arithmetic, the module-level RNGs replaced by
the sample's own); tdlib's packed, speculative versions must return exactly what they return.
The differential test against foolbox 2.2.1 itself is tests/attacks/test_foolbox2.py.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import Tensor, nn

from tdlib.attacks import run_attack
from tdlib.attacks.base import AttackContext
from tdlib.attacks.linear import blur_matrix, gaussian_blur
from tdlib.attacks.queries import QueryModel, bucket
from tdlib.attacks.scan import Schedule, epsilon_grid, first_hit
from tdlib.attacks.spatial import _Transforms, spatial_grid, transform_image
from tdlib.attacks.streams import DoubleStream, ShuffleStream, fisher_yates, sample_seed
from tdlib.errors import ConfigError

pytestmark = pytest.mark.usefixtures("single_thread")

SIZE, CLASSES = 8, 3


class _Net(nn.Module):
    """Conv -> BatchNorm -> ReLU -> linear, trained on noisy templates."""

    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU())
        self.head = nn.Linear(4 * SIZE * SIZE, CLASSES)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.head(self.body(x).flatten(1))
        return out


def _data(n: int, seed: int) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(0)
    templates = (torch.rand(CLASSES, 1, SIZE, SIZE, generator=g) > 0.5).float()
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, CLASSES, (n,), generator=g)
    x = (0.6 * templates[y] + 0.4 * torch.rand(n, 1, SIZE, SIZE, generator=g)).clamp(0, 1)
    return x, y


@pytest.fixture(scope="module")
def net() -> nn.Module:
    torch.manual_seed(0)
    model = _Net()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for step in range(60):
        x, y = _data(64, 100 + step)
        loss = nn.functional.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def batch(net: nn.Module) -> tuple[Tensor, Tensor]:
    """Clean-correct samples only (foolbox 2 skips the others)."""
    x, y = _data(12, 1)
    with torch.no_grad():
        ok = net(x).argmax(1) == y
    assert int(ok.sum()) >= 8
    return x[ok], y[ok]


# --- foolbox 2.2.1, one image at a time ---------------------------------------------------------
class _Adversarial:
    """foolbox 2's ``Adversarial`` with distance Linf: keeps the first strictly smaller adversarial."""

    def __init__(self, model: nn.Module, x: np.ndarray, label: int) -> None:
        self.model, self.x, self.label = model, x, label
        self.best: np.ndarray | None = None
        self.dist = np.inf
        self.queries = 0

    def query(self, cand: np.ndarray) -> bool:
        self.queries += 1
        with torch.no_grad():
            pred = int(self.model(torch.from_numpy(cand[None].astype(np.float32))).argmax(1))
        if pred == self.label:
            return False
        d = float(np.max(np.abs(cand - self.x)))
        if d < self.dist:
            self.best, self.dist = cand.copy(), d
        return True


def _fb2_salt_and_pepper(a: _Adversarial, rs: np.random.RandomState) -> None:
    x = a.x
    channels = x.shape[0]
    shape = [1, *x.shape[1:]]
    epsilons = min(100, int(np.prod(shape)))
    max_epsilon = 1.0
    for _ in range(10):
        for epsilon in np.linspace(0, max_epsilon, num=epsilons + 1)[1:]:
            p = epsilon
            u = rs.uniform(size=shape).repeat(channels, axis=0)
            salt = (u >= 1 - p / 2).astype(x.dtype)
            pepper = -(u < p / 2).astype(x.dtype)
            perturbed = np.clip(x + salt + pepper, 0, 1)
            if float(np.max(np.abs(perturbed - x))) >= a.dist:
                continue
            if a.query(perturbed):
                max_epsilon = min(1, epsilon * 1.2)
                break


def _fb2_pointwise(a: _Adversarial, rs: np.random.RandomState, rng: random.Random) -> None:
    _fb2_salt_and_pepper(a, rs)
    if a.best is None:
        return
    shape = a.x.shape
    n = a.x.size
    original = a.x.reshape(-1)
    x = a.best.copy().reshape(-1)
    while True:
        indices = list(range(n))
        rng.shuffle(indices)
        for index in indices:
            old_value, new_value = x[index], original[index]
            if old_value == new_value:
                continue
            x[index] = new_value
            if a.query(x.reshape(shape)):
                break
            x[index] = old_value
        else:
            break
    while True:
        indices = list(range(n))
        rng.shuffle(indices)
        improved = False
        for index in indices:
            old_value, original_value = x[index], original[index]
            if old_value == original_value:
                continue
            x[index] = original_value
            if a.query(x.reshape(shape)):
                improved = True
            else:
                adv_value, non_adv_value = old_value, original_value
                for _ in range(10):
                    next_value = (adv_value + non_adv_value) / 2
                    x[index] = next_value
                    if a.query(x.reshape(shape)):
                        adv_value = next_value
                    else:
                        non_adv_value = next_value
                if old_value != adv_value:
                    x[index] = adv_value
                    improved = True
        if not improved:
            break


def _fb2_run(net: nn.Module, x: Tensor, y: Tensor, attack: str, seed: int) -> list[np.ndarray | None]:
    out = []
    for i in range(len(x)):
        a = _Adversarial(net, x[i].numpy(), int(y[i]))
        s = sample_seed(seed, i)
        if attack == "salt_and_pepper":
            _fb2_salt_and_pepper(a, np.random.RandomState(s))
        else:
            _fb2_pointwise(a, np.random.RandomState(s), random.Random(s))
        out.append(a.best)
    return out


@pytest.mark.parametrize("attack", ["salt_and_pepper", "pointwise"])
def test_lockstep_attacks_replay_foolbox2_exactly(net: nn.Module, batch: tuple[Tensor, Tensor],
                                                  attack: str) -> None:
    """Packed S&P and the speculative Pointwise return foolbox 2's adversarial, image for image."""
    x, y = batch
    res = run_attack(net, x, y, attack, seed=3, batch_size=5)
    ref = _fb2_run(net, x, y, attack, seed=3)
    assert any(r is not None for r in ref)
    for i, r in enumerate(ref):
        assert bool(res.success[i]) == (r is not None), i
        if r is not None:
            assert torch.equal(res.x_adv[i], torch.from_numpy(r)), i


def test_paper_pointwise_keeps_the_first_linf_best_query(net: nn.Module, batch: tuple[Tensor, Tensor]) -> None:
    """foolbox 2 stores by Linf: Pointwise never returns a larger Linf than its S&P start, and the
    L2-reducing ``minimal`` variant is not what ``paper`` returns."""
    x, y = batch
    sp = run_attack(net, x, y, "salt_and_pepper", seed=3)
    pw = run_attack(net, x, y, "pointwise", seed=3)
    mini = run_attack(net, x, y, "pointwise", protocol="minimal", seed=3)
    assert torch.equal(sp.success, pw.success)
    assert bool((pw.linf[pw.success] <= sp.linf[sp.success] + 1e-7).all())
    assert float(mini.l2[mini.success].median()) < float(pw.l2[pw.success].median())


# --- the engine ---------------------------------------------------------------------------------
class _Threshold(nn.Module):
    """Class 1 iff the image mean exceeds 0.5: lets a test choose where each scan hits."""

    def forward(self, x: Tensor) -> Tensor:
        s = x.flatten(1).mean(1) - 0.5
        return torch.stack([-s, s], dim=1)


@pytest.mark.parametrize("schedule", [Schedule(), Schedule(first=1, growth=0.0, fill=1),
                                      Schedule(first=50, growth=2.0, fill=1000, budget=64)])
def test_first_hit_finds_the_first_valid_hit_whatever_the_packing(schedule: Schedule) -> None:
    g = torch.Generator().manual_seed(0)
    n, steps = 7, 300
    levels = torch.rand(n, steps, generator=g)  # candidate (i, k) is a constant image of this value
    levels[levels > 0.5] = torch.where(torch.rand(int((levels > 0.5).sum()), generator=g) < 0.9, 0.2, 0.8)
    levels[3] = 0.1  # never hits
    valid = torch.rand(n, steps, generator=g) > 0.3
    x = torch.zeros(n, 1, 2, 2)
    y = torch.zeros(n, dtype=torch.long)
    asked: list[int] = []
    qm = QueryModel(_Threshold())

    def make(rows: Tensor, ks: Tensor) -> tuple[Tensor, Tensor]:
        asked.append(rows.numel())
        return levels[rows, ks].view(-1, 1, 1, 1).expand(-1, 1, 2, 2).clone(), valid[rows, ks]

    step, x_hit = first_hit(qm, x, y, steps, make, schedule=schedule)
    hit = (levels > 0.5) & valid
    expect = torch.where(hit.any(1), hit.float().argmax(1), -1)
    assert torch.equal(step, expect)
    assert step[3] == -1
    ok = step >= 0
    assert torch.equal(x_hit[ok, 0, 0, 0], levels[ok, step[ok]])
    assert qm.queries <= int(valid.sum())


def test_query_model_is_the_model_itself_in_padded_chunks(net: nn.Module) -> None:
    """Queries run the model itself (no copy), chunk by chunk, padded to a few sizes, and classify
    every row as the model does."""
    sizes = [bucket(n) for n in range(1, 513)]
    assert all(s >= n for n, s in enumerate(sizes, 1)) and len(set(sizes)) == 40
    assert all(bucket(n) - n <= n / 8 for n in range(32, 2000))
    x, _ = _data(41, 9)
    qm = QueryModel(net, batch=16)  # chunks of 16, 16 and 9 (padded to 12)
    assert qm.model is net
    with torch.no_grad():
        ref = net(x)
    assert torch.equal(qm.logits(x), ref)
    for n in (0, 1, 5, 13, 41):
        assert torch.equal(qm.predict(x[:n]), ref[:n].argmax(1))
    assert qm.queries == 1 + 5 + 13 + 41
    assert not torch.is_inference_mode_enabled()


def test_streams_do_not_depend_on_the_window_sizes() -> None:
    for kind in ("uniform", "normal"):
        rs = np.random.RandomState(5)
        ref = np.concatenate([rs.random_sample(7) if kind == "uniform" else rs.standard_normal(7)
                              for _ in range(20_000)])
        s = DoubleStream(5, kind)
        got = [s.window(0, 11).copy(), s.window(11, 50_001).copy(), s.window(5, 7).copy()]
        s.release(40_000)
        got += [s.window(60_000, 60_003).copy(), s.window(40_000, 40_001).copy()]
        assert np.array_equal(np.concatenate(got[:2]), ref[:50_001])
        assert np.array_equal(got[2], ref[5:7]) and np.array_equal(got[4], ref[40_000:40_001])
        assert np.array_equal(got[3], ref[60_000:60_003])
        s.release(100_000)
        assert np.array_equal(s.window(100_001, 140_000), ref[100_001:140_000])
        with pytest.raises(ConfigError, match="released"):
            s.window(99_999, 100_002)


@pytest.mark.parametrize("seed", [0, 3, 2**31 + 7, 2**32 - 1])
def test_shuffle_stream_replays_python_random_shuffle(seed: int) -> None:
    """Value for value, shuffle after shuffle: sizes around the powers of two (where the rejection
    bound changes), tiny ones, MNIST's and CIFAR's element counts, and a large one."""
    rng = random.Random(seed)
    stream = ShuffleStream(seed)
    for n in (784, 0, 1, 2, 3, 4, 5, 8, 9, 16, 17, 33, 255, 256, 257, 784, 3072, 100_000, 784, 2, 1000):
        ref = list(range(n))
        rng.shuffle(ref)
        got = stream.permutation(n)
        assert got.dtype == np.int64 and got.tolist() == ref, n


def test_fisher_yates_applies_any_swap_sequence() -> None:
    """The vectorised swaps equal the sequential ones for any draws j_i <= i."""
    g = np.random.default_rng(0)
    for n in (1, 2, 3, 10, 100, 1000):
        i = np.arange(n - 1, 0, -1)
        for j in (g.integers(0, i + 1), np.zeros_like(i), i, np.maximum(i - 1, 0)):
            x = list(range(n))
            for a, b in zip(i.tolist(), j.tolist(), strict=True):
                x[a], x[b] = x[b], x[a]
            assert fisher_yates(n, j).tolist() == x, n


# --- candidate generators against scipy / numpy ---------------------------------------------------
def test_blur_matrices_match_scipy_gaussian_filter() -> None:
    img = (np.random.default_rng(0).random((2, 28, 28)) ** 3).astype(np.float32)
    for k in (0, 3, 4, 10, 99, 500, 999):
        s = epsilon_grid(1000)[k] * 28
        ref = np.clip(ndimage.gaussian_filter(img, (0, s, s)), 0, 1)
        m = blur_matrix(28, s)
        got = np.clip(((m @ img.astype(np.float64)).astype(np.float32).astype(np.float64) @ m.T)
                      .astype(np.float32), 0, 1)
        assert np.abs(got - ref).max() <= 1e-7, k


def test_blur_attack_matches_a_scipy_scan(net: nn.Module, batch: tuple[Tensor, Tensor]) -> None:
    x, y = batch
    ctx = AttackContext(model=net, steps=200, epsilon=None, seed=0,
                        device=torch.device("cpu"), batch_size=16)
    adv, found = gaussian_blur(ctx, x, y, torch.arange(len(y)))
    for i in range(len(y)):
        for s in epsilon_grid(200) * SIZE:
            cand = np.clip(ndimage.gaussian_filter(x[i].numpy(), (0, s, s)), 0, 1)
            with torch.no_grad():
                if int(net(torch.from_numpy(cand)[None]).argmax(1)) != int(y[i]):
                    break
        else:
            assert not bool(found[i])
            continue
        assert bool(found[i]) and np.abs(adv[i].numpy() - cand).max() <= 1e-6


@pytest.mark.parametrize("rotations", [True, False])
def test_spatial_candidates_match_scipy(rotations: bool) -> None:
    x = torch.rand(2, 2, 12, 12, generator=torch.Generator().manual_seed(0))
    tr = _Transforms(x, rotations)
    grid = spatial_grid(rotations)
    steps = torch.tensor([0, 1, 7, 55, len(grid) - 1, 33])
    rows = torch.tensor([0, 1, 0, 1, 1, 0])
    got = tr.make(rows, steps)
    for j, (r, k) in enumerate(zip(rows.tolist(), steps.tolist(), strict=True)):
        ref = transform_image(x[r].numpy(), *grid[k])
        assert np.abs(got[j].numpy() - ref).max() <= 1e-6, (r, k)


def test_contrast_and_noise_candidates_are_numpy_float32(net: nn.Module, batch: tuple[Tensor, Tensor]) -> None:
    """foolbox 2 computes with numpy 1.x scalars: float64 factors rounded to float32 first."""
    x, y = batch
    eps = epsilon_grid(1000)
    res = run_attack(net, x, y, "contrast_reduction", seed=0)
    for i in res.success.nonzero().squeeze(1).tolist():
        xi = x[i].numpy()
        cands = [np.float32(1 - e) * xi + np.float32(e * 0.5) for e in eps]
        assert any(np.array_equal(res.x_adv[i].numpy(), c) for c in cands)
    res = run_attack(net, x, y, "additive_uniform", seed=4)
    i = int(res.success.nonzero()[0])
    rs = np.random.RandomState(sample_seed(4, i))
    for e in eps:
        noise = rs.uniform(-e, e, size=x[i].shape).astype(np.float32)
        cand = np.clip(x[i].numpy() + np.float32(e) * noise, 0, 1)
        with torch.no_grad():
            if int(net(torch.from_numpy(cand)[None]).argmax(1)) != int(y[i]):
                break
    assert np.array_equal(res.x_adv[i].numpy(), cand)


@pytest.mark.parametrize("attack", ["additive_gaussian", "blended_uniform", "pointwise", "gaussian_blur"])
def test_paper_results_do_not_depend_on_the_batch(net: nn.Module, batch: tuple[Tensor, Tensor],
                                                  attack: str) -> None:
    x, y = batch
    a = run_attack(net, x, y, attack, seed=7, batch_size=3)
    b = run_attack(net, x, y, attack, seed=7, batch_size=len(x))
    assert torch.equal(a.x_adv, b.x_adv) and torch.equal(a.success, b.success)


def test_salt_and_pepper_groups_of_samples_give_the_same_result(net: nn.Module, batch: tuple[Tensor, Tensor],
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """Large images run S&P in groups of samples (memory); the grouping never shows."""
    from tdlib.attacks import pixel

    x, y = batch
    whole = run_attack(net, x, y, "salt_and_pepper", seed=2)
    monkeypatch.setattr(pixel, "_DRAWS_HELD", 2 * 64 * SIZE * SIZE)  # two samples per group
    grouped = run_attack(net, x, y, "salt_and_pepper", seed=2)
    assert torch.equal(whole.x_adv, grouped.x_adv) and torch.equal(whole.success, grouped.success)


def test_salt_and_pepper_valid_steps_match_the_linf_of_every_candidate() -> None:
    """The screened check equals foolbox 2's rule: query a step iff its candidate's Linf is below
    the best so far (computed here candidate by candidate)."""
    from tdlib.attacks.pixel import SaltPepperState, _valid_steps

    rng = np.random.default_rng(0)
    n, c, hw, n_eps = 6, 2, 100, 40
    x = rng.choice([0.0, 1.0, 0.3, 0.7], size=(n, c, hw)).astype(np.float32)
    best = np.array([np.inf, 1.0, 0.75, 0.71, 0.5, 0.3], dtype=np.float32)
    p = np.stack([np.linspace(0, m, n_eps + 1)[1:] for m in (1.0, 0.02, 0.05, 0.2, 0.6, 0.01)])
    blocks = [rng.random((n_eps, hw)) for _ in range(n)]
    st = SaltPepperState(streams=[], pos=torch.zeros(n, dtype=torch.long), max_p=np.ones(n),
                         best=torch.zeros(n, c, 1, hw), best_linf=torch.from_numpy(best))
    got = _valid_steps(x, st, p, n_eps, blocks)
    for i in range(n):
        u = blocks[i][:, None, :]
        cand = np.where(u >= 1 - p[i][:, None, None] / 2, 1.0, np.where(u < p[i][:, None, None] / 2, 0.0, x[i]))
        linf = np.abs(cand - x[i]).reshape(n_eps, -1).max(axis=1).astype(np.float32)
        assert np.array_equal(got[i], np.flatnonzero(linf < best[i])), i
    assert 0 < sum(g.size for g in got[1:]) < (n - 1) * n_eps  # both outcomes occur
