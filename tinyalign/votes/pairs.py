"""The export of the votes to training rows: DPO/RM preference pairs, and SFT rows from the
completions marked good.

    pairs("prefs.sqlite")                  # -> [{"prompt": [...], "chosen": [...], "rejected": [...]}]
    export("prefs.sqlite", "pairs.jsonl")  # the same rows, written atomically; what `prefs export` does

Pairs are TRL's conversational preference format; SFT rows are its conversational prompt-completion
format. A "system" entry in a vote's settings becomes the prompt's system message.
"""

import json
from collections import Counter

from tinyalign import files
from tinyalign.errors import UserError
from tinyalign.votes.store import read_votes

# Why a vote yields no pair, as printed by `export` and put in load_pairs' error.
DROP_TIE = "tie without an edited answer"
DROP_BOTH_BAD = "both_bad without an edited answer"
DROP_SAME = "chosen equals rejected"
DROP_DUPLICATE = "duplicate pair"
DROP_GOOD = "completion marked good (an SFT row: export with --sft)"
SFT_COLUMNS = ("prompt", "completion")
PAIR_COLUMNS = ("prompt", "chosen", "rejected")


def marked_good(vote) -> bool:
    """A Review-tab verdict that the completion (response_a) is good as it is."""
    return bool(vote["settings"].get("review")) and vote["settings"].get("verdict") == "good"


def _prompt(vote):
    prompt = [{"role": m["role"], "content": m["content"]} for m in vote["conversation"]]
    system = vote["settings"].get("system")
    if system and prompt[0]["role"] != "system":
        prompt.insert(0, {"role": "system", "content": system})  # train on what the models were shown
    return prompt


def sft_rows(votes):
    """SFT rows {"prompt", "completion"} (TRL's conversational prompt-completion format) from the
    completions marked good, duplicates dropped."""
    rows, seen = [], set()
    for vote in votes:
        if not marked_good(vote):
            continue
        row = {"prompt": _prompt(vote), "completion": [{"role": "assistant", "content": vote["response_a"]}]}
        key = json.dumps(row, sort_keys=True, ensure_ascii=False)
        if key not in seen:
            seen.add(key)
            rows.append(row)
    return rows


def build_pairs(votes):
    """DPO rows in TRL's conversational preference format, and a Counter of why others were dropped."""
    rows, dropped, seen = [], Counter(), set()
    for vote in votes:
        if marked_good(vote):
            dropped[DROP_GOOD] += 1
            continue
        prompt = _prompt(vote)
        edited = vote["edited"]
        if vote["vote"] in ("tie", "both_bad"):
            # Neither answer beat the other, but an answer the annotator wrote beats both: a tie's
            # correction is as much a preference as a both-bad one's.
            if not edited:
                dropped[DROP_TIE if vote["vote"] == "tie" else DROP_BOTH_BAD] += 1
                continue
            candidates = [(edited, vote["response_a"]), (edited, vote["response_b"])]
        else:
            winner, loser = "response_a", "response_b"
            if vote["vote"] == "b":
                winner, loser = loser, winner
            candidates = [(edited or vote[winner], vote[loser])]
        for chosen, rejected in candidates:
            if chosen.strip() == rejected.strip():  # nothing to learn; also catches trailing-space edits
                dropped[DROP_SAME] += 1
                continue
            row = {"prompt": prompt,
                   "chosen": [{"role": "assistant", "content": chosen}],
                   "rejected": [{"role": "assistant", "content": rejected}]}
            key = json.dumps(row, sort_keys=True, ensure_ascii=False)
            if key in seen:
                dropped[DROP_DUPLICATE] += 1
                continue
            seen.add(key)
            rows.append(row)
    return rows, dropped


def pairs(store_or_path, dimension=None):
    """DPO rows {"prompt", "chosen", "rejected"} from a VoteStore or the path of one.

    a/b: chosen = the edited answer if one was written, else the winner; rejected = the loser.
    tie or both_bad with an edited answer: two rows, edited over A and edited over B.
    Dropped: tie or both_bad without an edit, chosen == rejected, exact duplicates.
    A "system" entry in a vote's settings becomes the prompt's system message.
    """
    return build_pairs(read_votes(store_or_path, dimension))[0]


def load_pairs(path, dimension=None):
    """The data loader's entry for `data.source: something.sqlite` (and `data.dimension`): the export
    rows, or a UserError."""
    votes = read_votes(path, dimension)
    rows, dropped = build_pairs(votes)
    if not rows:
        raise no_pairs(path, votes, dropped)
    return rows


def no_pairs(path, votes, dropped):
    return UserError(f"vote store {path} has no usable preference pairs ({len(votes)} votes"
                     f"{'; dropped: ' + describe(dropped) if dropped else ''}); vote A or B, or write a "
                     "better answer, in the arena app first")


def describe(counter):
    return ", ".join(f"{n} {reason}" for reason, n in counter.most_common())


def export(store_or_path, out, dimension=None, sft=False) -> dict:
    """Write a store's DPO pairs to `out` (JSONL, atomically): what the export command and the app's
    Export tab both do. Returns {pairs, votes, dropped}; UserError when no vote makes a pair.
    sft=True writes the completions marked good as SFT rows instead: {rows, votes}."""
    if sft and dimension:
        raise UserError("--sft exports the completions marked good, which have no dimensions; drop --dimension")
    # never over the store, another store or any file that is not a pairs file: checked before reading
    out = files.check_jsonl_out(out, columns=SFT_COLUMNS if sft else PAIR_COLUMNS,
                                inputs=[getattr(store_or_path, "path", store_or_path)])
    votes = read_votes(store_or_path, dimension)
    if sft:
        rows = sft_rows(votes)
        if not rows:
            raise UserError(f"vote store {getattr(store_or_path, 'path', store_or_path)} has no completion marked "
                            "good; mark some in the app's Review tab (--completions RUN_DIR) first")
        files.write_jsonl(out, rows)
        return {"rows": len(rows), "votes": len(votes)}
    rows, dropped = build_pairs(votes)
    if not rows:  # an empty dataset would only fail later, in DPO
        raise no_pairs(getattr(store_or_path, "path", store_or_path), votes, dropped)
    files.write_jsonl(out, rows)
    return {"pairs": len(rows), "votes": len(votes), "dropped": describe(dropped) if dropped else "nothing"}
