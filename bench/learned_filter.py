"""The sums loop's learned reward as a policy step, three ways, each beside the rule taken the same way.

    python bench/learned_filter.py --rm runs/rmfix/T2_S0_e3 --threads 2     # ~50 min on a 2-core AMD EPYC
    options: [--start runs/rft/sft15] [--work runs/learned_filter]

The SFT start draws 8 answers to 600 training sums once (the loop filter's draw: `tinyalign.sample` with the
sums GRPO recipe, seed 0), and the rule (`math_accuracy`) and the reward model score every answer. Then:
1. which answer to keep, without training: the policy's most frequent answer (self-consistency), the
   answer whose copies' reward-model scores sum highest (a weighted vote), and the reward's top answer
   (ties: the more frequent), counted right against the rule;
2. from each reward, one epoch of SFT on its top answers (the loop's `--policy-step filter`; the rule keeps
   right answers only), the same on the top answers drawn at least twice in eight (the learned reward's
   "agreed" picks), and one epoch of DPO (`recipes/smollm2_word_dpo.yaml`: sigmoid + an SFT term) on its top
   answer over its bottom one;
3. held-out greedy accuracy on 500 sums, each policy paired against the start (95 % interval).
Each stage is cached in --work (`tinyalign.sample`'s own picks under each reward beside the rest:
rule_top.jsonl, rm_top.jsonl); prints Markdown tables and writes WORK/results.json.
"""

import argparse
import json
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path
from statistics import mean

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "bench"))
from launch import run_logged  # noqa: E402

K, PROMPTS = 8, 600


def draw(start: str, rm: str, out: Path) -> dict:
    """The start's 8 answers to each training prompt, with every answer's rule and reward-model score; cached."""
    if out.is_file():
        cached = json.loads(out.read_text())
        if (cached["start"], cached["rm"]) != (start, rm):
            sys.exit(f"{out} holds the answers of {cached['start']} scored by {cached['rm']}; use another --work")
        return cached
    from tinyalign import data, recipe as recipes, sample

    def scored(rewards: list[str], name: str, keep: float | None, drawn=None) -> dict:  # one `sample` run
        recipe = recipes.load(recipes.builtin("smollm2_sums_grpo.yaml"), [f"model.adapter={start}", "seed=0", *rewards])
        return {**sample.sample(recipe, out.with_name(f"{name}.jsonl"), K, keep, PROMPTS, start, hint=False,
                                drawn=drawn), "recipe": recipe}

    by_rule = scored([], "rule_top", None)  # the recipe's own reward, math_accuracy: right answers only
    by_rm = scored(["rewards.0.name=reward_model", f"rewards.0.model={rm}"], "rm_top", float("-inf"), by_rule["drawn"])
    rows, (groups, _) = by_rule["rows"], by_rule["drawn"]
    chats = [data.prompt_messages(by_rule["recipe"].data, row) for row in rows]
    scores = {"rule": by_rule["totals"], "rm": by_rm["totals"]}
    result = {"start": start, "rm": rm, "rows": rows, "chats": chats, "groups": groups, "scores": scores}
    out.write_text(json.dumps(result) + "\n")
    return result


def choices(drawn: dict, reward: str) -> list[dict]:
    """Per prompt: its answers by text with their copies and scores, and the reward's top and bottom answer."""
    out = []
    for i, group in enumerate(drawn["groups"]):
        scores = drawn["scores"][reward][i * K:(i + 1) * K]
        right = drawn["scores"]["rule"][i * K:(i + 1) * K]
        texts = [a.strip() for a in group]  # " 117" and "117" are one answer
        copies, by_text = Counter(texts), defaultdict(list)
        for text, score in zip(texts, scores):
            by_text[text].append(score)
        top = max(range(K), key=lambda j: (scores[j], copies[texts[j]]))
        bottom = min(range(K), key=lambda j: (scores[j], -copies[texts[j]]))
        out.append({"texts": texts, "copies": copies, "by_text": by_text, "top": top, "bottom": bottom,
                    "scores": scores, "right": {t: r == 1 for t, r in zip(texts, right)}})
    return out


def pick_table(drawn: dict) -> list[tuple[str, int]]:
    """How many prompts each way of keeping one answer gets right."""
    rm = choices(drawn, "rm")
    frequent = sum(c["right"][max(c["by_text"], key=c["copies"].get)] for c in rm)  # a tie: the first drawn
    weighted = sum(c["right"][max(c["by_text"], key=lambda t: sum(1 / (1 + math.exp(-s)) for s in c["by_text"][t]))]
                   for c in rm)
    top = sum(c["right"][c["texts"][c["top"]]] for c in rm)
    return [("the policy's most frequent answer (no reward)", frequent),
            ("the weighted vote (reward-model scores summed over an answer's copies)", weighted),
            ("the reward model's top answer (the loop's filter)", top),
            ("a right answer, where one was drawn (the rule)", sum(any(c["right"].values()) for c in rm))]


