"""Generate environment.yml (for conda users) from requirements.txt, the single source of pins.

    python scripts/gen_environment.py          # rewrite environment.yml
    python scripts/gen_environment.py --check  # exit 1 if environment.yml is out of date
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pins() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")]


def render() -> str:
    body = "\n".join(f"      - {p}" for p in pins())
    return (
        "# Generated from requirements.txt by scripts/gen_environment.py; do not edit by hand.\n"
        "name: td-networks\n"
        "channels:\n"
        "  - conda-forge\n"
        "dependencies:\n"
        "  - python=3.11\n"
        "  - pip\n"
        "  - pip:\n"
        f"{body}\n"
        "      - -e .\n"
    )


def main() -> int:
    target = ROOT / "environment.yml"
    text = render()
    if "--check" in sys.argv:
        if not target.is_file() or target.read_text() != text:
            print("environment.yml is out of date: run python scripts/gen_environment.py")
            return 1
        return 0
    target.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
