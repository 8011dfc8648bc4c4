"""evaluate: a row per checkpoint scored by the task metric, the best one named, files a user can open."""

import contextlib
import csv
import io
import shutil

import pytest
import yaml

from tinyalign import evaluate
from tinyalign.models import loading as model
from tinyalign.training import run


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def evaluated(tiny_sft_run, tmp_path_factory):
    """The tiny SFT run evaluated once (60 held-out prompts, pass@4), counting base-weight loads; what it
    printed is in out/console.txt."""
    out = tmp_path_factory.mktemp("eval")
    loads = []
    real = model.load_base
    patch = pytest.MonkeyPatch()
    patch.setattr(model, "load_base", lambda spec, *rest: loads.append(spec.name) or real(spec, *rest))
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            table = evaluate.evaluate_run(tiny_sft_run, k=4, prompts=60, out=out)
    finally:
        patch.undo()
    (out / "console.txt").write_text(printed.getvalue())
    return table, out, loads


def test_every_checkpoint_gets_a_row_and_training_beats_the_base(tiny_sft_run, evaluated):
    table, out, _ = evaluated
    rows = read_csv(out / "eval.csv")
    checkpoints = run.checkpoints(tiny_sft_run)
    assert len(checkpoints) >= 2
    assert [r["model"] for r in rows] == ["base", *(c.name for c in checkpoints), "final"]
    steps = [int(c.name.split("-")[1]) for c in checkpoints]
    assert [int(r["step"]) for r in rows] == [0, *steps, steps[-1]]
    accuracy = {r["model"]: float(r["accuracy"]) for r in rows}
    assert accuracy["base"] < 0.1  # the base answers "46 (12+34)", not "46"
    assert max(accuracy.values()) > accuracy["base"] + 0.4
    # the base's long answers vs the trained ones' bare numbers
    assert float(rows[0]["mean_length"]) > 2 * float(rows[-1]["mean_length"])
    assert all(0.0 <= float(r["pass@4"]) <= 1.0 for r in rows) and float(rows[-1]["pass@4"]) > 0.4
    # a right sampled answer makes its problem count for pass@4: the share of right samples is never above it
    assert all(float(r["sampled"]) <= float(r["pass@4"]) for r in rows) and float(rows[-1]["sampled"]) > 0.2
    assert table[-1]["accuracy"] == accuracy["final"]
    # each row carries its per-problem verdicts, in the same problems' order, for paired comparisons;
    # they stay out of the files a user opens
    assert all(len(row[evaluate.SOLVED]) == 60 and sum(row[evaluate.SOLVED]) / 60 == row["accuracy"] for row in table)
    assert all(row["sampled"] == pytest.approx(sum(row[evaluate.SAMPLES_RIGHT]) / 60) for row in table)
    assert not set(evaluate.PER_ITEM) & set(rows[0])
    # on the console too: a short line a model, its figures and not its 60 verdicts
    lines = [line for line in (out / "console.txt").read_text().splitlines() if line.startswith("base: accuracy")]
    assert len(lines) == 1 and "True" not in lines[0] and len(lines[0]) < 200, lines


def test_the_markdown_names_the_best_checkpoint_and_the_plot_is_a_png(evaluated):
    _, out, _ = evaluated
    text = (out / "eval.md").read_text()
    assert "| model | step | accuracy | pass@4 |" in text
    assert "best by accuracy: checkpoint-" in text
    assert "; over the base: +" in text and ": above it)" in text  # 0 % -> >40 % on the same 60 problems
    assert (out / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "eval.png").stat().st_size > 10_000  # a real figure, not an empty canvas


def test_a_plot_cut_short_leaves_the_last_one_whole(evaluated, tmp_path, monkeypatch):
    # the figure is drawn in memory and renamed into place, like eval.csv and eval.md: a crash (or a full
    # disk) while it renders leaves the previous eval.png as it was, not half a PNG
    table, out, _ = evaluated
    png = tmp_path / "eval.png"
    shutil.copy(out / "eval.png", png)
    before = png.read_bytes()
    from matplotlib.figure import Figure

    def cut_short(self, target, **kwargs):  # what a full disk does halfway through the file
        if isinstance(target, io.BytesIO):
            target.write(before[:8])
        else:
            with open(target, "wb") as f:
                f.write(before[:8])
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", cut_short)
    with pytest.raises(OSError):
        evaluate.plot(table, "accuracy", png, "run")
    assert png.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["eval.png"]


def test_the_base_weights_are_loaded_once_for_all_checkpoints(evaluated):
    *_, loads = evaluated
    assert loads == ["tiny:qwen2-1m"]


def test_best_line_says_how_much_an_earlier_checkpoint_beats_the_last():
    table = [{"model": "base", "step": 0, "accuracy": 0.1},
             {"model": "checkpoint-20", "step": 20, "accuracy": 0.9},
             {"model": "checkpoint-40", "step": 40, "accuracy": 0.85}]
    line = evaluate.best_line(table, "accuracy")
    assert "checkpoint-20" in line and "5.0 points above the last (checkpoint-40" in line
    table[2]["accuracy"] = 0.9  # a tie is no win for the earlier one
    assert "the last checkpoint is the best one" in evaluate.best_line(table, "accuracy")
    table[0]["accuracy"] = 0.95
    assert "no checkpoint beats the base" in evaluate.best_line(table, "accuracy")
    # a run that continued an adapter is judged against that start first, and the line says what to keep
    table.insert(1, {"model": "start", "step": 0, "accuracy": 0.92})
    table[0]["accuracy"] = 0.1
    line = evaluate.best_line(table, "accuracy", "runs/sft")
    assert "no checkpoint beats the start (92.0%): keep runs/sft" in line and "beats the base" not in line
    table[1]["accuracy"] = 0.8
    assert "no checkpoint beats" not in evaluate.best_line(table, "accuracy", "runs/sft")


