"""Held-out pairs never share a prompt with training pairs: a vote with an edit makes two pairs of one
prompt, and a reward model measured on a prompt it trained on measures memory, not judgement."""

import json

from tinyalign.config.recipe import Data
from tinyalign.data import loading as data
from tinyalign.measure.pair_files import split_pairs
from tinyalign.votes import VoteStore, load_pairs


def store_with_edits(path, prompts=60):
    with VoteStore(path) as store:
        for i in range(prompts):
            question = [{"role": "user", "content": f"{i}+1"}]
            both_bad = i % 2 == 0  # both wrong, the right answer written: two pairs of this prompt
            store.record(conversation=question, response_a=f"{i + 2}", response_b=f"{i}1" if both_bad else f"{i + 1}",
                         model_a="sft", model_b="sft", vote="both_bad" if both_bad else "b",
                         edited=f"{i + 1}" if both_bad else None, annotator="oracle", settings={})
    return path


def prompts_of(rows):
    return {json.dumps(r["prompt"], sort_keys=True) for r in rows}


def test_split_pairs_keeps_each_prompt_on_one_side(tmp_path):
    db = store_with_edits(tmp_path / "votes.sqlite")
    assert len(load_pairs(db)) == 90  # 30 prompts with an edit make two pairs each
    counts = split_pairs(db, tmp_path / "pairs", held_out=0.2, seed=3)
    train, test = ([json.loads(line) for line in open(tmp_path / "pairs" / f"{n}.jsonl")] for n in ("train", "test"))
    assert counts == {"train": len(train), "test": len(test)} and len(train) + len(test) == 90
    assert 18 <= len(test) <= 19  # the share asked for, give or take the last prompt's second pair
    assert not prompts_of(train) & prompts_of(test)


def test_a_reward_model_recipe_holds_out_whole_prompts(tmp_path):
    db = store_with_edits(tmp_path / "votes.sqlite")
    train, test = data.splits(Data(source=str(db), test_size=0.1), seed=42)
    assert len(train) + len(test) == 90 and 9 <= len(test) <= 10
    assert not prompts_of(train) & prompts_of(test)
