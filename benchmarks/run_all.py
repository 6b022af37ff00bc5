"""Run every benchmarks/bench_*.py module in turn (each writes its own JSON result)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failed = []
    for path in sorted(HERE.glob("bench_*.py")):
        module = f"benchmarks.{path.stem}"
        print(f"== {module}", flush=True)
        if subprocess.call([sys.executable, "-m", module], cwd=HERE.parent) != 0:
            failed.append(module)
    if failed:
        print(f"failed: {failed}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
