"""DPO's implicit reward as a reward model, on held-out votes: after DPO on the votes' training pairs, an
answer's reward is beta * (log pi_dpo(answer) - log pi_start(answer)), the quantity DPO trains to order the
pairs (Rafailov et al. 2023). Unlike a scalar head on the last token it is read from the language model's
own next-token predictions, where a 135M model's arithmetic lives. Accuracy on the held-out pairs, split
by kind (the model's two answers; the annotator's worked solution over an answer), beside the start's
own log-likelihood as an untrained judge.

    python -m tinyalign.dpo recipes/smollm2_word_dpo.yaml data.source=PAIRS data.split=train output_dir=runs/implicit/dpo_s0
    python -m bench.studies.implicit_reward runs/implicit/dpo_s0 [more DPO runs] [--pairs PAIRS]
                                    [--start runs/demo-real/sft] [--votes runs/real_rm] [--record FILE]

PAIRS is a folder with train.jsonl / test.jsonl (prompt, chosen, rejected, reference), e.g. the split
bench.studies.real_judge writes (runs/real_judge_final/pairs): the scalar RM and the judge were measured on it.
Prints the table and writes the run's record (bench/harness.py).
"""

import argparse
import json
from pathlib import Path
from statistics import mean

from bench import harness
from tinyalign.models.likelihood import answer_logps, encode

RECIPE = "recipes/smollm2_word_dpo.yaml"


def agreement(chosen: list[float], rejected: list[float], picks: list[int]) -> float:
    """Share of the pairs (indices `picks`) the score orders as the vote did: a tie is not agreement, as in
    the reward model's held-out accuracy (rm_measure.measure)."""
    return mean(chosen[i] > rejected[i] for i in picks) if picks else float("nan")


def main():
    parser = argparse.ArgumentParser(prog="python -m bench.studies.implicit_reward", description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="DPO runs that continued --start on the pairs' training split")
    parser.add_argument("--pairs", default="runs/real_judge_final/pairs")
    parser.add_argument("--start", default="runs/demo-real/sft")
    parser.add_argument("--votes", default="runs/real_rm", help="the folder with the answers voted on (answers.jsonl)")
    harness.add_record_arg(parser)
    args = parser.parse_args()
    from tinyalign.config import recipe as recipes
    from tinyalign.data.loading import text_of
    from tinyalign.data.messages import task_text
    from tinyalign.models import loading as model

    pairs = [json.loads(line) for line in (Path(args.pairs) / "test.jsonl").read_text().splitlines() if line]
    prompts = [p["prompt"] for p in pairs]
    chosen, rejected = [text_of(p["chosen"]) for p in pairs], [text_of(p["rejected"]) for p in pairs]
    # a chosen answer the model wrote makes a model-vs-model pair; else it is the annotator's edit
    answered = {(task_text(row["conversation"]), text_of(a))
                for row in map(json.loads, (Path(args.votes) / "answers.jsonl").read_text().splitlines())
                for a in row["answers"]}
    mine = [(task_text(p["prompt"]), c) in answered for p, c in zip(pairs, chosen)]
    kinds = {"all": list(range(len(pairs))), "model vs model": [i for i, m in enumerate(mine) if m],
             "edit vs model": [i for i, m in enumerate(mine) if not m]}
    recipe = recipes.load(RECIPE)
    beta = float(recipe.train.get("beta", 0.1))  # scales the reward, not its order

    adapters = {"start": args.start, **{f"run{i}": run for i, run in enumerate(args.runs)}}
    policy, tokenizer = model.load_with_adapters(recipe.model, adapters)
    encoded = encode(tokenizer, prompts, chosen), encode(tokenizer, prompts, rejected)  # once, for every model
    logps = {}
    for name in adapters:
        policy.set_adapter(name)
        logps[name] = tuple(answer_logps(policy, tokenizer, rows, f"{adapters[name]}: {side}")
                            for rows, side in zip(encoded, ("chosen", "rejected")))

    rows, figures = [], {}

    def row(label, c, r):
        figures[label] = {kind: agreement(c, r, picks) for kind, picks in kinds.items()}
        rows.append((label, *(f"{share:.1%}" for share in figures[label].values())))

    start_c, start_r = logps["start"]
    row("the start's log-likelihood (untrained)", start_c, start_r)
    for i, run in enumerate(args.runs):
        c, r = logps[f"run{i}"]
        row(f"{run}: DPO's implicit reward", [beta * (a - b) for a, b in zip(c, start_c)],
            [beta * (a - b) for a, b in zip(r, start_r)])
        row(f"{run}: its log-likelihood", c, r)
    print(f"\n{len(pairs)} held-out pairs ({', '.join(f'{k}: {len(v)}' for k, v in kinds.items() if k != 'all')})\n")
    print(harness.table(rows, ["judge", *kinds]))
    harness.record("implicit_reward", {"pairs": args.pairs, "start": args.start, "runs": args.runs,
                                       "kinds": {k: len(v) for k, v in kinds.items()}, "agreement": figures},
                   args.record)

if __name__ == "__main__":
    main()
