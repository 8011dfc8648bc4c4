"""How far the votes can be trusted: gold items, annotators agreeing with each other, and the left
side's share of the wins (position bias).

A gold item is a prompt of a labeling session with a known better answer (prompts.py): its vote row
has settings.gold and the known better answer as response_a, so a vote for "a" agrees with gold. An
annotator's agreement is measured on gold items when they voted on any, else against the other
annotators who judged the same prompts; `trusted()` leaves out the votes of annotators measured below
a threshold, for the export to pairs.
"""

import json

# The "checkpoints" of a gold item's vote row: response_a is the known better answer, response_b the worse.
GOLD_BETTER, GOLD_WORSE = "gold:better", "gold:worse"


def is_gold(vote) -> bool:
    return bool(vote["settings"].get("gold"))


def _winner(vote):
    """The checkpoint a vote preferred, or "" for a tie / both bad: comparable across sides and orders."""
    return {"a": vote["model_a"], "b": vote["model_b"]}.get(vote["vote"], "")


def _items(votes) -> dict:
    """{(prompt, pair of checkpoints): {annotator: the one they preferred}}. Same prompt = same queued
    prompt id, or the same conversation in free chat; an annotator's latest vote counts."""
    groups: dict = {}
    for v in votes:
        prompt = v.get("prompt_id") or json.dumps(v["conversation"], sort_keys=True, ensure_ascii=False)
        key = (prompt, tuple(sorted((v["model_a"], v["model_b"]))))
        groups.setdefault(key, {})[v["annotator"]] = _winner(v)
    return groups


def agreement(votes):
    """How often two annotators who judged the same prompt for the same pair of checkpoints agree.

    Returns {items: prompts with 2+ annotators, pairs: annotator pairs compared, agree: those who
    preferred the same one}.
    """
    items = pairs_ = agree = 0
    for by_annotator in _items(votes).values():
        winners = list(by_annotator.values())
        if len(winners) < 2:
            continue
        items += 1
        for i in range(len(winners)):
            for j in range(i + 1, len(winners)):
                pairs_ += 1
                agree += winners[i] == winners[j]
    return {"items": items, "pairs": pairs_, "agree": agree}


def by_annotator(votes) -> dict[str, dict]:
    """Per annotator, sorted by name: {votes, gold: gold items voted on, gold_agree: of those, the known
    better answer chosen (a tie or both bad does not agree), peers: comparisons with another annotator
    on the same prompt and pair, peers_agree: of those, the same one preferred, score: the share that
    decides trust (gold when there is any, else peers; None with neither)}."""
    table = {name: {"votes": 0, "gold": 0, "gold_agree": 0, "peers": 0, "peers_agree": 0}
             for name in sorted({v["annotator"] for v in votes})}
    latest_gold = {}
    for v in votes:
        table[v["annotator"]]["votes"] += 1
        if is_gold(v):
            latest_gold[(v["annotator"], v.get("prompt_id") or v["response_a"])] = v["vote"]
    for (name, _), vote in latest_gold.items():
        table[name]["gold"] += 1
        table[name]["gold_agree"] += vote == "a"
    for judged in _items(votes).values():
        for name, winner in judged.items():
            others = [w for other, w in judged.items() if other != name]
            table[name]["peers"] += len(others)
            table[name]["peers_agree"] += sum(w == winner for w in others)
    for row in table.values():
        row["score"] = (row["gold_agree"] / row["gold"] if row["gold"]
                        else row["peers_agree"] / row["peers"] if row["peers"] else None)
    return table


def share(agree: int, total: int) -> str:
    """'3/4 (75%)', or '-' when there was nothing to agree on."""
    return f"{agree}/{total} ({agree / total:.0%})" if total else "-"


def describe(row) -> str:
    """An annotator's agreement in words: 'gold 3/4 (75%)', 'with others 5/8 (62%)', or 'unmeasured'."""
    if row["gold"]:
        return f"gold {share(row['gold_agree'], row['gold'])}"
    if row["peers"]:
        return f"with others {share(row['peers_agree'], row['peers'])}"
    return "unmeasured"


def trusted(votes, minimum: float):
    """(the votes of annotators whose agreement is at least `minimum`, {annotator: by_annotator row} of
    those left out). An annotator with nothing to be measured against (no gold item, no prompt shared
    with another annotator) is kept: one person's session would otherwise export nothing."""
    table = by_annotator(votes)
    left_out = {name: row for name, row in table.items() if row["score"] is not None and row["score"] < minimum}
    return [v for v in votes if v["annotator"] not in left_out], left_out


def position_bias(votes):
    """(left wins, a/b votes): the left side won = response_a won and was on the left, or response_b
    won and response_a was on the right. None without a/b votes."""
    decisive = [v for v in votes if v["vote"] in ("a", "b")]
    if not decisive:
        return None
    return sum((v["vote"] == "a") != v["swapped"] for v in decisive), len(decisive)
