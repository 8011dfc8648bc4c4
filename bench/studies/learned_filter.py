"""The sums loop's learned reward as a policy step, several ways, each beside the rule taken the same way.

    python -m bench.studies.learned_filter --rm runs/rmfix/T2_S0_e3 --threads 2     # ~50 min on 2 cores
    options: [--start runs/rft/sft15] [--work runs/learned_filter] [--dpo runs/sumsdpo/dpo_s0] [--seeds 0 1 2]
             [--variants sft_rm sft_both_above ...] [--draw-from runs/learned_filter/draw.json] [--same-steps]
             [--record FILE]

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
"above": only the prompts whose kept answer scores above the average drawn answer; "sure" and "surest", half and one
standard deviation above it; "half": the half of the prompts whose kept answer scores highest (`sample --top 0.5`,
the loop's --with-dpo filter). With --dpo (a DPO run on
the same votes, continuing the start), its likelihood (`implicit_reward`, `reference: none`) scores every
answer too, and "both" is the reward model and that likelihood in standard units, summed (`tinyalign.sample
--standardize`).
Each stage is cached in --work (`tinyalign.sample`'s own picks under each reward beside the rest:
rule_top.jsonl, rm_top.jsonl); prints Markdown tables, writes WORK/results.json and the run's record
(bench/harness.py). Each policy step trains through bench.harness.train_process, one at a time.
"""

import argparse
import json
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path
from statistics import mean, pstdev

from bench import harness

K, PROMPTS = 8, 600


def draw(start: str, rm: str, out: Path) -> dict:
    """The start's 8 answers to each training prompt, with every answer's rule and reward-model score; cached."""
    if out.is_file():
        cached = json.loads(out.read_text())
        if (cached["start"], cached["rm"]) != (start, rm):
            sys.exit(f"{out} holds the answers of {cached['start']} scored by {cached['rm']}; use another --work")
        return cached
    from tinyalign import sample
    from tinyalign.config import recipe as recipes
    from tinyalign.data import loading as data

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


def with_dpo(drawn: dict, dpo: str, out: Path) -> dict:
    """The draw also scored by the DPO run's likelihood, in standard units (`sample --standardize`):
    scores["dpo"], and scores["both"], the reward model's scores in standard units added; cached."""
    if drawn.get("dpo") == dpo:
        return drawn
    if drawn.get("dpo"):
        sys.exit(f"{out} holds scores by {drawn['dpo']}; use another --work")
    from tinyalign import sample
    from tinyalign.config import recipe as recipes
    from tinyalign.models import loading as model

    recipe = recipes.load(recipes.builtin("smollm2_sums_grpo.yaml"), [
        f"model.adapter={drawn['start']}", "seed=0", f"rewards=[{{name: implicit_reward, model: {dpo}, reference: none}}]"])
    likelihood = sample.sample(recipe, out.with_name("dpo_top.jsonl"), K, None, PROMPTS, drawn["start"], hint=False,
                               drawn=(drawn["groups"], model.load_tokenizer(recipe.model)), standardize=True)["totals"]
    rm = sample.standard_units(drawn["scores"]["rm"])  # the draw already holds the RM's scores: not scored again
    drawn["scores"] |= {"dpo": likelihood, "both": [r + d for r, d in zip(rm, likelihood)]}
    drawn["dpo"] = dpo
    out.write_text(json.dumps(drawn) + "\n")
    return drawn


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
    table = [("the policy's most frequent answer (no reward)", frequent),
             ("the weighted vote (reward-model scores summed over an answer's copies)", weighted)]
    for reward, what in (("rm", "the reward model's top answer (the loop's filter)"),
                         ("dpo", "the DPO model's likeliest answer"),
                         ("both", "the top answer by reward model and DPO likelihood together")):
        if reward in drawn["scores"]:
            table.append((what, sum(c["right"][c["texts"][c["top"]]] for c in choices(drawn, reward))))
    return table + [("a right answer, where one was drawn (the rule)", sum(any(c["right"].values()) for c in rm))]


