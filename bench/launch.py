"""One training process of a benchmark: run at a stated torch thread count, its console kept in a log
file off the results table, and on failure the log's last lines instead of a traceback."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_logged(command: list[str], threads: int, log: Path, what: str) -> None:
    """Run `command` with OMP_NUM_THREADS=`threads`, its output into `log`; exit naming `what` failed, with
    the log's tail, when it does. It runs in this folder (relative paths mean what they meant here) and
    imports tinyalign from this checkout, installed or not."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    with open(log, "w") as out:
        proc = subprocess.run(command, env={**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": path},
                              stdout=out, stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        sys.exit(f"{what} failed; its console: {log}\n" + "\n".join(log.read_text().splitlines()[-15:]))
