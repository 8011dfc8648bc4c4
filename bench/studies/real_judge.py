"""A pairwise reasoning judge on a real model: SmolLM2-135M-Instruct distilled from a checker's judgements
of voted pairs (RM-R1's step (a)), and its agreement with held-out votes beside the untrained model's.

    python -m bench.studies.real_judge --seeds 0 --threads 2        # ~35 min on 2 cores once the votes exist
    python -m bench.studies.real_judge --seeds 0 --threads 2 --rl   # then step (b) on each distilled judge (~15 min)
    python -m bench.studies.real_judge --seeds 0 --threads 2 --solve-first   # judged solving each problem first
    options: [--votes runs/real_rm] [--work runs/real_judge] [--held-out 0.34] [--max-new-tokens 96]
             [--no-untrained] [--record FILE] [judge SFT overrides: train.max_steps=120 ...]

The votes are bench.studies.real_rm's (its stages 1-2, made here when missing, ~15 min): the demo's SFT adapter
(runs/demo-real/sft) answers 700 training word problems twice, an annotator rule votes through the vote
store. Then, each stage cached in --work:
1. pairs/: python -m tinyalign.judge split, whole prompts held out (--held-out of the pairs), each pair
   with the task's worked solution as its `reference` column.
2. traces.jsonl: python -m tinyalign.judge traces --from-reference: for every training pair in both orders,
   the judgement a checker who knows the solution writes (the solution, each answer's final number checked,
   the verdict), kept when it names the voted answer.
3. judge_T{threads}_S{seed}/: tinyalign.sft with recipes/smollm2_judge_sft.yaml, one epoch of the traces
   (bench.harness.train_process: its own process with OMP_NUM_THREADS set).
4. With --rl, judge_T{threads}_S{seed}_rl/: tinyalign.grpo with recipes/smollm2_judge_grpo.yaml from the
   distilled judge, on the training pairs in both orders with the voted side (tinyalign.judge verdicts),
   reward 1 when the verdict names it.
5. The held-out pairs judged in both orders, greedily, by the untrained model and by each judge: agreement
   with the vote, ties, position bias, unparsed rate (judgements with no VERDICT line, redone guided), and
   agreement split by kind (model vs model; the annotator's worked solution vs a wrong answer).
Prints a Markdown table, writes WORK/results.json and the run's record (bench/harness.py).
"""

import argparse
import json
import sys
import time
from pathlib import Path

from bench import harness
from bench.studies import real_rm

BASE = "pkg:smollm2-135m-instruct"
START = "runs/demo-real/sft"
BATCH = 8  # the judge recipe's per_device_train_batch_size: one epoch of the traces is len(traces) / BATCH steps


def votes(work: Path) -> Path:
    """bench.studies.real_rm's answers and votes (cached in `work`): the same pairs its reward models learn from."""
    cfg = real_rm.REAL
    policies = {"sft": START}
    if not (work / "votes.sqlite").is_file():
        if not Path(START).is_dir():
            sys.exit(f"{START} not found; make it first: make demo-real")
        work.mkdir(parents=True, exist_ok=True)
        real_rm.check_settings(work, {"model": cfg["model"], "data": cfg["data"], "max_new_tokens": cfg["max_new_tokens"],
                                      "prompts": cfg["prompts"], "sample_seed": 0, "policies": policies})
        answers = real_rm.answers_stage(cfg, work, policies, cfg["prompts"], 0)
        real_rm.votes_stage(cfg, work, answers, cfg["prompts"], 0)
    return work / "votes.sqlite"


def pairs(db: Path, work: Path, held_out: float) -> Path:
    """The split, each pair with its task's worked solution as `reference`; cached."""
    from tinyalign.core import files
    from tinyalign.measure.pair_files import split_pairs

    folder = work / "pairs"
    if (folder / "test.jsonl").is_file():
        return folder
    split_pairs(db, folder, held_out, seed=0)
    _, rows = real_rm.problems(real_rm.REAL, db.parent, real_rm.REAL["prompts"], 0)
    solution = {row["question"]: row["solution"] for row in rows}
    for name in ("train", "test"):
        path = folder / f"{name}.jsonl"
        held = [{**row, "reference": solution[row["prompt"][-1]["content"]]} for _, row in files.read_jsonl(path)]
        files.write_jsonl(path, held)
    return folder


def train(method: str, run: Path, data: Path, seed: int, threads: int, overrides: list[str]) -> dict:
    """One judge training run (`method`: sft or grpo) in its own process; its run folder and time."""
    from tinyalign.config.recipe import builtin

    if (run / "adapter_model.safetensors").is_file():
        return {"run": run, "train_s": json.loads((run / "bench_train.json").read_text())["train_s"]}
    log = run.parent / f"log_{run.name}.txt"  # the training console, kept off the table
    harness.train_process(method, builtin(f"smollm2_judge_{method}.yaml"), [f"seed={seed}", f"data.source={data}",
                          f"output_dir={run}", "overwrite=true", *overrides], threads, log, f"judge {method} seed {seed}")
    history = json.loads((run / "trainer_state.json").read_text())["log_history"]
    train_s = history[-1].get("train_runtime")
    (run / "bench_train.json").write_text(json.dumps({"train_s": train_s}) + "\n")
    return {"run": run, "train_s": train_s}


