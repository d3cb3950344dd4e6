"""Short GPU check: run it first whenever a CUDA GPU is available.

    python scripts/gpu_check.py          # or: python -m scripts.gpu_check

1. ``tests/project/test_devices.py`` on the GPU: every attack of both protocol registries through a
   LeNetFC-TD on ``cuda``, a paper attack against the same model on the CPU, Grad-CAM (both
   normalisations) and a few training steps.
2. ``python -m tdlib zoo verify --device cuda --only 'mnist-lenetfc-*'``: the zoo's MNIST LeNetFC
   models (sha256, full-test-set accuracy against the manifest) predicted on the GPU; needs the
   MNIST test set (``TDLIB_DATA``, see the README's "Data").

Exits 2 with one ``error:`` line when no CUDA GPU is present (nothing is run), 1 when a step fails,
0 when both pass. A few minutes on one GPU; each step's time is printed. Runs in the project's
environment (the interpreter running this script), from any folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _gpu() -> str | None:
    import torch

    if not torch.cuda.is_available():
        return None
    return f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}, torch {torch.__version__})"


def _step(name: str, cmd: list[str], env: dict[str, str]) -> bool:
    print(f"== {name}: {' '.join(cmd)}", flush=True)
    t0 = time.perf_counter()
    rc = subprocess.run(cmd, cwd=REPO, env=env, check=False).returncode
    print(f"== {name}: {'ok' if rc == 0 else f'FAILED (exit {rc})'} in {time.perf_counter() - t0:.0f} s",
          flush=True)
    return rc == 0


def main() -> int:
    gpu = _gpu()
    if gpu is None:
        print("error: no CUDA GPU is available here (torch.cuda.is_available() is False); this check "
              "needs one: run it on a GPU machine", file=sys.stderr, flush=True)
        return 2
    print(f"GPU: {gpu}", flush=True)
    with tempfile.TemporaryDirectory(prefix="gpu-check-runs-") as runs:
        env = {**os.environ, "TDLIB_RUNS": os.environ.get("TDLIB_RUNS", runs)}
        ok = [
            _step("attacks, Grad-CAM, training on cuda",
                  [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                   "tests/project/test_devices.py"], env),
            _step("zoo verify on cuda",
                  [sys.executable, "-m", "tdlib", "zoo", "verify", "--device", "cuda", "--only", "mnist-lenetfc-*"],
                  env),
        ]
    print(f"gpu check: {sum(ok)} of {len(ok)} steps passed", flush=True)
    return 0 if all(ok) else 1


if __name__ == "__main__":
    sys.exit(main())
