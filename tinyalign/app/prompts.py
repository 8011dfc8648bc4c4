"""The prompt queue of a labeling session (`--prompts FILE`): each annotator gets the next prompt they
have not voted on yet, both checkpoints answer, they vote, the next one comes.

A prompts file is JSONL, one prompt a line: {"prompt": "..."} plus, optionally, "id" (kept in the
vote store, so coverage and agreement can be computed; default: the line number) and "reference" (an
answer the annotator may reveal). "question"/"answer" are read as prompt/reference, so a task's data
file works as it is.
"""

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    reference: str = ""


def load(path) -> list[Prompt]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--prompts {path}: no such file; give a JSONL file with one {{\"prompt\": ...}} a line")
    prompts, seen = [], set()
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise UserError(f"--prompts {path}, line {number}: not JSON ({e.msg}); write one object a line") from None
        text = row.get("prompt", row.get("question")) if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"--prompts {path}, line {number}: needs a non-empty \"prompt\" (or \"question\") text")
        prompt_id = str(row.get("id", number))
        if prompt_id in seen:
            raise UserError(f"--prompts {path}, line {number}: id {prompt_id!r} is used twice; ids must be unique")
        seen.add(prompt_id)
        reference = row.get("reference", row.get("answer", ""))
        prompts.append(Prompt(prompt_id, text, "" if reference is None else str(reference)))
    if not prompts:
        raise UserError(f"--prompts {path}: no prompts in it")
    return prompts


def pair_key(model_a: str, model_b: str) -> tuple[str, str]:
    return tuple(sorted((model_a, model_b)))


def voted(votes, annotator: str, pair=None) -> set[str]:
    """The prompt ids `annotator` has a counted vote on (for `pair` of checkpoints, when given)."""
    return {v["prompt_id"] for v in votes if v["prompt_id"] and v["annotator"] == annotator
            and (pair is None or pair_key(v["model_a"], v["model_b"]) == pair)}


def next_prompt(prompts: list[Prompt], done: set[str], skipped: set[str]) -> Prompt | None:
    """The first prompt neither voted on nor skipped; once only skipped ones are left, those again."""
    for candidates in ([p for p in prompts if p.id not in done and p.id not in skipped],
                       [p for p in prompts if p.id not in done]):
        if candidates:
            return candidates[0]
    return None


def progress(prompts: list[Prompt], votes, annotator: str, pair=None) -> str:
    """'mine / all' for the counter: prompts this annotator voted on, and prompts anyone voted on."""
    ids = {p.id for p in prompts}
    mine = voted(votes, annotator, pair) & ids
    anyone = {v["prompt_id"] for v in votes if v["prompt_id"] in ids
              and (pair is None or pair_key(v["model_a"], v["model_b"]) == pair)}
    where = f" for {pair[0]} vs {pair[1]}" if pair else ""
    return f"{len(mine)} / {len(ids)} prompts voted by you, {len(anyone)} / {len(ids)} by anyone{where}"
