"""The prompt queue of a labeling session (`--prompts FILE`): each annotator gets the next prompt they
have not voted on yet, both checkpoints answer, they vote, the next one comes.

A prompts file is JSONL, one prompt a line: {"prompt": "..."} plus, optionally, "id" (kept in the
vote store, so coverage and agreement can be computed; default: the line number) and "reference" (an
answer the annotator may reveal). "question"/"answer" are read as prompt/reference, so a task's data
file works as it is.

A line with "chosen" and "rejected" answers is a gold item: a prompt whose better answer is known. The
queue shows its two answers, at random sides, as if two checkpoints had given them, so the annotator's
vote measures the annotator (votes.trust); put a few among the prompts, or keep them in a file of their
own (`--gold FILE`, mixed evenly into any queue, a recipe's too).

A recipe (`--prompts recipes/tiny_grpo.yaml`) gives its held-out split, read as training and evaluate
read it (data.eval_rows, the recipe's seed): the prompt template filled in, the reference answer from
its `answer` (or `completion`) template, and the id "<source>#<index in the held-out split>", stable as
long as the recipe's data section is.
"""

import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tinyalign.core import files
from tinyalign.core.errors import UserError


@dataclass(frozen=True)
class Prompt:
    id: str
    text: str
    reference: str = ""
    system: str = ""  # a recipe's system prompt, used in place of the page's
    gold: tuple[str, str] | None = None  # a gold item's (known better, worse) answers


def load(path) -> list[Prompt]:
    path = Path(path)
    if path.suffix in (".yaml", ".yml"):
        return load_recipe(path)
    if not path.is_file():
        raise UserError(f"--prompts {path}: no such file; give a JSONL file with one {{\"prompt\": ...}} a line")

    def not_json(number, error):
        why = getattr(error, "msg", error)
        raise UserError(f"--prompts {path}, line {number}: not JSON ({why}); write one object a line") from None

    prompts, seen = [], set()
    for number, row in files.read_jsonl(path, broken=not_json):
        text = row.get("prompt", row.get("question")) if isinstance(row, dict) else None
        if not isinstance(text, str) or not text.strip():
            raise UserError(f"--prompts {path}, line {number}: needs a non-empty \"prompt\" (or \"question\") text")
        prompt_id = str(row.get("id", number))
        if prompt_id in seen:
            raise UserError(f"--prompts {path}, line {number}: id {prompt_id!r} is used twice; ids must be unique")
        seen.add(prompt_id)
        reference = row.get("reference", row.get("answer", ""))
        prompts.append(Prompt(prompt_id, text, "" if reference is None else str(reference),
                              gold=_gold(row, path, number)))
    if not prompts:
        raise UserError(f"--prompts {path}: no prompts in it")
    return prompts


def _gold(row: dict, path, number) -> tuple[str, str] | None:
    if "chosen" not in row and "rejected" not in row:
        return None
    better, worse = row.get("chosen"), row.get("rejected")
    if not all(isinstance(answer, str) and answer.strip() for answer in (better, worse)):
        raise UserError(f"--prompts {path}, line {number}: a gold item needs both a \"chosen\" (the known better) "
                        "and a \"rejected\" answer, as non-empty texts")
    if better.strip() == worse.strip():
        raise UserError(f"--prompts {path}, line {number}: the gold item's chosen and rejected answers are the "
                        "same; no vote could agree or disagree with it")
    return better, worse


def mix_gold(prompts: list[Prompt], gold: list[Prompt], path) -> list[Prompt]:
    """The queue with the gold items spread evenly through it (none first: an annotator starts on real
    prompts), in the order of both lists."""
    plain = [p.id for p in gold if not p.gold]
    if plain:
        raise UserError(f"--gold {path}: {plain[0]!r} has no \"chosen\" and \"rejected\" answers; every gold item "
                        "needs both (the known better and the worse)")
    taken = {p.id for p in prompts}
    clash = [p.id for p in gold if p.id in taken]
    if clash:
        raise UserError(f"--gold {path}: id {clash[0]!r} is also a prompt's id in the queue; give the gold items "
                        "ids of their own (e.g. \"gold-1\")")
    mixed, start = [], 0
    for k, item in enumerate(gold, 1):
        end = round(k * len(prompts) / (len(gold) + 1))
        mixed += [*prompts[start:end], item]
        start = end
    return mixed + prompts[start:]


def load_recipe(path: Path) -> list[Prompt]:
    from tinyalign.config import recipe
    from tinyalign.data import loading as data

    if not path.is_file():
        raise UserError(f"--prompts {path}: no such recipe; give a recipe file or a JSONL of prompts")
    try:
        spec = recipe.load(path)
        rows = data.eval_rows(spec.data, seed=spec.seed)
    except UserError as e:
        raise UserError(f"--prompts {path}: {e}") from None
    prompts = []
    for index, row in enumerate(rows):
        messages = row["prompt"]
        user = [m["content"] for m in messages if m["role"] == "user"]
        system = "".join(m["content"] for m in messages if m["role"] == "system")
        if user:  # a prompt is one user turn; the queue asks it and the checkpoints answer it
            prompts.append(Prompt(f"{spec.data.source}#{index}", user[-1], row.get("answer") or "", system))
    if not prompts:
        raise UserError(f"--prompts {path}: its held-out split of {spec.data.source} has no prompts")
    return prompts


class Ahead:
    """Answers generated in the background for the prompt an annotator most likely gets next, while
    they read and vote; one per browser session. Taken only when the next request is exactly the one
    they were made for (same prompt, checkpoints or mode, and settings); anything else is a miss."""

    _workers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ahead")

    def __init__(self):
        self._lock = threading.Lock()
        self._made: dict[str, tuple[tuple, Future]] = {}  # session -> (key, its future)

    def start(self, session: str, key: tuple, generate) -> None:
        with self._lock:
            self._made[session] = (key, self._workers.submit(generate))

    def take(self, session: str, key: tuple):
        """generate()'s result if it was started for `key` (waiting for it to finish), else None."""
        with self._lock:
            made = self._made.pop(session, None)
        if made is None or made[0] != key:
            return None
        try:
            return made[1].result()
        except Exception:  # a failed guess costs nothing: the request is generated as usual
            return None


def pair_key(model_a: str, model_b: str) -> tuple[str, str]:
    return tuple(sorted((model_a, model_b)))


def _for_pair(vote, pair) -> bool:
    """A vote on `pair` of checkpoints (any pair when None); a gold item is asked once, whatever the pair."""
    return (pair is None or pair_key(vote["model_a"], vote["model_b"]) == pair
            or bool(vote.get("settings", {}).get("gold")))


def voted(votes, annotator: str, pair=None) -> set[str]:
    """The prompt ids `annotator` has a counted vote on (for `pair` of checkpoints, when given)."""
    return {v["prompt_id"] for v in votes if v["prompt_id"] and v["annotator"] == annotator and _for_pair(v, pair)}


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
    anyone = {v["prompt_id"] for v in votes if v["prompt_id"] in ids and _for_pair(v, pair)}
    where = f" for {pair[0]} vs {pair[1]}" if pair else ""
    return f"{len(mine)} / {len(ids)} prompts voted by you, {len(anyone)} / {len(ids)} by anyone{where}"
