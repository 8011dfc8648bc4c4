"""Voted pairs as files: a vote store's pairs split into train.jsonl and test.jsonl (a share held out,
never trained on), and pairs read back from a vote store or such a file.

The reward model, the pairwise judge and the loop's rounds all train on one side of the split and are
measured on the other.
"""

from pathlib import Path

from tinyalign.core import files
from tinyalign.core.errors import UserError
from tinyalign.data import loading as data
from tinyalign.data.messages import message_text, task_text
from tinyalign.votes import load_pairs

HELD_OUT = 0.2  # of the pairs, never trained on: reward models and judges are measured there
PAIR_COLUMNS = {"prompt", "chosen", "rejected"}


def split_pairs(db, folder, held_out: float = HELD_OUT, seed: int = 0) -> dict:
    """The store's DPO export, split into folder/train.jsonl and folder/test.jsonl (`held_out` of the pairs)."""
    folder = files.check_folder_out(folder)
    outs = {name: files.check_jsonl_out(folder / f"{name}.jsonl", columns=PAIR_COLUMNS, inputs=[db])
            for name in ("train", "test")}
    rows = load_pairs(db)
    held = data.held_out_by_prompt([row["prompt"] for row in rows], max(1, round(len(rows) * held_out)), seed)
    test = [row for i, row in enumerate(rows) if i in held]
    train = [row for i, row in enumerate(rows) if i not in held]
    folder.mkdir(parents=True, exist_ok=True)
    for name, part in (("test", test), ("train", train)):
        files.write_jsonl(outs[name], part)
    return {"train": len(train), "test": len(test)}


def read_pair_rows(path) -> list[dict]:
    """The {prompt, chosen, rejected} rows of a vote store (its DPO export) or a pairs JSONL, used whole."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder" if path.is_dir() else "not found"
        raise UserError(f"--pairs {path} {what}; give a vote store (.sqlite) or a pairs .jsonl")
    if files.is_sqlite(path):
        return load_pairs(path)
    files.check_utf8(path, "--pairs")

    def not_a_pair(number, _error=None):
        raise UserError(f"--pairs {path}: line {number} is not a pair; rows need prompt, chosen and rejected")

    rows = []
    for number, row in files.read_jsonl(path, broken=not_a_pair):
        if not (isinstance(row, dict) and PAIR_COLUMNS <= set(row)):
            not_a_pair(number)
        rows.append(row)
    if not rows:
        raise UserError(f"--pairs {path} holds no pairs")
    return rows


def read_pairs(path) -> list[tuple[str, str, str]]:
    """(task, chosen, rejected) of every pair, as a judge reads them."""
    return [(task_text(r["prompt"]), message_text(r["chosen"], join=""), message_text(r["rejected"], join=""))
            for r in read_pair_rows(path)]


def with_mismatched_answers(pairs, seed: int = 0):
    """The pairs (a datasets.Dataset of prompt / chosen / rejected), plus one pair per prompt that rejects,
    under that prompt, the chosen answer of another prompt drawn at random.

    Votes compare answers to one question, so a reward model can fit them from the answers alone: a
    policy's near misses look alike, and an answer whose look the votes liked ("122", "2222") then
    scores high under any question, which GRPO finds within a few steps. An answer that is right
    elsewhere and wrong here can only be told apart by reading the question. A drawn answer equal to
    the prompt's own is skipped (two questions with one right answer).
    """
    import random

    from datasets import Dataset

    rows = pairs.to_list()
    chosen = {}  # the first chosen answer of each prompt
    for row in rows:
        chosen.setdefault(repr(row["prompt"]), (row["prompt"], row["chosen"]))
    answers = [answer for _, answer in chosen.values()]
    rng = random.Random(seed)
    extra = []
    for prompt, answer in chosen.values():
        other = rng.choice(answers)
        if message_text(other, join="").strip() != message_text(answer, join="").strip():
            extra.append({"prompt": prompt, "chosen": answer, "rejected": other})
    return Dataset.from_list(rows + extra)  # the trainer draws its batches at random
