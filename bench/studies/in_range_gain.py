"""Is a GRPO run's held-out loss a matter of the held-out number ranges? Greedy accuracy of the SFT start and
GRPO runs on unseen problems from the *training* ranges (`tiny:word-problems` training problems 1000-1400,
less every problem a given run trained on), each paired against the start.

    python -m bench.studies.in_range_gain runs/sw/NAME [runs/sw/OTHER ...] [--start runs/demo-real/sft]
                                         [--problems 300] [--record FILE]

Prints the table and writes the run's record (bench/harness.py).
"""

import argparse
import dataclasses
import json
from pathlib import Path

from bench import harness

RECIPE = "recipes/smollm2_word_grpo.yaml"


def trained_on(run: str) -> set[str]:
    """The questions a GRPO run sampled answers to (its completions.jsonl)."""
    questions = set()
    for line in (Path(run) / "completions.jsonl").read_text().splitlines():
        questions.add(json.loads(line)["prompt"].split("user\n", 1)[1].rsplit("\nassistant", 1)[0])
    return questions


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.studies.in_range_gain", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="GRPO run directories")
    parser.add_argument("--start", default="runs/demo-real/sft", help="the adapter the runs started from")
    parser.add_argument("--problems", type=int, default=300)
    harness.add_record_arg(parser)
    args = parser.parse_args()
    from tinyalign.config import recipe as recipes
    from tinyalign.data import loading as data
    from tinyalign.evaluate import model_metrics, paired_gain
    from tinyalign.measure import solve_rate
    from tinyalign.models import loading as model
    from tinyalign.models.generate import generation_settings

    recipe = recipes.load(RECIPE)
    # the training split's rows in evaluate's form (no held-out split named: eval_rows reads the training one)
    rows = data.eval_rows(dataclasses.replace(recipe.data, test_split=None), limit=1400, seed=recipe.seed)[1000:]
    seen = set().union(*(trained_on(run) for run in args.runs))
    rows = [row for row in rows if row["question"] not in seen][:args.problems]
    adapters = {"start": args.start, **{Path(run).name: run for run in args.runs}}
    policy, tokenizer = model.load_with_adapters(recipe.model, adapters)
    solved_by, settings = solve_rate.accuracy_reward(recipe), generation_settings(recipe)
    scores = {}
    for name in adapters:
        policy.set_adapter(name)
        scores[name] = model_metrics(policy, tokenizer, rows, [], [], solved_by, settings, k=1, batch_size=64,
                                     seed=recipe.seed, name=name)
    print(f"\n{len(rows)} unseen training-range problems, greedy\n")
    print(harness.table([(name, f"{scores[name]['accuracy']:.1%}", paired_gain(scores["start"], scores[name]))
                         for name in adapters], ["model", "greedy accuracy", "paired gain over the start"],
                        align="lrl"))
    harness.record("in_range_gain", {"runs": args.runs, "start": args.start, "problems": len(rows),
                                     "accuracy": {name: scores[name]["accuracy"] for name in adapters}}, args.record)


if __name__ == "__main__":
    main()
