"""data.mix and data.curriculum: the training set has the proportions and the order the recipe asked for."""

import json
import random

import pytest

from tinyalign.config import recipe as recipes
from tinyalign.core.errors import UserError
from tinyalign.data import loading as data


def user_text(row) -> str:
    return row["prompt"][-1]["content"]


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_mixed_sources_take_their_fraction_of_the_final_set():
    spec = recipes.Data(source="tiny:addition", prompt="{question}", completion="{answer}", limit=70,
                        mix=[{"source": "tiny:subtraction", "fraction": 0.2},
                             {"source": "tiny:subtraction", "fraction": 0.1, "prompt": "minus: {question}"}])
    train, _ = data.load(spec, "sft")
    texts = [user_text(r) for r in train]
    assert len(texts) == 100
    assert sum("+" in t for t in texts) == 70
    assert sum("-" in t and not t.startswith("minus") for t in texts) == 20
    assert sum(t.startswith("minus: ") for t in texts) == 10  # its own template
    assert "+" in "".join(texts[-30:]) and "-" in "".join(texts[:30])  # shuffled together, not appended


def test_grpo_anchor_prompts_without_an_answer_reach_the_rewards_as_none():
    spec = recipes.Data(source="tiny:addition", prompt="{question}", answer="{answer}", limit=45,
                        mix=[{"source": "tiny:subtraction", "fraction": 0.1, "answer": None}])
    train, _ = data.load(spec, "grpo")
    anchors = [r for r in train if "-" in user_text(r)]
    assert len(train) == 50 and len(anchors) == 5
    assert all(r["answer"] is None for r in anchors)
    assert all(r["answer"] == str(eval(user_text(r))) for r in train if r not in anchors)


def test_a_small_mix_source_is_repeated_to_reach_its_share(tmp_path, capsys):
    general = write_jsonl(tmp_path / "general.jsonl", [{"question": "hi", "answer": "hello"}])
    spec = recipes.Data(source="tiny:addition", prompt="{question}", completion="{answer}", limit=8,
                        mix=[{"source": general, "fraction": 0.2}])
    train, _ = data.load(spec, "sft")
    assert [user_text(r) for r in train].count("hi") == 2
    assert "repeating" in capsys.readouterr().out


@pytest.fixture
def graded(tmp_path):
    """Twenty questions with a difficulty column (higher = harder), in shuffled order."""
    rows = [{"question": f"q{d}", "answer": str(d), "difficulty": d} for d in range(20)]
    random.Random(0).shuffle(rows)
    return write_jsonl(tmp_path / "graded.jsonl", rows)


def test_easy_to_hard_orders_by_the_difficulty_column(graded):
    spec = recipes.Data(source=graded, prompt="{question}", completion="{answer}", curriculum="easy_to_hard")
    train, _ = data.load(spec, "sft")
    assert [user_text(r) for r in train] == [f"q{d}" for d in range(20)]
    assert data.trainer_order(spec, "sft") == {"train_sampling_strategy": "sequential"}
    assert data.trainer_order(spec, "grpo") == {"shuffle_dataset": False}
    assert data.trainer_order(recipes.Data(source=graded), "sft") == {}  # no curriculum: trainers shuffle


def test_a_curriculum_spreads_mixed_in_rows_evenly(graded, tmp_path):
    general = write_jsonl(tmp_path / "general.jsonl", [{"question": f"g{i}", "answer": "x"} for i in range(10)])
    spec = recipes.Data(source=graded, prompt="{question}", completion="{answer}", curriculum="easy_to_hard",
                        mix=[{"source": general, "fraction": 0.2}])
    texts = [user_text(r) for r in data.load(spec, "sft")[0]]
    assert len(texts) == 25
    assert [t for t in texts if t.startswith("q")] == [f"q{d}" for d in range(20)]  # the order survives
    positions = [i for i, t in enumerate(texts) if t.startswith("g")]
    assert len(positions) == 5 and all(4 <= b - a <= 6 for a, b in zip(positions, positions[1:]))


def test_easy_to_hard_by_a_probes_pass_rates(graded, tmp_path, capsys):
    probe = tmp_path / "probe.json"
    rates = {"q3": 1.0, "q7": 0.75, "q1": 0.5, "q0": 0.0}
    probe.write_text(json.dumps({"verdict": "viable", "per_prompt": [{"prompt": p, "pass_rate": r}
                                                                     for p, r in rates.items()]}))
    spec = recipes.Data(source=graded, prompt="{question}", completion="{answer}", curriculum="easy_to_hard",
                        curriculum_probe=str(probe))
    texts = [user_text(r) for r in data.load(spec, "sft")[0]]
    assert texts[:4] == ["q3", "q7", "q1", "q0"]  # most often solved first
    assert sorted(texts[4:]) == sorted(f"q{d}" for d in range(20) if f"q{d}" not in rates)
    assert "16 of 20 prompts were not probed; they go last" in capsys.readouterr().out


def test_a_recipe_file_with_mix_and_curriculum_loads(tmp_path, graded):
    path = tmp_path / "r.yaml"
    path.write_text(f"""method: sft
model: {{name: tiny:qwen2-1m}}
data:
  source: {graded}
  prompt: "{{question}}"
  completion: "{{answer}}"
  curriculum: easy_to_hard
  mix: [{{source: tiny:subtraction, fraction: 0.2}}]
output_dir: {tmp_path / 'out'}
""")
    recipe = recipes.load(path)
    train, _ = data.load(recipe.data, "sft")
    assert len(train) == 25 and user_text(train[0]) == "q0"


@pytest.mark.parametrize("changes, message", [
    ({"mix": [{"source": "tiny:subtraction", "fraction": 0.6}, {"source": "tiny:subtraction", "fraction": 0.5}]},
     "data.mix fractions add up to 1.1"),
    ({"mix": [{"source": "tiny:subtraction", "fraction": 10}]}, "`data.mix[0].fraction` should be a number between 0 and 1"),
    ({"mix": [{"source": "tiny:subtraction", "fracton": 0.1}]}, "unknown key `data.mix[0].fracton`: did you mean `fraction`?"),
    ({"mix": [{"fraction": 0.1}]}, "`data.mix[0]` should be a mapping like {source:"),
    ({"mix": [{"source": "tiny:subtraction", "fraction": 0.1, "prompt": "{query}"}]}, "data.mix[0]: data.prompt names column 'query'"),
    ({"curriculum": "easy_to_hard"}, "data.curriculum_column: tiny:addition has no column 'difficulty'"),
    ({"curriculum": "easy_to_hard", "curriculum_column": "answer"}, "'answer' must hold numbers"),
    ({"curriculum": "easy_to_hard", "curriculum_probe": "/nope/probe.json"}, "cannot read /nope/probe.json"),
])
def test_mistakes_name_the_key(changes, message):
    spec = recipes.Data(source="tiny:addition", prompt="{question}", completion="{answer}", limit=20, **changes)
    with pytest.raises(UserError) as error:
        data.load(spec, "sft")
    assert message in str(error.value)
