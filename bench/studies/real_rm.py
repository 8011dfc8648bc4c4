"""A scalar reward model on a real model: SmolLM2-135M-Instruct trained by `tinyalign.rm` on simulated
votes over its own answers to word problems, and its held-out accuracy over seeds and torch thread counts.

    python -m bench.studies.real_rm --seeds 0 1 2 --threads 1 2      # the measurement (~3-4 h on a 2-core CPU)
    python -m bench.studies.real_rm --smoke                           # the harness on the tiny model (~1 min)
    options: [--policy NAME=ADAPTER_DIR ...] [--prompts 700] [--sample-seed 0] [--work runs/real_rm]
             [--out FILE.json] [--record FILE] [rm overrides: train.learning_rate=2e-4 ...]

Time, estimated from bench/RESULTS.md's SmolLM2 CPU figures until measured: answers ~15 min; each reward
model ~25-40 min at 1 thread (~50 steps of 32 sequences of ~100 tokens, then ~500 held-out scores);
2-thread runs beside another busy process take several times longer.

Stages, each cached in --work (a rerun skips the finished ones; other settings need another --work):
1. answers.jsonl: each policy (`--policy`, or the base alone) answers `--prompts` training problems of
   tiny:word-problems twice (system "Solve the word problem. Show the calculation, then the answer.", temperature
   1.0, at most 32 new tokens, tinyalign.models.generate). Whether an answer hit the cap is read from its
   tokens (no end of turn among them): re-tokenising the decoded text miscounts sampled tokens.
2. votes.sqlite: an annotator rule votes each policy's two answers to a prompt through the vote store
   (tinyalign.experiments.annotators.record_votes, as the loop's oracle does): 2 = the right final number
   (rewards.accuracy.model_answer + math_equal) in an answer that ended within the budget, 1 = right
   but cut off at the cap (known to the rule by the answer's text), 0 = wrong. Higher grade wins,
   equal grades tie, two wrong answers are "both bad" with the task's worked solution ("32 - 15 = 17.
   The answer is 17.") as the annotator's edit, the answer asked for (two pairs:
   the edit over each answer).
3. rm_T{threads}_S{seed}/: tinyalign.rm (bench.harness.train) with recipes/smollm2_rm.yaml on the vote store, whole
   prompts held out (its data.test_size 0.3, raised to 200 pairs when that is fewer), one subprocess per
   (threads, seed) with OMP_NUM_THREADS set, one at a time. The recipe starts each reward model from
   runs/demo-real/sft (its model.policy); with other --policy answers pass model.policy=THAT_RUN. The
   seed moves the held-out split, the head's initialisation and the batch order; the answers and votes
   are the same for every run.
Prints a Markdown table (a row per run, then min / median / max of accuracy) and writes --out (default
WORK/results.json) and the run's record (bench/harness.py) to --record; train (s) is TRL's train_runtime, process (s) the whole child. Besides all
held-out pairs, accuracy is split by kind: model vs model (one answer graded above the other) and edit
vs model (the annotator's worked solution over a wrong answer). `--smoke` swaps in
tiny:qwen2-1m, the tiny addition task (tiny_sft.yaml; a policy trained from it when none is given), 16
new tokens, 300 prompts and tiny_rm.yaml at 30 steps, in runs/real_rm_smoke.
"""

import argparse
import functools
import json
import sys
import time
from pathlib import Path
from statistics import median

from bench import harness

REAL = {
    "model": "pkg:smollm2-135m-instruct",
    "data": {"source": "tiny:word-problems", "prompt": "{question}", "answer": "{answer}",
             "system": "Solve the word problem. Show the calculation, then the answer."},
    "edit": "{solution}",  # the annotator's better answer when both are wrong: a worked solution, as asked
    "max_new_tokens": 32, "prompts": 700, "rm_recipe": "smollm2_rm.yaml", "rm_overrides": [], "min_held_out": 200,
    "work": "runs/real_rm", "seeds": [0, 1, 2], "threads": [1, 2],
}
SMOKE = {
    "model": "tiny:qwen2-1m",
    "data": {"source": "tiny:addition", "prompt": "{question}", "answer": "{answer}"},  # as tiny_sft.yaml
    "edit": "{answer}",  # the bare sum, as the tiny task asks
    "max_new_tokens": 16, "prompts": 300, "rm_recipe": "tiny_rm.yaml", "rm_overrides": ["train.max_steps=30"],
    "work": "runs/real_rm_smoke", "seeds": [0, 1], "threads": [1],
}


