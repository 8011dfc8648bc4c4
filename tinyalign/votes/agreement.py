"""How far the votes can be trusted: annotators agreeing with each other, and the left side's
share of the wins (position bias).
"""

import json

def _winner(vote):
    """The checkpoint a vote preferred, or "" for a tie / both bad: comparable across sides and orders."""
    return {"a": vote["model_a"], "b": vote["model_b"]}.get(vote["vote"], "")


def agreement(votes):
    """How often two annotators who judged the same prompt for the same pair of checkpoints agree.

    Same prompt = same queued prompt id, or the same conversation in free chat. Returns {items: prompts
    with 2+ annotators, pairs: annotator pairs compared, agree: those who preferred the same one}.
    """
    groups: dict = {}
    for v in votes:
        prompt = v.get("prompt_id") or json.dumps(v["conversation"], sort_keys=True, ensure_ascii=False)
        key = (prompt, tuple(sorted((v["model_a"], v["model_b"]))))
        groups.setdefault(key, {})[v["annotator"]] = _winner(v)  # an annotator's latest vote counts
    items = pairs_ = agree = 0
    for by_annotator in groups.values():
        winners = list(by_annotator.values())
        if len(winners) < 2:
            continue
        items += 1
        for i in range(len(winners)):
            for j in range(i + 1, len(winners)):
                pairs_ += 1
                agree += winners[i] == winners[j]
    return {"items": items, "pairs": pairs_, "agree": agree}


def position_bias(votes):
    """(left wins, a/b votes): the left side won = response_a won and was on the left, or response_b
    won and response_a was on the right. None without a/b votes."""
    decisive = [v for v in votes if v["vote"] in ("a", "b")]
    if not decisive:
        return None
    return sum((v["vote"] == "a") != v["swapped"] for v in decisive), len(decisive)