def judged(judge: str, test: Path, answered: set, max_new_tokens: int, out: Path, solve_first: bool = False) -> dict:
    """The judge's figures on the held-out pairs (cached in `out`, or beside it with `solve_first`), with
    agreement by kind of pair."""
    if solve_first:
        out = out.with_name(out.stem + "_solve_first.json")
    if out.is_file():
        return json.loads(out.read_text())
    from tinyalign.measure.pair_files import read_pairs
    from tinyalign.rewards.pairwise import PairJudge, agreement

    held = read_pairs(test)
    start = time.perf_counter()
    asked = PairJudge(judge, max_new_tokens, batch_size=32, solve_first=solve_first)
    outcomes = asked.compare(held, desc=f"judging ({Path(judge).name})")
    report = {"judge": judge, **agreement(outcomes), "judge_s": time.perf_counter() - start}
    for kind in ("model", "edit"):
        agreed = [o["winner"] == "x" for (task, chosen, _), o in zip(held, outcomes)
                  if ((task, chosen) in answered) == (kind == "model")]
        report[f"{kind}_pairs"], report[f"{kind}_agreement"] = len(agreed), sum(agreed) / max(1, len(agreed))
    report["example"] = outcomes[0]["judgements"][0]
    out.write_text(json.dumps(report, indent=1) + "\n")
    return report


def one_epoch(traces: Path) -> str:
    """The override that trains the judge recipe for one epoch of `traces`."""
    from tinyalign.core import files

    return f"train.max_steps={-(-sum(1 for _ in files.read_jsonl(traces)) // BATCH)}"


def write_results(work: Path, threads: int, overrides: list[str], reports: list[dict]) -> Path:
    """WORK/results.json: the runs' figures with the settings they were measured at."""
    out = work / "results.json"
    out.write_text(json.dumps({"threads": threads, "overrides": overrides, "runs": reports}, indent=1, default=str) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.studies.real_judge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads for training and judging")
    parser.add_argument("--votes", type=Path, default=Path("runs/real_rm"), help="bench.studies.real_rm's work folder")
    parser.add_argument("--work", type=Path, default=Path("runs/real_judge"))
    parser.add_argument("--held-out", type=float, default=0.34, help="share of the pairs held out, by whole prompt")
    parser.add_argument("--max-new-tokens", type=int, default=96, help="of each judgement")
    parser.add_argument("--no-untrained", action="store_true", help="skip judging with the untrained model")
    parser.add_argument("--rl", action="store_true", help="then GRPO on each distilled judge (step b)")
    parser.add_argument("--solve-first", action="store_true",
                        help="each judge solves the problem alone before it reads the answers, as GRPO's reward asks")
    harness.add_record_arg(parser)
    args, overrides = parser.parse_known_args()
    harness.threads(args.threads)
    from tinyalign import judge as judging
    from tinyalign.core import files
    from tinyalign.data.loading import text_of
    from tinyalign.data.messages import task_text

    folder = pairs(votes(args.votes), args.work, args.held_out)
    traces = args.work / "traces.jsonl"
    if not traces.is_file():
        train_pairs = judging.reference_rows(folder / "train.jsonl")
        rows = judging.reference_traces(train_pairs)
        files.write_jsonl(traces, rows)
        print(f"{len(rows)} judgements from the checker on {len(train_pairs)} training pairs (both orders)", flush=True)
    answered = {(task_text(row["conversation"]), text_of(a))
                for row in map(json.loads, (args.votes / "answers.jsonl").read_text().splitlines()) for a in row["answers"]}

    test = folder / "test.jsonl"
    reports = []
    if not args.no_untrained:
        reports.append({"name": "untrained", "train_s": None,
                        **judged(BASE, test, answered, args.max_new_tokens, args.work / "eval_untrained.json",
                                 args.solve_first)})
    verdicts = args.work / "verdicts.jsonl"
    if args.rl and not verdicts.is_file():
        files.write_jsonl(verdicts, judging.verdict_rows(judging.read_pairs(folder / "train.jsonl")))
    epoch = one_epoch(traces)  # an override of train.max_steps, given later, wins
    for seed in args.seeds:  # one training process at a time: the box has 2 cores
        run = args.work / f"judge_T{args.threads}_S{seed}"
        sft = train("sft", run, traces, seed, args.threads, [epoch, *overrides])
        report = judged(str(sft["run"]), test, answered, args.max_new_tokens, sft["run"] / "bench_eval.json",
                        args.solve_first)
        reports.append({"name": f"distilled, seed {seed}", "train_s": sft["train_s"], **report})
        if args.rl:
            rl = train("grpo", Path(f"{sft['run']}_rl"), verdicts, seed, args.threads, [f"model.adapter={sft['run']}"])
            report = judged(str(rl["run"]), test, answered, args.max_new_tokens, rl["run"] / "bench_eval.json",
                            args.solve_first)
            reports.append({"name": f"RL on it, seed {seed}", "train_s": rl["train_s"], **report})

    asked = "each problem solved alone first" if args.solve_first else "asked inline"
    print(f"\n{reports[0]['pairs']} held-out pairs, each judged in both orders, {asked}; SmolLM2-135M-Instruct, "
          f"{args.threads} threads\n")
    print(harness.table([(r["name"], f"{r['agreement']:.1%}", f"{r['model_agreement']:.1%} ({r['model_pairs']})",
                          f"{r['edit_agreement']:.1%} ({r['edit_pairs']})", f"{r['ties']:.1%}",
                          f"{r['position_bias']:.1%}", f"{r['unparsed']:.1%}",
                          "-" if r["train_s"] is None else f"{r['train_s']:.0f}", f"{r['judge_s']:.0f}")
                         for r in reports],
                        ["judge", "agreement", "model vs model (n)", "edit vs model (n)", "ties", "position bias",
                         "unparsed", "train (s)", "judging (s)"]))
    out = write_results(args.work, args.threads, overrides, reports)
    print(f"\nan example judgement ({reports[-1]['name']}):\n{reports[-1]['example']}\n\nwrote {out}")
    harness.record("real_judge", {"threads": args.threads, "solve_first": args.solve_first, "overrides": overrides,
                                  "runs": reports}, args.record)


if __name__ == "__main__":
    main()