# ---------------------------------------------------------------- the annotator's rule


@functools.cache
def math_accuracy():
    from tinyalign import rewards

    return rewards.resolve({"name": "math_accuracy"})


def grade(answer: str, reference: str, cut: frozenset = frozenset()) -> int:
    """2: the right final number (the math_accuracy reward's judgement), and the answer ended within the
    budget; 1: right but cut off at the cap (`cut`: the texts of the answers that hit it); 0: wrong."""
    if math_accuracy()([answer], answer=[reference])[0] != 1.0:
        return 0
    return 1 if answer in cut else 2


# ---------------------------------------------------------------- stage 1: answers


def write_task(cfg: dict, work: Path) -> Path:
    """The task as a recipe (model, data, generation), so tinyalign's loaders read it as any run would."""
    import yaml

    path = work / "task.yaml"
    path.write_text(yaml.safe_dump({"method": "sft", "model": {"name": cfg["model"], "quantization": "none"},
                                    "data": cfg["data"], "generation": {"max_new_tokens": cfg["max_new_tokens"]},
                                    "output_dir": str(work / "unused")}))
    return path


def problems(cfg: dict, work: Path, prompts: int, seed: int):
    """(the task recipe, the training problems answered): the same rows for every stage."""
    from tinyalign.config import recipe as recipes
    from tinyalign.data import loading as data

    task = recipes.load(write_task(cfg, work))
    train, _ = data.splits(task.data, task.seed)
    return task, train.shuffle(seed=seed).select(range(min(prompts, len(train))))


def answers_stage(cfg: dict, work: Path, policies: dict, prompts: int, seed: int) -> list[dict]:
    """Two sampled answers per prompt per policy, with whether each hit the token cap; cached."""
    path = work / "answers.jsonl"
    if path.is_file():
        return [json.loads(line) for line in path.read_text().splitlines()]
    from transformers import set_seed

    from tinyalign.core import files
    from tinyalign.data import loading as data
    from tinyalign.models import loading as model
    from tinyalign.models.chat_template import stop_token_ids
    from tinyalign.models.generate import generate

    task, rows = problems(cfg, work, prompts, seed)
    questions = [data.prompt_messages(task.data, row) for row in rows]
    references = [data.fill(task.data.answer, row, "answer") for row in rows]
    policy, tokenizer = model.load_with_adapters(task.model, policies)
    stops, cut = set(stop_token_ids(policy, tokenizer)), []
    decode = tokenizer.batch_decode

    def noting_the_cap(ids, **kwargs):  # generate() decodes only the new tokens: no end of turn = cut off
        cut.extend(not stops.intersection(row.tolist()) for row in ids)
        return decode(ids, **kwargs)

    tokenizer.batch_decode = noting_the_cap
    out = []
    for name in policies or ["base"]:
        if policies:
            policy.set_adapter(name)
        set_seed(seed)
        cut.clear()
        start = time.perf_counter()
        answers = generate(policy, tokenizer, questions, k=2, temperature=1.0, max_new_tokens=cfg["max_new_tokens"],
                           desc=f"answers ({name})")
        print(f"{name}: {len(questions)} prompts x 2 answers in {time.perf_counter() - start:.0f} s", flush=True)
        flags = iter(cut)
        for i, (question, reference, pair) in enumerate(zip(questions, references, answers, strict=True)):
            out.append({"policy": name, "run_dir": policies.get(name), "index": i, "conversation": question,
                        "reference": reference, "answers": pair, "cut": [next(flags), next(flags)]})
    files.write_jsonl(path, out)  # last: a killed stage leaves no file, and reruns
    return out


