"""The results archive: build a tiny one from the zoo, read it, refuse tampering, verify re-runs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tdlib.archive import ArchiveError, list_archives, read_archive
from tdlib.archive.build import ArchiveSpec, pack, run_variant
from tdlib.archive.records import archive_curves, to_record
from tdlib.archive.store import archive_dir, write_archive
from tdlib.archive.verify import verify_archive
from tdlib.cli import main
from tdlib.experiments.claims import Verdict

SPEC = ArchiveSpec("mnist", "lenetfc", ("bu", "td"), attacks=("salt_and_pepper", "gaussian_blur"),
                   whitebox=(), n_images=6, reps=2)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, data_root: Path) -> Path:
    import os

    root = tmp_path_factory.mktemp("archive")
    runs = tmp_path_factory.mktemp("runs")
    os.environ.setdefault("TDLIB_DATA", str(data_root))
    for v in SPEC.variants:
        run_variant(SPEC, v, runs_root=runs, progress=False)
    pack(SPEC, runs_root=runs, root=root)
    return root


def test_archive_reads_back_with_its_manifest(built: Path) -> None:
    assert list_archives(built) == [SPEC.name]
    arc = read_archive(SPEC.name, built)
    man = arc.manifest
    assert man["n_images"] == 6 and man["reps"] == {"salt_and_pepper": 2, "gaussian_blur": 2}
    assert set(man["models"]) == {"bu", "td"} and all(len(m["sha256"]) == 64 for m in man["models"].values())
    assert arc.l2("td", "gaussian_blur").shape == (2, 6)
    assert arc.arrays["indices"].dtype == np.int64 and len(arc.arrays["labels"]) == 6
    assert man["command"].startswith("python -m tdlib archive build") and man["machine"]
    # the commit the attacks ran at is kept per model, beside the one that packed them
    assert all(m["tdlib_commit"] and m["tdlib_commit"] != "None" for m in man["models"].values())
    assert man["tdlib_commit"]
    rec = to_record(arc)
    assert {e.attack for e in rec.evals} == {"salt_and_pepper", "gaussian_blur"}
    rows = rec.claim_rows()
    assert {r.claim for r in rows} == {"noise", "blur"}
    assert all(r.verdict is not Verdict.NOT_MEASURED for r in rows)
    assert archive_curves(arc)


def test_verify_reruns_triples_exactly(built: Path) -> None:
    triples = verify_archive(SPEC.name, sample=3, seed=1, root=built)
    assert len(triples) == 3 and all(t.same for t in triples)


def _copy(built: Path, tmp_path: Path) -> Path:
    import shutil

    dest = tmp_path / "arc"
    shutil.copytree(built, dest)
    return dest


def test_a_flipped_byte_is_refused(built: Path, tmp_path: Path) -> None:
    root = _copy(built, tmp_path)
    f = root / f"{SPEC.name}.npz"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0x01
    f.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="does not match|modified or damaged"):
        read_archive(SPEC.name, root)
    assert main(["archive", "verify", "--archive-dir", str(root), "--sample", "1"]) == 2


def test_a_changed_value_with_a_matching_manifest_fails_verification(built: Path, tmp_path: Path) -> None:
    """Someone edits a distance and rewrites the manifest's checksum: the re-run catches it."""
    root = _copy(built, tmp_path)
    arc = read_archive(SPEC.name, root)
    arrays = dict(arc.arrays)
    for key in [k for k in arrays if k.endswith("/l2")]:
        arrays[key] = np.where(np.isfinite(arrays[key]) & (arrays[key] > 0), arrays[key] * 1.5, 7.0)
    keep = {k: v for k, v in arc.manifest.items() if k not in ("format", "name", "file", "bytes", "sha256", "keys")}
    write_archive(SPEC.name, keep, arrays, root)
    read_archive(SPEC.name, root)  # consistent with its (rewritten) manifest ...
    with pytest.raises(ArchiveError, match="differ"):  # ... but not with a re-run
        verify_archive(SPEC.name, sample=2, seed=0, root=root)


