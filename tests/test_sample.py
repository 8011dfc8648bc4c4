"""sample: rejection sampling writes an SFT dataset of the model's own correct answers, and SFT on it helps."""

import json
import statistics

import pytest
import yaml

from tinyalign import evaluate, sample, sft
from tinyalign.config import recipe as recipes
from tinyalign.data.tasks import task_path
from tinyalign.training import run


def test_cold_start_loop_sample_then_sft_raises_held_out_accuracy(tiny_sft_run, tmp_path, capsys):
    # A partly trained checkpoint: right often enough to find correct answers among 8 samples, far from done.
    start = run.checkpoints(tiny_sft_run)[-2]
    data_dir = tmp_path / "resampled"

    # ── sample 8 answers per training prompt, keep the best one when it is right
    sample.main([str(recipes.builtin("tiny_sft.yaml")), "--adapter", str(start), "--k", "8",
                 "--min-reward", "1.0", "--prompts", "200", "--out", str(data_dir / "train.jsonl")])
    report = capsys.readouterr().out
    kept = [json.loads(line) for line in (data_dir / "train.jsonl").read_text().splitlines()]
    assert f"kept {len(kept)}/200 prompts" in report
    assert 20 < len(kept) < 200  # some prompts solved in 8 tries, not all
    assert all(row["completion"] == row["answer"] for row in kept)  # only right answers, as the model wrote them
    assert len({row["question"] for row in kept}) == len(kept)  # one per prompt
    assert set(kept[0]) == {"question", "answer", "completion", "reward"}

    # ── SFT the checkpoint on its own best answers; the held-out split comes along, in SFT's columns
    with open(data_dir / "test.jsonl", "w") as f:
        for line in (task_path("tiny:addition") / "test.jsonl").read_text().splitlines():
            row = json.loads(line)
            f.write(json.dumps({**row, "completion": row["answer"]}) + "\n")
    recipe = yaml.safe_load(recipes.builtin("tiny_sft.yaml").read_text())
    recipe["model"]["adapter"] = str(start)
    recipe["data"].update(source=str(data_dir), completion="{completion}")
    recipe["train"].update(max_steps=30, warmup_steps=5, save_steps=1000, learning_rate=1e-3)
    recipe["output_dir"] = str(tmp_path / "resft")
    (tmp_path / "resft.yaml").write_text(yaml.safe_dump(recipe))
    sft.main([str(tmp_path / "resft.yaml")])

    # ── held-out accuracy: the starting checkpoint ("start") vs after SFT on its own answers
    table = {row["model"]: row for row in evaluate.evaluate_run(tmp_path / "resft", "start,final", prompts=200)}
    print(f"held-out accuracy: {start.name} {table['start']['accuracy']:.1%} -> "
          f"sampled+SFT {table['final']['accuracy']:.1%}")
    assert table["final"]["accuracy"] > table["start"]["accuracy"] + 0.15


def test_a_grpo_recipe_keeps_only_answers_at_the_weighted_bar(tiny_sft_run, tmp_path, capsys):
    recipe = recipes.load(recipes.builtin("tiny_sft.yaml"))
    recipe.method, recipe.data.answer, recipe.data.completion = "grpo", "{answer}", None
    # exact match (1.0) + a format reward that every bare number meets (0.5): the bar 1.5 means both
    recipe.rewards = [{"name": "exact_match", "weight": 1.0},
                      {"name": "regex_match", "weight": 0.5, "pattern": r"\d+", "full_match": True}]
    report = sample.sample(recipe, tmp_path / "best.jsonl", k=4, prompts=40, adapter=str(tiny_sft_run))
    kept = [json.loads(line) for line in (tmp_path / "best.jsonl").read_text().splitlines()]
    assert report["kept"] == len(kept) > 0 and report["min_reward"] == 1.5
    assert all(row["reward"] == 1.5 and row["completion"] == row["answer"] for row in kept)
    assert "kept" in capsys.readouterr().out
    # every answer's total comes back beside its prompt's row: a caller can choose among them another way
    groups, _ = report["drawn"]
    assert len(report["rows"]) == len(groups) == 40 and len(report["totals"]) == 40 * 4
    best = {row["question"]: row["reward"] for row in kept}
    for row, totals in zip(report["rows"], (report["totals"][i:i + 4] for i in range(0, 160, 4))):
        assert max(totals) == best.get(row["question"], max(totals))


