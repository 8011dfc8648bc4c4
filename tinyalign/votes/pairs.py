"""The export of the votes to training rows: DPO/RM preference pairs, and SFT rows from the
completions marked good.

    pairs("prefs.sqlite")                  # -> [{"prompt": [...], "chosen": [...], "rejected": [...]}]
    export("prefs.sqlite", "pairs.jsonl")  # the same rows, written atomically; what `prefs export` does

Pairs are TRL's conversational preference format; SFT rows are its conversational prompt-completion
format. A "system" entry in a vote's settings becomes the prompt's system message.
"""

import json
from collections import Counter

from tinyalign.core import files
from tinyalign.core.errors import UserError
from tinyalign.votes.store import judged_on, read_votes
from tinyalign.votes.trust import describe as describe_agreement
from tinyalign.votes.trust import is_gold, trusted

# Why a vote yields no pair, as printed by `export` and put in load_pairs' error.
DROP_TIE = "tie without an edited answer"
DROP_BOTH_BAD = "both_bad without an edited answer"
DROP_SAME = "chosen equals rejected"
DROP_DUPLICATE = "duplicate pair"
DROP_GOOD = "completion marked good (an SFT row: export with --sft)"
DROP_GOLD = "gold item (it checks the annotator; the known pair is yours already)"
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
        if is_gold(vote):  # a wrong answer on a gold item would otherwise become a wrong pair
            dropped[DROP_GOLD] += 1
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


def _votes(store_or_path, dimension=None, min_agreement=None):
    """(the votes to export, Counter of votes left out for their annotator's agreement, {annotator:
    by_annotator row} of the annotators left out). Agreement is measured on the overall votes, also
    when the pairs come from one dimension's verdicts."""
    if min_agreement is not None and (isinstance(min_agreement, bool) or not isinstance(min_agreement, (int, float))
                                      or not 0 <= min_agreement <= 1):
        raise UserError(f"the minimum annotator agreement is a share between 0 and 1 (0.7 = 70 % of votes agree "
                        f"with gold or with the other annotators), got {min_agreement!r}")
    votes = read_votes(store_or_path)
    chosen = votes if dimension is None else judged_on(votes, dimension)
    left_out, dropped = {}, Counter()
    if min_agreement is not None:
        _, left_out = trusted(votes, min_agreement)
        if left_out:
            names = ", ".join(f"{name}: {describe_agreement(row)}" for name, row in left_out.items())
            kept = [v for v in chosen if v["annotator"] not in left_out]
            dropped[f"by annotators below {min_agreement:.0%} agreement ({names})"] = len(chosen) - len(kept)
            chosen = kept
    return chosen, dropped, left_out


def pairs(store_or_path, dimension=None, min_agreement=None):
    """DPO rows {"prompt", "chosen", "rejected"} from a VoteStore or the path of one.

    a/b: chosen = the edited answer if one was written, else the winner; rejected = the loser.
    tie or both_bad with an edited answer: two rows, edited over A and edited over B.
    Dropped: tie or both_bad without an edit, gold items, chosen == rejected, exact duplicates, and with
    `min_agreement` the votes of annotators whose agreement (trust.by_annotator) is below it.
    A "system" entry in a vote's settings becomes the prompt's system message.
    """
    return build_pairs(_votes(store_or_path, dimension, min_agreement)[0])[0]


def load_pairs(path, dimension=None, min_agreement=None):
    """The data loader's entry for `data.source: something.sqlite` (with `data.dimension` and
    `data.min_annotator_agreement`): the export rows, or a UserError."""
    votes, left_out, _ = _votes(path, dimension, min_agreement)
    rows, dropped = build_pairs(votes)
    if not rows:
        raise no_pairs(path, len(votes) + sum(left_out.values()), dropped + left_out)
    return rows


def no_pairs(path, counted, dropped):
    return UserError(f"vote store {path} has no usable preference pairs ({counted} votes"
                     f"{'; dropped: ' + describe(dropped) if dropped else ''}); vote A or B, or write a "
                     "better answer, in the arena app first")


def describe(counter):
    return ", ".join(f"{n} {reason}" for reason, n in counter.most_common())


def export(store_or_path, out, dimension=None, sft=False, min_agreement=None) -> dict:
    """Write a store's DPO pairs to `out` (JSONL, atomically): what the export command and the app's
    Export tab both do. Returns {pairs, votes, dropped, left_out: {annotator: agreement row}}; UserError
    when no vote makes a pair. sft=True writes the completions marked good as SFT rows instead: {rows, votes}."""
    if sft and (dimension or min_agreement is not None):
        raise UserError("--sft exports the completions marked good, which have no dimensions or annotator "
                        "agreement; drop --dimension and --min-agreement")
    # never over the store, another store or any file that is not a pairs file: checked before reading
    out = files.check_jsonl_out(out, columns=SFT_COLUMNS if sft else PAIR_COLUMNS,
                                inputs=[getattr(store_or_path, "path", store_or_path)])
    if sft:
        votes = read_votes(store_or_path)
        rows = sft_rows(votes)
        if not rows:
            raise UserError(f"vote store {getattr(store_or_path, 'path', store_or_path)} has no completion marked "
                            "good; mark some in the app's Review tab (--completions RUN_DIR) first")
        files.write_jsonl(out, rows)
        return {"rows": len(rows), "votes": len(votes)}
    votes, left_out, annotators = _votes(store_or_path, dimension, min_agreement)
    rows, dropped = build_pairs(votes)
    dropped += left_out
    counted = len(votes) + sum(left_out.values())
    if not rows:  # an empty dataset would only fail later, in DPO
        raise no_pairs(getattr(store_or_path, "path", store_or_path), counted, dropped)
    files.write_jsonl(out, rows)
    return {"pairs": len(rows), "votes": counted, "dropped": describe(dropped) if dropped else "nothing",
            "left_out": annotators}