def write_sets(drawn: dict, work: Path) -> dict[str, tuple[str, Path]]:
    """The training sets: {variant: (method, file)}."""
    from tinyalign.core import files
    from tinyalign.sample import surest_share

    # what each reward trains: the rule's right answers (and DPO on them); from a learned reward every prompt's
    # top answer, those drawn twice, those above the average answer, and DPO; from both together the top answers,
    # those above the average, those half or one standard deviation above it ("sure", "surest"), and the surest half
    variants = {"rule": ("top", "dpo"), "rm": ("top", "agreed", "above", "dpo"),
                "both": ("top", "above", "sure", "surest", "half")}
    names = {"top": "sft_{}", "agreed": "sft_{}_agreed", "above": "sft_{}_above", "sure": "sft_{}_sure",
             "surest": "sft_{}_surest", "half": "sft_{}_half", "dpo": "dpo_{}"}
    sets = {}
    for reward in [r for r in variants if r in drawn["scores"]]:
        average, spread = mean(drawn["scores"][reward]), pstdev(drawn["scores"][reward])
        kept, top_scores = {variant: [] for variant in names}, []
        for row, chat, c in zip(drawn["rows"], drawn["chats"], choices(drawn, reward)):
            hi, lo = c["top"], c["bottom"]
            best, worst = c["texts"][hi], c["texts"][lo]
            if reward == "rule" and not c["scores"][hi]:
                continue  # the rule keeps right answers only; a learned score has no top, so it keeps every prompt
            keep = {"question": row["question"], "answer": row["answer"], "completion": best}
            kept["top"].append(keep)
            top_scores.append(c["scores"][hi])
            if c["copies"][best] >= 2:
                kept["agreed"].append(keep)
            for variant, bar in (("above", 0), ("sure", 0.5), ("surest", 1)):
                if c["scores"][hi] > average + bar * spread:
                    kept[variant].append(keep)
            if c["scores"][hi] > c["scores"][lo] and best != worst:
                kept["dpo"].append({"prompt": chat, "chosen": [{"role": "assistant", "content": best}],
                                    "rejected": [{"role": "assistant", "content": worst}]})
        kept["half"] = [kept["top"][i] for i in surest_share(top_scores, 0.5)]  # as `sample --top 0.5` keeps them
        for variant in variants[reward]:
            name, rows = names[variant].format(reward), kept[variant]
            method = "dpo" if variant == "dpo" else "sft"
            path = work / f"{name}.jsonl"
            files.write_jsonl(path, rows)
            sets[name] = (method, path)
    return sets


def train(method: str, start: str, data: Path, run: Path, threads: int, seed: int = 0, steps: int | None = None) -> Path:
    """One epoch of SFT (the loop filter's settings), or `steps` steps of it, or DPO on `data`, from the start;
    cached."""
    from tinyalign import loop
    from tinyalign.config.recipe import builtin

    if (run / "adapter_model.safetensors").is_file():
        return run
    if method == "sft":  # the loop filter's SFT settings
        settings = loop.filter_sft_settings(loop.TASKS["smollm2-sums"], data)
        recipe, overrides = builtin("smollm2_sums_sft.yaml"), harness.as_overrides(settings)
        if steps:  # after the epoch's settings: max_steps wins over num_train_epochs, cycling the picks
            overrides.append(f"train.max_steps={steps}")
    else:  # the sums answers are short: 128 tokens hold prompt and answer; 16 new ones, as the task's
        recipe, overrides = builtin("smollm2_word_dpo.yaml"), [
            f"data.source={data}", "train.max_steps=null", "train.num_train_epochs=1", "train.max_length=128",
            "generation.max_new_tokens=16"]
    harness.train_process(method, recipe, [*overrides, f"model.adapter={start}", f"seed={seed}", f"output_dir={run}",
                                           "overwrite=true"],
                          threads, run.parent / f"log_{run.name}.txt", f"{method} on {data.name}")
    return run


def rows_in(path: Path) -> int:
    with open(path) as f:
        return sum(1 for _ in f)


def run_name(variant: str, seed: int, steps: int | None = None) -> str:
    name = variant if not steps else f"{variant}_{steps}steps"
    return name if seed == 0 else f"{name}_s{seed}"


