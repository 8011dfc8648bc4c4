"""The tiny synthetic tasks, named like hub datasets with a `tiny:` prefix:

    data: {source: tiny:addition}      # 2-digit addition, splits `train` and `test`

On first use each is written under `$TINYALIGN_HOME` (default `~/.cache/tinyalign`) as a folder of
`{split}.jsonl` files, so it is read by the same code as any local dataset.
"""

import json
import random
from pathlib import Path

from tinyalign.core.errors import UserError
from tinyalign.core.files import build_atomically, tinyalign_home
from tinyalign.data import word_problems
from tinyalign.models.tiny import addition_sums

TASK_VERSION = 3  # bump whenever a task's rows change, so cached files of the old ones are not reused


def addition_rows(seed: int = 0) -> dict[str, list[dict]]:
    """Every a+b with 0 <= a, b < 100, shuffled; 500 held out for testing (the tiny model never saw them)."""
    return {split: [{"question": f"{a}+{b}", "answer": str(a + b)} for a, b in pairs]
            for split, pairs in addition_sums(seed).items()}


def subtraction_rows(seed: int = 0) -> dict[str, list[dict]]:
    """Every a-b with 0 <= b <= a < 100; a second skill, so two adapters can answer differently."""
    pairs = [(a, b) for a in range(100) for b in range(a + 1)]
    random.Random(seed).shuffle(pairs)
    rows = [{"question": f"{a}-{b}", "answer": str(a - b)} for a, b in pairs]
    return {"test": rows[:500], "train": rows[500:]}


def addition_pref_rows(seed: int = 0) -> dict[str, list[dict]]:
    """Addition preference pairs: chosen = the sum, rejected = a typical slip (carry lost or off by one)."""
    rng = random.Random(seed)
    split = {}
    for name, rows in addition_rows(seed).items():
        split[name] = []
        for row in rows:
            total = int(row["answer"])
            wrong = max(0, total + rng.choice([-10, -1, 1, 10])) if total else total + 1
            split[name].append({"question": row["question"], "chosen": row["answer"], "rejected": str(wrong)})
    return split


TASKS = {"tiny:addition": addition_rows, "tiny:subtraction": subtraction_rows, "tiny:addition-prefs": addition_pref_rows,
         "tiny:word-problems": word_problems.rows}  # for a real model: the real-model demo's task


def _write_task(name: str, out: Path) -> None:
    for split, rows in TASKS[name]().items():
        with open(out / f"{split}.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)


def task_path(name: str) -> Path:
    """Local folder of `{split}.jsonl` files for tiny task `name`, written on first use."""
    if name not in TASKS:
        raise UserError(f"unknown tiny task {name!r}; tiny tasks: {', '.join(TASKS)}")
    target = tinyalign_home() / "data" / f"{name.split(':', 1)[1]}-v{TASK_VERSION}"
    return build_atomically(target, lambda d: _write_task(name, d))