def write_sets(drawn: dict, work: Path) -> dict[str, tuple[str, Path]]:
    """The training sets: {variant: (method, file)}."""
    from tinyalign import files

    sets = {}
    for reward in ("rule", "rm"):
        top, agreed, pairs = [], [], []
        for row, chat, c in zip(drawn["rows"], drawn["chats"], choices(drawn, reward)):
            hi, lo = c["top"], c["bottom"]
            best, worst = c["texts"][hi], c["texts"][lo]
            if reward == "rule" and not c["scores"][hi]:
                continue  # the rule keeps right answers only; a learned score has no top, so it keeps every prompt
            keep = {"question": row["question"], "answer": row["answer"], "completion": best}
            top.append(keep)
            if c["copies"][best] >= 2:
                agreed.append(keep)
            if c["scores"][hi] > c["scores"][lo] and best != worst:
                pairs.append({"prompt": chat, "chosen": [{"role": "assistant", "content": best}],
                              "rejected": [{"role": "assistant", "content": worst}]})
        for name, method, rows in ((f"sft_{reward}", "sft", top), (f"sft_{reward}_agreed", "sft", agreed),
                                   (f"dpo_{reward}", "dpo", pairs)):
            if reward == "rule" and name.endswith("agreed"):
                continue  # a right answer is right however often it was drawn
            path = work / f"{name}.jsonl"
            files.write_jsonl(path, rows)
            sets[name] = (method, path)
    return sets


def train(method: str, start: str, data: Path, run: Path, threads: int) -> Path:
    """One epoch of SFT (the loop filter's settings) or DPO on `data`, from the start, seed 0; cached."""
    from tinyalign.loop import TASKS, filter_sft_overrides
    from tinyalign.recipe import builtin

    if (run / "adapter_model.safetensors").is_file():
        return run
    if method == "sft":
        command = ["tinyalign.sft", str(builtin("smollm2_sums_sft.yaml")), *filter_sft_overrides(TASKS["smollm2-sums"], data)]
    else:  # the sums answers are short: 128 tokens hold prompt and answer; 16 new ones, as the task's
        command = ["tinyalign.dpo", str(builtin("smollm2_word_dpo.yaml")), f"data.source={data}", "train.max_steps=null",
                   "train.num_train_epochs=1", "train.max_length=128", "generation.max_new_tokens=16"]
    run_logged([sys.executable, "-m", *command, f"model.adapter={start}", "seed=0", f"output_dir={run}",
                "overwrite=true"],
               threads, run.parent / f"log_{run.name}.txt", f"{method} on {data.name}")
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rm", required=True, help="the reward model, e.g. runs/rmfix/T2_S0_e3")
    parser.add_argument("--start", default="runs/rft/sft15", help="the SFT start (smollm2_sums_sft.yaml's run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("runs/learned_filter"))
    args = parser.parse_args()
    for folder in (args.rm, args.start):
        if not Path(folder).is_dir():
            sys.exit(f"{folder} not found (bench/RESULTS.md, \"The SmolLM2 sums RM over seeds\", makes both)")
    import torch

    torch.set_num_threads(args.threads)
    from tinyalign.recipe import builtin
    from tinyalign.solve_rate import held_out_verdicts, paired_interval95

    args.work.mkdir(parents=True, exist_ok=True)
    drawn = draw(args.start, args.rm, args.work / "draw.json")
    picks = pick_table(drawn)
    runs = {name: train(method, args.start, path, args.work / name, args.threads)
            for name, (method, path) in write_sets(drawn, args.work).items()}
    cache = args.work / "verdicts.json"
    right = json.loads(cache.read_text()) if cache.is_file() else {}
    missing = {name: str(run) for name, run in runs.items() if name not in right}
    if missing or "start" not in right:
        right.update(held_out_verdicts(str(builtin("smollm2_sums_grpo.yaml")), {"start": args.start, **missing},
                                       limit=500, base=False))
        cache.write_text(json.dumps(right) + "\n")

    print(f"\n{PROMPTS} training sums, {K} answers each; the kept answer is right for:\n")
    print("| kept | prompts right |\n|---|---:|")
    for what, n in picks:
        print(f"| {what} | {n} ({n / PROMPTS:.1%}) |")
    print(f"\n500 held-out sums, greedy; start {mean(right['start']):.1%}\n")
    print("| policy step | trained on | held out | gain (95 % interval) | ratio to the rule |\n|---|---:|---:|---|---:|")
    gains = {name: paired_interval95(right["start"], right[name]) for name in runs}
    for name, (gain, low, high) in gains.items():
        rule = gains[name.replace("_rm", "_rule").replace("_agreed", "")][0]
        rows = sum(1 for _ in open(args.work / f"{name}.jsonl"))
        print(f"| {name} | {rows} | {mean(right[name]):.1%} | {100 * gain:+.1f} ({100 * low:+.1f} to {100 * high:+.1f}) "
              f"| {gain / rule:.2f} |")
    out = args.work / "results.json"
    out.write_text(json.dumps({"threads": args.threads, "rm": args.rm, "picks": picks,
                               "gains": gains, "start": mean(right["start"])}, indent=1) + "\n")
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