# ---------------------------------------------------------------- stage 2: votes


def votes_stage(cfg: dict, work: Path, answers: list[dict], prompts: int, seed: int) -> dict:
    """The annotator rule's votes on each policy's two answers, in the vote store; cached."""
    db, summary = work / "votes.sqlite", work / "votes.json"
    if db.is_file() and summary.is_file():
        return json.loads(summary.read_text())
    from tinyalign.data import loading as data
    from tinyalign.experiments import annotators
    from tinyalign.votes import load_pairs

    _, rows = problems(cfg, work, prompts, seed)
    edits = [data.fill(cfg["edit"], row, "edit") for row in rows]
    db.unlink(missing_ok=True)  # a half-written store from a killed run
    cut = frozenset(a for row in answers for a, hit in zip(row["answers"], row["cut"]) if hit)
    pairs = [{"conversation": row["conversation"], "response_a": row["answers"][0], "response_b": row["answers"][1],
              "model_a": row["policy"], "model_b": row["policy"], "run_dir_a": row["run_dir"],
              "run_dir_b": row["run_dir"], "reference": row["reference"],
              "edit": edits[row["index"]]} for row in answers]
    settings = {"temperature": 1.0, "max_new_tokens": cfg["max_new_tokens"]}
    done = annotators.record_votes(db, pairs, settings, rule=functools.partial(grade, cut=cut))
    graded = [grade(a, row["reference"], cut) for row in answers for a in row["answers"]]
    done.update(pairs=len(load_pairs(db)), answers=len(graded), right=sum(g > 0 for g in graded) / len(graded),
                cut_off=sum(hit for row in answers for hit in row["cut"]) / len(graded))
    summary.write_text(json.dumps(done, indent=1) + "\n")
    return done


# ---------------------------------------------------------------- stage 3: a reward model per (threads, seed)


def rm_run(cfg: dict, work: Path, threads: int, seed: int, overrides: list[str]) -> dict:
    """tinyalign.rm on the vote store, in this process; its held-out figures, split by pair kind."""
    harness.threads(threads)
    from tinyalign.config.recipe import builtin
    from tinyalign.data.loading import text_of
    from tinyalign.measure import reward_model as rm_measure

    scored = []  # measure() scores every chosen answer, then every rejected one: kept to split by kind
    plain = rm_measure.rm_scores

    def recording(scorer, tokenizer, prompts, answers, **kwargs):
        scores = plain(scorer, tokenizer, prompts, answers, **kwargs)
        scored.append((prompts, answers, scores))
        return scores

    rm_measure.rm_scores = recording
    run = work / f"rm_T{threads}_S{seed}"
    start = time.perf_counter()
    harness.train("rm", builtin(cfg["rm_recipe"]), [f"data.source={work / 'votes.sqlite'}", f"seed={seed}",
                                                    f"output_dir={run}", "overwrite=true", *cfg["rm_overrides"],
                                                    *overrides])
    wall = time.perf_counter() - start
    metrics = json.loads((run / "rm_metrics.json").read_text())
    state = json.loads((run / "trainer_state.json").read_text())
    train_s = next((e["train_runtime"] for e in reversed(state["log_history"]) if "train_runtime" in e), None)
    # A pair's chosen side is one of the model's answers to that question (an a/b vote), or else the edit
    # (a both-bad vote); an answer the model wrote word for word like the edit counts as the model's.
    answered = {(row["conversation"][-1]["content"], a)
                for row in map(json.loads, (work / "answers.jsonl").read_text().splitlines()) for a in row["answers"]}
    (prompts, chosen, chosen_scores), (_, _, rejected_scores) = scored[-2:]
    kinds = {"edit": [], "model": []}
    for prompt, answer, c, r in zip(prompts, chosen, chosen_scores, rejected_scores, strict=True):
        kinds["model" if (prompt[-1]["content"], text_of(answer)) in answered else "edit"].append(c > r)
    row = {"threads": threads, "seed": seed, "held_out_pairs": metrics["pairs"], "accuracy": metrics["accuracy"],
           "mean_margin": metrics["mean_margin"], "length_bias": metrics["length_bias"],
           "train_pairs": json.loads((work / "votes.json").read_text())["pairs"] - metrics["pairs"],
           "train_s": train_s, "process_s": wall, "overrides": overrides}
    for kind, wins in kinds.items():
        row[f"{kind}_pairs"] = len(wins)
        row[f"{kind}_accuracy"] = sum(wins) / len(wins) if wins else None
    return row


