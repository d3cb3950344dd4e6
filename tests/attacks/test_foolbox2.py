"""Differential test: tdlib's ``paper`` protocol against foolbox 2.2.1 itself, the paper's library.

foolbox 2.2.1 runs in a subprocess on the side environment of ``scripts/setup_foolbox2.sh`` (it
needs numpy < 2); the test skips when that is not installed. Each of the ten attacks runs on the
same small trained CNN and 24 MNIST test images on both sides, foolbox 2 image by image with the
per-image seed tdlib gives that sample. Deterministic and random attacks alike must return the same
adversarial image for image; the random ones must also agree in distribution (success count, median
L2, Kolmogorov-Smirnov distance), a check shown to reject foolbox 3's Pointwise (tdlib's old
``paper`` Pointwise).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from benchmarks.foolbox2_diff import DETERMINISTIC, compare, run_foolbox2, run_tdlib, side_env
from tdlib.attacks import PAPER_ATTACKS, run_attack

pytestmark = [pytest.mark.foolbox2, pytest.mark.usefixtures("single_thread")]

N_IMAGES = 24
MAX_DIFFERING = 0  # images allowed to differ: none (the queries run the model itself)
KS_MAX = 0.25  # Kolmogorov-Smirnov distance of the per-image L2 (failures = inf)


@pytest.fixture(scope="module")
def runs(data_root: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if side_env() is None:
        pytest.skip("foolbox 2.2.1 side environment not installed: run `bash scripts/setup_foolbox2.sh` "
                    "(or `make foolbox2`)")
    from benchmarks.foolbox2_bench import small_victim

    with pytest.MonkeyPatch.context() as mp:  # module scope: the autouse env fixture is per test
        mp.setenv("TDLIB_DATA", str(data_root))
        mp.setenv("TDLIB_OFFLINE", "1")
        mp.setenv("TDLIB_CACHE", str(tmp_path_factory.mktemp("victims")))
        n = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            model, x, y, acc = small_victim(N_IMAGES)
            ref = run_foolbox2(model, x, y, PAPER_ATTACKS, seed=0, timeout=900)
            ours = run_tdlib(model, x, y, PAPER_ATTACKS, seed=0)
        finally:
            torch.set_num_threads(n)
    assert acc > 0.8 and len(x) == N_IMAGES
    rows = {r["attack"]: r for r in compare(x, ref, ours, PAPER_ATTACKS)}
    return {"model": model, "x": x, "y": y, "ref": ref, "ours": ours, "rows": rows}


def test_reference_is_foolbox_2_2_1(runs: dict[str, Any]) -> None:
    fb_version, np_version, _ = runs["ref"]["versions"]
    assert fb_version == "2.2.1" and np_version.startswith("1.")


@pytest.mark.parametrize("attack", PAPER_ATTACKS)
def test_same_adversarials_image_for_image(runs: dict[str, Any], attack: str) -> None:
    row = runs["rows"][attack]
    assert row["foolbox2_queries"] >= N_IMAGES  # foolbox 2 did attack every image
    assert len(row["differing"]) <= MAX_DIFFERING, (attack, row["differing"])
    if attack in DETERMINISTIC:
        assert abs(row["foolbox2_found"] - row["tdlib_found"]) <= MAX_DIFFERING


def _distribution_ok(row: dict[str, Any]) -> bool:
    a, b = row["foolbox2_median_l2"], row["tdlib_median_l2"]
    medians = (a == b) or (np.isfinite(a) and np.isfinite(b) and abs(a - b) <= 0.05 * max(a, 1e-9))
    return bool(abs(row["foolbox2_found"] - row["tdlib_found"]) <= 2 and medians and row["ks"] <= KS_MAX)


@pytest.mark.parametrize("attack", [a for a in PAPER_ATTACKS if a not in DETERMINISTIC])
def test_random_attacks_agree_in_distribution(runs: dict[str, Any], attack: str) -> None:
    assert _distribution_ok(runs["rows"][attack]), runs["rows"][attack]


def test_distribution_check_rejects_foolbox3_pointwise(runs: dict[str, Any]) -> None:
    """Negative control: foolbox 3's L2-minimising Pointwise (tdlib's ``paper`` Pointwise before it
    followed foolbox 2's Linf bookkeeping; now the ``minimal`` one) must fail the check."""
    x, y = runs["x"], runs["y"]
    res = run_attack(runs["model"], x, y, "pointwise", protocol="minimal", seed=0, batch_size=N_IMAGES)
    v3 = {"pointwise": {"x_adv": res.x_adv.numpy(), "success": res.success.numpy(), "l2": res.l2.numpy(),
                        "linf": res.linf.numpy(), "seconds": 1.0}}
    row = compare(x, runs["ref"], v3, ["pointwise"])[0]
    assert not _distribution_ok(row), row
    assert len(row["differing"]) > MAX_DIFFERING