def test_missing_or_foreign_manifest(built: Path, tmp_path: Path) -> None:
    root = _copy(built, tmp_path)
    with pytest.raises(ArchiveError, match="no archive"):
        read_archive("nope", root)
    m = root / f"{SPEC.name}.json"
    m.write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(ArchiveError, match="not a tdlib-archive-v1"):
        read_archive(SPEC.name, root)


def test_pack_refuses_an_incomplete_run(tmp_path: Path) -> None:
    with pytest.raises(ArchiveError, match="not computed"):
        pack(SPEC, runs_root=tmp_path / "empty", root=tmp_path / "arc")


def test_the_shipped_archives_verify() -> None:
    """CI: every archive of the checkout matches its manifest and reproduces a sample of triples."""
    names = list_archives()
    if not names:
        pytest.skip(f"no archive in {archive_dir()}")
    for n in names:
        triples = verify_archive(n, sample=2, seed=0)
        assert all(t.same for t in triples)


def test_the_per_scale_study_comes_from_the_td_adversarials(built: Path) -> None:
    """Fig 3 in the archive: the clean subset is the clean accuracy and "all" the attack itself."""
    from tdlib.archive.records import to_scale_record
    from tdlib.attacks.scales import SCALE_SUBSETS

    arc = read_archive(SPEC.name, built)
    scales = arc.manifest["scales"]
    assert scales["variant"] == "td" and scales["attacks"] == list(SPEC.attacks)
    assert scales["subsets"] == ["clean", *SCALE_SUBSETS]
    assert set(scales["silenced_accuracy"]) == {"none", "high", "medium"}
    clean = arc.arrays["td/clean_correct"].astype(bool)
    for a in SPEC.attacks:
        assert np.array_equal(arc.arrays[f"td/{a}/scale/clean"], clean)
        fooled = arc.arrays[f"td/{a}/success"].any(axis=0)
        assert not arc.arrays[f"td/{a}/scale/all"][fooled].any()
    assert not any(k.startswith("bu/") and "/scale/" in k for k in arc.arrays)
    rec = to_scale_record(arc)
    assert rec is not None and {e.attack for e in rec.evals} == set(SPEC.attacks)
    assert all(len(b) == int(clean.sum()) for e in rec.evals for b in e.subsets.values())
    assert [r.claim for r in rec.claim_rows()] == ["scale"]


SPEC1 = ArchiveSpec("mnist", "lenetfc", ("bu", "td"), attacks=("gaussian_blur",), whitebox=("l2_pgd",),
                    n_images=6, reps=1, whitebox_steps=10)


def test_verify_recomputes_the_per_scale_bits(tmp_path: Path, data_root: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """With one repetition a re-run gives the archived adversarial: its per-scale bits must agree.
    The white-box attack ran in batches of 4; its triples re-run their batch (positions 4-5: a
    short last batch)."""
    monkeypatch.setenv("TDLIB_DATA", str(data_root))
    root, runs = tmp_path / "arc", tmp_path / "runs"
    for v in SPEC1.variants:
        run_variant(SPEC1, v, runs_root=runs, progress=False, batch_size=4)
    pack(SPEC1, runs_root=runs, root=root)
    assert all(m["batch_size"] == 4 for m in read_archive(SPEC1.name, root).manifest["models"].values())
    triples = verify_archive(SPEC1.name, sample=12, seed=3, root=root)
    assert any(t.scales_same for t in triples) and all(t.same for t in triples)
    assert {t.position // 4 for t in triples if t.attack == "l2_pgd"} == {0, 1}
    arc = read_archive(SPEC1.name, root)
    arrays = dict(arc.arrays)
    arrays["td/gaussian_blur/scale/high"] = ~arrays["td/gaussian_blur/scale/high"]
    keep = {k: v for k, v in arc.manifest.items() if k not in ("format", "name", "file", "bytes", "sha256", "keys")}
    write_archive(SPEC1.name, keep, arrays, root)
    with pytest.raises(ArchiveError, match="per-scale bits differ"):
        verify_archive(SPEC1.name, sample=8, seed=3, root=root)