# ---------------------------------------------------------------- the table


def fmt(value, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def print_table(rows: list[dict], stages: dict) -> None:
    votes = stages["votes"]
    print(f"\nvotes: {votes['votes']} ({', '.join(f'{k} {n}' for k, n in sorted(votes['by_vote'].items()))}) -> "
          f"{votes['pairs']} pairs; answers right {votes['right']:.0%}, cut off at the cap {votes['cut_off']:.0%}\n")
    print(harness.table([(r["threads"], r["seed"], r["train_pairs"], r["held_out_pairs"], f"{r['accuracy']:.1%}",
                          f"{fmt(r['model_accuracy'], '.1%')} ({r['model_pairs']})",
                          f"{fmt(r['edit_accuracy'], '.1%')} ({r['edit_pairs']})", f"{r['mean_margin']:.3f}",
                          fmt(r["length_bias"], "+.0%"), fmt(r["train_s"], ".0f"), f"{r['process_s']:.0f}")
                         for r in rows],
                        ["threads", "seed", "train pairs", "held-out pairs", "accuracy", "model vs model (n)",
                         "edit vs model (n)", "margin", "length bias", "train (s)", "process (s)"]))
    accuracy = sorted(r["accuracy"] for r in rows)
    print(f"\nheld-out accuracy over {len(rows)} runs: min {accuracy[0]:.1%}, median {median(accuracy):.1%}, "
          f"max {accuracy[-1]:.1%}")


def held_out_overrides(cfg: dict, pairs: int, overrides: list[str]) -> list[str]:
    """`overrides`, with data.test_size raised to a count of cfg["min_held_out"] pairs when the RM recipe's
    share would hold out fewer; refused when that would leave fewer pairs to train on than it holds out."""
    from tinyalign.config.recipe import builtin, load

    least = cfg.get("min_held_out")
    if not least or any(o.startswith("data.test_size=") for o in overrides):
        return overrides
    size = load(builtin(cfg["rm_recipe"])).data.test_size
    if (size if isinstance(size, int) else round(size * pairs)) >= least:
        return overrides
    if pairs < 2 * least:
        sys.exit(f"the votes made {pairs} pairs: too few to hold out {least} and train on as many; answer more "
                 f"--prompts (in another --work), or pass data.test_size=N")
    print(f"{cfg['rm_recipe']}'s data.test_size {size} holds out under {least} of {pairs} pairs: "
          f"data.test_size={least}", flush=True)
    return [*overrides, f"data.test_size={least}"]


def check_settings(work: Path, settings: dict) -> None:
    """A work folder holds the answers and votes of one setting: a rerun with others is refused."""
    path = work / "settings.json"
    if path.is_file():
        held = json.loads(path.read_text())
        if held != settings:
            changed = ", ".join(k for k in settings if held.get(k) != settings[k])
            sys.exit(f"--work {work} holds answers for other settings ({changed}); use another --work")
    else:
        path.write_text(json.dumps(settings, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.studies.real_rm", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="tiny:qwen2-1m and the tiny task: the harness in ~1 min")
    parser.add_argument("--policy", action="append", default=[], help="NAME=ADAPTER_DIR, repeatable; none: the base")
    parser.add_argument("--prompts", type=int, help="training problems answered (default 700; smoke 300)")
    parser.add_argument("--sample-seed", type=int, default=0, help="which problems, and the sampling seed")
    parser.add_argument("--seeds", type=int, nargs="+", help="reward-model seeds (default 0 1 2; smoke 0 1)")
    parser.add_argument("--threads", type=int, nargs="+", help="torch thread counts (default 1 2; smoke 1)")
    parser.add_argument("--work", type=Path, help="stage cache (default runs/real_rm; smoke runs/real_rm_smoke)")
    parser.add_argument("--out", type=Path, help="the figures as JSON (default WORK/results.json)")
    parser.add_argument("--one", nargs=2, type=int, help=argparse.SUPPRESS)  # (threads, seed): in the child
    harness.add_record_arg(parser)
    args, overrides = parser.parse_known_args()
    cfg = SMOKE if args.smoke else REAL
    work = args.work or Path(cfg["work"])
    work.mkdir(parents=True, exist_ok=True)
    if args.one:
        row = rm_run(cfg, work, *args.one, overrides)
        (work / f"rm_T{args.one[0]}_S{args.one[1]}" / "bench_row.json").write_text(json.dumps(row, indent=1) + "\n")
        return

    policies = dict(p.split("=", 1) for p in args.policy if "=" in p)
    if len(policies) != len(args.policy):
        sys.exit("--policy takes NAME=ADAPTER_DIR (e.g. --policy sft=runs/smollm2_sft)")
    if args.smoke and not policies:  # the tiny base gets every sum wrong: a briefly trained policy mixes grades
        policies = {"sft": str(tiny_policy(work))}
    prompts = args.prompts or cfg["prompts"]
    check_settings(work, {"model": cfg["model"], "data": cfg["data"], "max_new_tokens": cfg["max_new_tokens"],
                          "prompts": prompts, "sample_seed": args.sample_seed, "policies": policies})
    answers = answers_stage(cfg, work, policies, prompts, args.sample_seed)
    stages = {"answers": len(answers), "votes": votes_stage(cfg, work, answers, prompts, args.sample_seed)}
    overrides = held_out_overrides(cfg, stages["votes"]["pairs"], overrides)

    rows = []
    for threads in args.threads or cfg["threads"]:
        for seed in args.seeds or cfg["seeds"]:
            done = work / f"rm_T{threads}_S{seed}" / "bench_row.json"
            row = json.loads(done.read_text()) if done.is_file() else None
            if row is None or row["overrides"] != overrides:
                log = work / f"log_T{threads}_S{seed}.txt"  # the training console, kept off the table
                command = harness.module_command("bench.studies.real_rm", "--one", threads, seed, "--work", work,
                                                 *(["--smoke"] if args.smoke else []), *overrides)
                harness.run_logged(command, threads, log, f"threads {threads} seed {seed}")
                row = json.loads(done.read_text())
            rows.append(row)
            print(f"threads {threads} seed {seed}: {row['accuracy']:.1%} on {row['held_out_pairs']} held-out pairs "
                  f"(model vs model {fmt(row['model_accuracy'], '.1%')}), train {fmt(row['train_s'], '.0f')} s",
                  flush=True)
    print_table(rows, stages)
    accuracy = sorted(r["accuracy"] for r in rows)
    result = {"settings": json.loads((work / "settings.json").read_text()), "rm_recipe": cfg["rm_recipe"],
              "rm_overrides": cfg["rm_overrides"] + overrides, "stages": stages, "runs": rows,
              "accuracy": {"min": accuracy[0], "median": median(accuracy), "max": accuracy[-1]}}
    out = args.out or work / "results.json"
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}")
    harness.record("real_rm", result, args.record, smoke=args.smoke)


def tiny_policy(work: Path) -> Path:
    """Smoke only: tiny_sft.yaml's policy (~15 s), trained once into the work folder."""
    from tinyalign.config.recipe import builtin

    run = work / "tiny_sft"
    if not (run / "adapter_model.safetensors").is_file():
        harness.train("sft", builtin("tiny_sft.yaml"), [f"output_dir={run}", "overwrite=true"])
    return run


if __name__ == "__main__":
    main()