def rule_of(variant: str) -> str:
    """The rule's run taking the same policy step, which a learned reward's gain is a share of."""
    return "dpo_rule" if variant.startswith("dpo_") else "sft_rule"


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.studies.learned_filter", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rm", required=True, help="the reward model, e.g. runs/rmfix/T2_S0_e3")
    parser.add_argument("--start", default="runs/rft/sft15", help="the SFT start (smollm2_sums_sft.yaml's run)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work", type=Path, default=Path("runs/learned_filter"))
    parser.add_argument("--dpo", help="a DPO run on the same votes, from the start: its likelihood as a second reward")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="training seeds of each policy step (its "
                        "data order: one epoch on near-identical sets moved the gain by 7 points)")
    parser.add_argument("--variants", nargs="+", help="train only these (e.g. sft_rule sft_both_above); default: all")
    parser.add_argument("--same-steps", action="store_true", help="train each learned reward's SFT set for as many "
                        "steps as the rule's epoch takes (the same budget counted in updates, not in epochs)")
    parser.add_argument("--draw-from", type=Path, help="start --work from another's draw (same start and RM; its "
                                                         "rule and RM scores), e.g. to score it with another --dpo")
    harness.add_record_arg(parser)
    args = parser.parse_args()
    for folder in (args.rm, args.start, args.dpo or args.start):
        if not Path(folder).is_dir():
            sys.exit(f"{folder} not found (bench/RESULTS.md, \"The SmolLM2 sums RM over seeds\" and "
                     f"\"On an AMD EPYC\", makes them)")
    harness.threads(args.threads)
    from tinyalign.config.recipe import builtin, load
    from tinyalign.measure.solve_rate import held_out_verdicts, paired_interval95

    args.work.mkdir(parents=True, exist_ok=True)
    if args.draw_from and not (args.work / "draw.json").is_file():
        other = json.loads(args.draw_from.read_text())
        other["scores"] = {reward: other["scores"][reward] for reward in ("rule", "rm")}
        (args.work / "draw.json").write_text(json.dumps({k: v for k, v in other.items() if k != "dpo"}) + "\n")
    drawn = draw(args.start, args.rm, args.work / "draw.json")
    if args.dpo:
        drawn = with_dpo(drawn, args.dpo, args.work / "draw.json")
    picks = pick_table(drawn)
    sets = write_sets(drawn, args.work)
    wanted = set(args.variants or sets) | {rule_of(name) for name in args.variants or sets}  # each beside its rule
    batch = load(builtin("smollm2_sums_sft.yaml")).train["per_device_train_batch_size"]
    rule_steps = math.ceil(rows_in(sets["sft_rule"][1]) / batch)
    steps = {name: rule_steps if args.same_steps and method == "sft" and name != "sft_rule" else None
             for name, (method, _) in sets.items()}
    runs = {(name, seed): train(method, args.start, path, args.work / run_name(name, seed, steps[name]), args.threads,
                                seed, steps[name])
            for name, (method, path) in sets.items() if name in wanted for seed in args.seeds}
    cache = args.work / "verdicts.json"
    right = json.loads(cache.read_text()) if cache.is_file() else {}
    missing = {run.name: str(run) for run in runs.values() if run.name not in right}
    if missing or "start" not in right:
        right.update(held_out_verdicts(str(builtin("smollm2_sums_grpo.yaml")), {"start": args.start, **missing},
                                       limit=500, base=False))
        cache.write_text(json.dumps(right) + "\n")

    print(f"\n{PROMPTS} training sums, {K} answers each; the kept answer is right for:\n")
    print(harness.table([(what, f"{n} ({n / PROMPTS:.1%})") for what, n in picks], ["kept", "prompts right"]))
    print(f"\n500 held-out sums, greedy; start {mean(right['start']):.1%}\n")
    gains = {key: paired_interval95(right["start"], right[run.name]) for key, run in runs.items()}
    means = {name: mean(gains[name, seed][0] for seed in args.seeds) for name in {name for name, _ in runs}}
    rows = []
    for (name, seed), (gain, low, high) in gains.items():
        rows.append((run_name(name, 0, steps[name]), rows_in(args.work / f"{name}.jsonl"), seed,
                     f"{mean(right[runs[name, seed].name]):.1%}",
                     f"{100 * gain:+.1f} ({100 * low:+.1f} to {100 * high:+.1f})", f"{gain / means[rule_of(name)]:.2f}"))
    print(harness.table(rows, ["policy step", "trained on", "seed", "held out", "gain (95 % interval)",
                               "ratio to the rule's mean gain"], align="lrrrlr"))
    if len(args.seeds) > 1:
        print("\nmean gain over the seeds: " + ", ".join(f"{name} {100 * g:+.1f}" for name, g in means.items()))
    figures = {"threads": args.threads, "rm": args.rm, "dpo": args.dpo, "picks": picks,
               "gains": {runs[key].name: gain for key, gain in gains.items()}, "start": mean(right["start"])}
    out = args.work / "results.json"
    out.write_text(json.dumps(figures, indent=1) + "\n")
    print(f"\nwrote {out}")
    harness.record("learned_filter", {**figures, "seeds": args.seeds, "same_steps": args.same_steps}, args.record)

if __name__ == "__main__":
    main()
