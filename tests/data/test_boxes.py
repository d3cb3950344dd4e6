"""Imagenette object boxes: the shipped file, its refusals, the hold-out, and the box claim row."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from tdlib.bitstring import bits
from tdlib.data import load_boxed_imagenette, load_dataset
from tdlib.data.boxes import BOXES_FILE, BOXES_SHA256, Box, box_mask, read_boxes
from tdlib.errors import DataCorruptError, DataError
from tdlib.experiments import stats
from tdlib.experiments.claims import Verdict
from tdlib.experiments.records import (
    ImagenetteEval,
    ImagenetteResult,
    ModelRef,
    ResultMeta,
    record_from_json,
    record_to_json,
)

HEADER = "filename,split,wnid,orig_w,orig_h,xmin,ymin,xmax,ymax,source\n"


def test_shipped_boxes_are_the_mirrors(data_root: Path) -> None:
    assert hashlib.sha256(BOXES_FILE.read_bytes()).hexdigest() == BOXES_SHA256
    mirror = data_root / "imagenette2-160" / "boxes.csv"
    if mirror.is_file():
        assert mirror.read_bytes() == BOXES_FILE.read_bytes()
    boxes = read_boxes()
    assert len(boxes) == 1113
    assert sum(len(b) for b in boxes.values()) == 1467
    assert sum(s == "train" for s, _ in boxes) == 819


@pytest.mark.parametrize("body, match", [
    ("a.JPEG,train,n1,100,50,0,0,100,10,x\n", "outside"),      # xmax == width
    ("a.JPEG,train,n1,100,50,20,0,10,10,x\n", "outside"),       # corners swapped
    ("a.JPEG,test,n1,100,50,0,0,10,10,x\n", "neither"),         # unknown split
    ("a.JPEG,train,n1,100,50,0,zero,10,10,x\n", "not an integer"),
    ("a.JPEG,train,n1,100,50,0,0,10\n", "fields"),
])
def test_malformed_boxes_are_refused(tmp_path: Path, body: str, match: str) -> None:
    p = tmp_path / "boxes.csv"
    p.write_text(HEADER + body)
    with pytest.raises(DataCorruptError, match=match):
        read_boxes(p)


def test_wrong_header_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "boxes.csv"
    p.write_text("name,x,y\n")
    with pytest.raises(DataCorruptError, match="header"):
        read_boxes(p)
    with pytest.raises(DataError, match="missing"):
        read_boxes(tmp_path / "none.csv")


def test_box_mask_maps_original_pixels_onto_the_resize() -> None:
    # the left half of a 200 x 100 original (x 0..99 inclusive) is the left half of any square resize
    m = box_mask([Box("n", 200, 100, 0, 0, 99, 99, "s")], 8)
    assert m[:, :4].all() and not m[:, 4:].any()
    # the bottom-right quarter
    m = box_mask([Box("n", 200, 100, 100, 50, 199, 99, "s")], 8)
    assert m.sum() == 16 and m[4:, 4:].all()


def test_boxed_training_images_are_held_out(data_root: Path) -> None:
    kw = {"image_size": 8, "resize_size": 8, "test_per_class": 1}
    full = load_dataset("imagenette", **kw)
    held = load_dataset("imagenette", hold_out_boxed=True, **kw)
    assert held.held_out_boxed == 819 and full.held_out_boxed == 0
    assert len(full.train) + len(full.val) - len(held.train) - len(held.val) == 819
    boxed = load_boxed_imagenette(8)
    assert len(boxed) == 1113 and boxed.split.count("val") == 294
    assert boxed.masks.shape == (1113, 8, 8) and boxed.masks.any(dim=(1, 2)).all()


def test_stratified_mean_weighs_classes_equally() -> None:
    d = np.array([1.0] * 90 + [0.0] * 10)
    g = np.array([0] * 90 + [1] * 10)
    est = stats.stratified_paired_mean(d, g, resamples=200)
    assert est.value == pytest.approx(0.5) and est.n == 100
    assert est.low == pytest.approx(0.5) and est.high == pytest.approx(0.5)  # no spread within a class
    noisy = stats.stratified_paired_mean(np.r_[d[:-1], 5.0], g, resamples=500)
    assert noisy.low <= noisy.value <= noisy.high and noisy.low < noisy.high


def _eval(variant: str, acc: float, energy: np.ndarray, labels: np.ndarray) -> ImagenetteEval:
    ref = ModelRef("imagenette", "resnet18_half", variant, 0, "zoo", f"m-{variant}", acc, 3925)
    return ImagenetteEval(ref, "val", bits(np.ones(10, bool)), (0.1,), "final", "boxed 64 px",
                          tuple(int(v) for v in labels), tuple(float(e) for e in energy),
                          bits(energy > 0.5), {"stage1": {"energy": 0.4}})


def _result(bu_energy: np.ndarray, td_energy: np.ndarray, labels: np.ndarray,
            bu_acc: float = 85.0, td_acc: float = 80.0) -> ImagenetteResult:
    meta = ResultMeta("exp3_imagenette", "quick", {}, "h")
    return ImagenetteResult(meta, (_eval("bu", bu_acc, bu_energy, labels),
                                   _eval("td", td_acc, td_energy, labels)))


def test_box_row_decides_and_round_trips() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(10), 30)
    bu = rng.uniform(0.3, 0.5, labels.size)
    rec = _result(bu, bu + 0.1 + rng.normal(0, 0.02, labels.size), labels)
    (row,) = [r for r in rec.claim_rows() if r.claim == "imagenette_localisation"]
    assert row.verdict is Verdict.HOLDS and row.n == 300
    assert row.effect == pytest.approx(0.1, abs=0.01)
    assert set(row.detail["per_class"]) == set(range(10))
    worse = _result(bu, bu - 0.1, labels)
    (row,) = [r for r in worse.claim_rows() if r.claim == "imagenette_localisation"]
    assert row.verdict is Verdict.DOES_NOT_HOLD
    back = record_from_json(record_to_json(rec))
    assert back == rec


def test_td_floor_is_the_bu_bar_minus_the_papers_gap() -> None:
    labels = np.repeat(np.arange(10), 5)
    e = np.full(labels.size, 0.4)
    ok = _result(e, e + 0.1, labels, bu_acc=81.0, td_acc=77.0).claim_rows()
    assert all(r.verdict is not Verdict.NOT_CLAIM_GRADE for r in ok)
    low = _result(e, e + 0.1, labels, bu_acc=79.0, td_acc=77.0).claim_rows()
    assert all(r.verdict is Verdict.NOT_CLAIM_GRADE and "79.00%" in r.reason for r in low)
    td_low = _result(e, e + 0.1, labels, bu_acc=81.0, td_acc=75.0).claim_rows()
    assert all(r.verdict is Verdict.NOT_CLAIM_GRADE and "76.00%" in r.reason for r in td_low)


def test_box_localisation_scores_a_model(data_root: Path) -> None:
    from tdlib.experiments.explain import box_localisation
    from tdlib.models import build_model

    torch.manual_seed(0)
    model = build_model("resnet18_half", "td", 10, in_channels=3, input_size=16).eval()
    boxed = load_boxed_imagenette(16)
    energy, hits, shown = box_localisation(model, boxed, n=6, stage_sample=3)
    assert energy.shape == (6,) and hits.shape == (6,)
    assert ((energy >= 0) & (energy <= 1)).all()
    assert shown and all(v["images"] == 3 for v in shown.values())