def test_standardized_rewards_keep_answers_better_than_the_average_drawn_one(tiny_sft_run, tmp_path, capsys):
    recipe = recipes.load(recipes.builtin("tiny_sft.yaml"))
    recipe.method, recipe.data.answer, recipe.data.completion = "grpo", "{answer}", None
    recipe.rewards = [{"name": "exact_match", "weight": 2.0}]
    raw = sample.sample(recipe, tmp_path / "raw.jsonl", k=4, prompts=40, adapter=str(tiny_sft_run))
    # in standard units a right answer is above the draw's average and a wrong one below: the default bar
    # (0) keeps the prompts the raw bar (2.0, the top) keeps, scored in units that another reward's scale
    # cannot swamp; the weighted total is in standard units too
    report = sample.sample(recipe, tmp_path / "std.jsonl", k=4, prompts=40, drawn=raw["drawn"], standardize=True)
    assert report["min_reward"] == 0.0 and "scored >= 0 standard units" in capsys.readouterr().out
    assert abs(sum(report["totals"])) < 1e-9 and 0 < report["kept"] == raw["kept"] < 40
    assert statistics.pstdev(report["totals"]) == pytest.approx(1.0)  # so --min-reward 1: a deviation above it
    assert (tmp_path / "std.jsonl").read_text().count('"completion"') == raw["kept"]
    # --top: of those, the surest share, in the drawn order
    every = sample.sample(recipe, tmp_path / "all.jsonl", k=4, prompts=40, drawn=raw["drawn"], standardize=True,
                          min_reward=float("-inf"))
    half = sample.sample(recipe, tmp_path / "half.jsonl", k=4, prompts=40, drawn=raw["drawn"], standardize=True,
                         min_reward=float("-inf"), top=0.5)
    rows = [json.loads(line) for line in open(tmp_path / "all.jsonl")]
    surest = [json.loads(line) for line in open(tmp_path / "half.jsonl")]
    assert half["kept"] == (every["kept"] + 1) // 2 and surest == [row for row in rows if row in surest]
    assert min(row["reward"] for row in surest) >= max(row["reward"] for row in rows if row not in surest)
    assert "the surest 50% of them: " in capsys.readouterr().out
    assert sample.standard_units([None, 1.0, 2.0, 3.0]) == [None, -1.224744871391589, 0.0, 1.224744871391589]
    assert sample.standard_units([5.0, 5.0]) == [0.0, 0.0]  # a reward that tells no answer apart adds nothing


def test_the_written_file_is_an_sft_dataset_the_recipe_loads(tmp_path):
    from tinyalign.data import loading as data

    path = tmp_path / "best.jsonl"
    path.write_text(json.dumps({"question": "1+2", "answer": "3", "completion": "3", "reward": 1.0}) + "\n")
    spec = recipes.Data(source=str(path), prompt="{question}", completion="{completion}")
    train, _ = data.load(spec, "sft")
    assert train[0]["completion"] == [{"role": "assistant", "content": "3"}]


@pytest.mark.parametrize("make, message", [
    (lambda t: [str(t)], "is not a run directory"),
    (lambda t: [str(recipes.builtin("tiny_sft.yaml")), "data.prompt=null"], "builds prompts from data.prompt"),
    (lambda t: [str(recipes.builtin("tiny_sft.yaml")), "--top", "1.5"], "--top is a share of the prompts"),
])
def test_mistakes_end_in_one_line(tmp_path, capsys, make, message):
    out = tmp_path / "out.jsonl"
    with pytest.raises(SystemExit) as exit_:
        sample.main([*make(tmp_path), "--out", str(out)])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not out.exists()
