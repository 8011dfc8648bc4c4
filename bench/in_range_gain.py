"""Is a GRPO run's held-out loss a matter of the held-out number ranges? Greedy accuracy of the SFT start and
GRPO runs on unseen problems from the *training* ranges (`tiny:word-problems` training problems 1000-1400,
less every problem a given run trained on), each paired against the start.

    python bench/in_range_gain.py runs/sw/NAME [runs/sw/OTHER ...] [--start runs/demo-real/sft] [--problems 300]
"""

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

RECIPE = "recipes/smollm2_word_grpo.yaml"


def trained_on(run: str) -> set[str]:
    """The questions a GRPO run sampled answers to (its completions.jsonl)."""
    questions = set()
    for line in (Path(run) / "completions.jsonl").read_text().splitlines():
        questions.add(json.loads(line)["prompt"].split("user\n", 1)[1].rsplit("\nassistant", 1)[0])
    return questions


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="GRPO run directories")
    parser.add_argument("--start", default="runs/demo-real/sft", help="the adapter the runs started from")
    parser.add_argument("--problems", type=int, default=300)
    args = parser.parse_args()
    from tinyalign import data, model, recipe as recipes, solve_rate
    from tinyalign.generate import generate

    recipe = recipes.load(RECIPE)
    train, _ = data.splits(recipe.data, recipe.seed)
    seen = set().union(*(trained_on(run) for run in args.runs))
    rows = [row for row in train.select(range(1000, 1400)) if row["question"] not in seen][:args.problems]
    reward = solve_rate.accuracy_reward(recipe)
    prompts, answers = [data.prompt_messages(recipe.data, r) for r in rows], [r["answer"] for r in rows]
    adapters = {"start": args.start, **{Path(run).name: run for run in args.runs}}
    policy, tokenizer = model.load_with_adapters(recipe.model, adapters)
    verdicts = {}
    for name in adapters:
        policy.set_adapter(name)
        completions = generate(policy, tokenizer, prompts, max_new_tokens=32, desc=name)
        verdicts[name] = [float(v) for v in solve_rate.solved(reward, [c[0] for c in completions], answer=answers)]
    print(f"\n{len(rows)} unseen training-range problems, greedy")
    for name in adapters:
        diff, low, high = solve_rate.paired_interval95(verdicts["start"], verdicts[name])
        print(f"{name:<16}{sum(verdicts[name]) / len(rows):7.1%}   {diff * 100:+.1f} points ({low * 100:+.1f} to {high * 100:+.1f})")


if __name__ == "__main__":
    main()