def test_a_grpo_run_gets_each_reward_and_the_format_rate(tiny_sft_run, tmp_path):
    grpo = tmp_path / "grpo"
    checkpoint = run.checkpoints(tiny_sft_run)[-1]
    shutil.copytree(checkpoint, grpo / checkpoint.name)
    recipe = yaml.safe_load((tiny_sft_run / "recipe.yaml").read_text())
    recipe.update(method="grpo", output_dir=str(grpo), train={"max_completion_length": 16})
    recipe["data"].update(answer="{answer}", completion=None)
    recipe["rewards"] = [{"name": "exact_match", "weight": 1.0},
                         {"name": "regex_match", "weight": 0.5, "pattern": r"\d+", "full_match": True}]
    (grpo / "recipe.yaml").write_text(yaml.safe_dump(recipe))

    evaluate.main([str(grpo), "--prompts", "30"])
    rows = {r["model"]: r for r in read_csv(grpo / "eval.csv")}
    assert set(rows) == {"base", checkpoint.name}
    for column in ("reward", "reward/exact_match", "reward/regex_match", "format"):
        assert column in rows["base"]
    assert float(rows["base"]["format"]) == 0.0  # "46 (12+34)" is not a bare number
    assert float(rows[checkpoint.name]["format"]) > 0.5
    assert float(rows[checkpoint.name]["reward"]) > float(rows["base"]["reward"])


def test_a_list_of_checkpoints_scores_only_those_plus_the_base(tiny_sft_run, tmp_path):
    first = run.checkpoints(tiny_sft_run)[0].name
    evaluate.main([str(tiny_sft_run), "--checkpoints", f"{first.split('-')[1]},final", "--prompts", "10",
                   "--out", str(tmp_path)])
    assert [r["model"] for r in read_csv(tmp_path / "eval.csv")] == ["base", first, "final"]
    assert "pass@" not in (tmp_path / "eval.md").read_text()  # k = 1: no sampling


@pytest.mark.parametrize("args, message", [
    (["{empty}"], "is not a run directory (no recipe.yaml)"),
    (["{run}", "--checkpoints", "31"], "no '31' in"),
    (["{recipe}"], "does not exist yet; train first"),
    (["{run}", "--accuracy", "math_acuracy"], "--accuracy: unknown reward 'math_acuracy'"),
    (["{run}", "--accuracy", "think_format"], "--accuracy think_format is a format reward"),
])
def test_mistakes_end_in_one_line_naming_the_fix(tiny_sft_run, tmp_path, capsys, args, message):
    recipe = tmp_path / "r.yaml"
    recipe.write_text((tiny_sft_run / "recipe.yaml").read_text().replace(str(tiny_sft_run), str(tmp_path / "nope")))
    (tmp_path / "empty").mkdir()
    paths = {"empty": tmp_path / "empty", "run": tiny_sft_run, "recipe": recipe}
    with pytest.raises(SystemExit) as exit_:
        evaluate.main([a.format(**paths) for a in args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
    assert not list(tmp_path.glob("**/eval.*"))  # nothing half-written


def test_the_95_percent_interval_is_wilsons_and_narrows_with_more_items():
    from tinyalign.measure.solve_rate import interval95

    low, high = interval95(0.5, 200)
    assert abs(low - 0.4314) < 1e-3 and abs(high - 0.5686) < 1e-3  # the textbook Wilson interval
    assert interval95(0.0, 300)[0] < 1e-12 and 0 < interval95(0.0, 300)[1] < 0.013  # never below 0, never a point
    assert interval95(0.5, 800)[1] - interval95(0.5, 800)[0] < high - low


def test_two_models_on_the_same_problems_are_told_apart_item_by_item():
    from tinyalign.measure.solve_rate import interval95, paired_interval95

    # 300 problems: 150 right for both, 20 fixed, 8 broken: +4.0 points
    before = [True] * 150 + [False] * 20 + [True] * 8 + [False] * 122
    after = [True] * 150 + [True] * 20 + [False] * 8 + [False] * 122
    diff, low, high = paired_interval95(before, after)
    assert diff == pytest.approx(0.04) and 0.004 < low < 0.008 and 0.072 < high < 0.076
    # the two Wilson intervals side by side overlap: they could not tell these models apart
    assert interval95(sum(after) / 300, 300)[0] < interval95(sum(before) / 300, 300)[1]
    assert paired_interval95(before, before) == (0.0, 0.0, 0.0)
    line = evaluate.paired_gain({evaluate.SOLVED: before}, {evaluate.SOLVED: after})
    assert line.startswith("+4.0 points") and "above it" in line
    assert "below it" in evaluate.paired_gain({evaluate.SOLVED: after}, {evaluate.SOLVED: before})
    assert "not told apart" in evaluate.paired_gain({evaluate.SOLVED: before}, {evaluate.SOLVED: before[::-1]})
    with pytest.raises(ValueError):
        paired_interval95(before, after[:10])
    # shares of right samples per item pair the same way: a quarter more right samples on every item
    shares = [i % 4 / 4 for i in range(300)]
    diff, low, high = paired_interval95(shares, [s + 0.25 for s in shares])
    assert diff == pytest.approx(0.25) and low == pytest.approx(0.25) and high == pytest.approx(0.25)
    line = evaluate.paired_gain({evaluate.SAMPLES_RIGHT: shares}, {evaluate.SAMPLES_RIGHT: shares[::-1]},
                                evaluate.SAMPLES_RIGHT)
    assert line.startswith("+0.0 points") and "not told apart" in line
