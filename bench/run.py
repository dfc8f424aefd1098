"""Run every benchmark, one after the other, each printing our figures beside OGX 1.5's built-in.

    python bench/run.py                 # all benchmarks, full sizes
    python bench/run.py --quick         # small sizes, for a smoke run
    python bench/run.py --only sql_stores --only identity

Each benchmark is also a standalone script (``python bench/<name>.py --help``). Results are written
to ``bench/results/`` (JSON, and the SQL store chart as PNG).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHMARKS = ["identity", "sql_stores", "fairness"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes and few repetitions (a smoke run)")
    parser.add_argument("--only", action="append", choices=BENCHMARKS, help="run only these (repeatable)")
    args = parser.parse_args()
    failed = []
    for name in args.only or BENCHMARKS:
        command = [sys.executable, str(HERE / f"{name}.py"), *(["--quick"] if args.quick else [])]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        started = time.monotonic()
        if subprocess.run(command).returncode != 0:
            failed.append(name)
        print(f"=== {name}: {time.monotonic() - started:.0f} s", flush=True)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
