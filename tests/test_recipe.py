"""Recipe parsing, overrides and every user error: one line, exit 2, naming the key / file / column."""

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tinyalign.config import recipe as recipes
from tinyalign.core.errors import UserError

ROOT = Path(__file__).resolve().parent.parent

GOOD = """\
method: sft
model: {name: tiny:qwen2-1m, lora: {r: 8}}
data: {source: DATA, prompt: "{question}", completion: "{answer}"}
train: {max_steps: 5, learning_rate: 1.0e-3}
output_dir: OUT
"""


@pytest.fixture
def data_file(tmp_path):
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps({"question": f"{i}+1", "answer": str(i + 1)}) + "\n" for i in range(20)))
    return path


@pytest.fixture
def recipe_file(tmp_path, data_file):
    def write(text=GOOD):
        path = tmp_path / "r.yaml"
        path.write_text(text.replace("DATA", str(data_file)).replace("OUT", str(tmp_path / "run")))
        return path
    return write


def validate_cli(*args) -> subprocess.CompletedProcess:
    """`python -m tinyalign.validate ARGS` as a user types it: what it prints, warnings included."""
    return subprocess.run([sys.executable, "-m", "tinyalign.validate", *map(str, args)],
                          capture_output=True, text=True, cwd=ROOT)


def validate(*args) -> subprocess.CompletedProcess:
    """The same command run in this process: no interpreter start and imports each time."""
    from tinyalign.validate import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(ROOT), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main([str(a) for a in args])
            code = 0
        except SystemExit as e:
            code = e.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def test_loads_sections_with_defaults(recipe_file):
    recipe = recipes.load(recipe_file())
    assert recipe.method == "sft"
    assert recipe.model.lora.r == 8 and recipe.model.lora.alpha == 32  # unset keys keep defaults
    assert recipe.model.quantization == "4bit"
    assert recipe.train == {"max_steps": 5, "learning_rate": 1e-3}


def test_overrides_are_yaml_typed_and_nested(recipe_file):
    recipe = recipes.load(recipe_file(), ["train.max_steps=10", "model.lora.dropout=0.1",
                                          "overwrite=true", "data.system=Be brief."])
    assert recipe.train["max_steps"] == 10
    assert recipe.model.lora.dropout == 0.1
    assert recipe.overwrite is True
    assert recipe.data.system == "Be brief."


@pytest.mark.parametrize("text, override, names", [
    (GOOD, "model.quantisation=4bit", ["model.quantisation", "did you mean `quantization`", "adapter"]),
    (GOOD, "train.learning_rat=1e-4", ["train.learning_rat", "did you mean `learning_rate`"]),
    (GOOD, "train.max_steps=ten", ["train.max_steps", "integer", "ten"]),
    (GOOD, "model.quantization=3bit", ["model.quantization", "4bit", "3bit"]),
    (GOOD, "model.lora.r=big", ["model.lora.r", "integer"]),
    (GOOD, "model.lora.target_modules=5", ["`model.lora.target_modules` should be a string or a list of strings"]),
    (GOOD, "datta.source=x", ["datta", "did you mean `data`"]),
    (GOOD, "data.curriculum_probe=probe.json", ["data.curriculum_probe", "data.curriculum: easy_to_hard"]),
    (GOOD, "train.max_prompt_length=64", ["train.max_prompt_length"]),  # not an SFTConfig field
    (GOOD, "rewards=[{name: exact_match}]", ["rewards", "GRPO"]),
])
def test_bad_keys_and_types_are_named(recipe_file, text, override, names):
    with pytest.raises(UserError) as err:
        recipes.load(recipe_file(text), [override])
    for name in names:
        assert name in str(err.value)


def test_an_unknown_train_key_names_the_meant_one_in_a_short_line(recipe_file):
    # train takes any of TRL's ~130-190 config fields: the line names the class and the likely keys
    # rather than listing them all; "lr" is what people bring from other trainers' configs
    with pytest.raises(UserError) as err:
        recipes.load(recipe_file(), ["train.lr=1e-4"])
    message = str(err.value)
    assert "`train.lr`: did you mean `learning_rate`?" in message and "trl.SFTConfig" in message
    assert len(message) < 250 and "per_device_eval_batch_size" not in message
    with pytest.raises(UserError, match="with a word of `batch`: .*per_device_train_batch_size"):
        recipes.load(recipe_file(), ["train.batch=8"])


def test_exponent_without_dot_is_a_number(recipe_file):
    # YAML 1.1 reads 5e-5 as a string; people type it that way
    recipe = recipes.load(recipe_file(), ["train.learning_rate=5e-5", "model.lora.dropout=1e-1"])
    assert recipe.train["learning_rate"] == 5e-5 and recipe.model.lora.dropout == 0.1


def test_yes_no_on_off_stay_strings(recipe_file):
    recipe = recipes.load(recipe_file(), ["train.save_strategy=no", "data.system=off", "overwrite=true"])
    assert recipe.train["save_strategy"] == "no" and recipe.data.system == "off" and recipe.overwrite is True


def test_missing_required_key(recipe_file):
    with pytest.raises(UserError, match="missing `model.name`"):
        recipes.load(recipe_file(GOOD.replace("name: tiny:qwen2-1m, ", "")))


def test_malformed_yaml_gives_line_and_column(recipe_file):
    with pytest.raises(UserError, match=r"r\.yaml:3:5: malformed YAML"):
        recipes.load(recipe_file("method: sft\nmodel: {name: x\ndata: [\n"))


def test_missing_recipe_file(tmp_path):
    with pytest.raises(UserError, match="recipe file not found: .*nope.yaml"):
        recipes.load(tmp_path / "nope.yaml")


def test_a_folder_given_as_the_recipe_is_named_as_a_folder(tmp_path, recipe_file):
    recipe_file().rename(tmp_path / "recipe.yaml")  # a run directory, as evaluate and sample take
    with pytest.raises(UserError) as err:
        recipes.load(tmp_path)
    assert str(err.value) == f"{tmp_path} is a folder, not a recipe file; its recipe is {tmp_path / 'recipe.yaml'}"


@pytest.mark.parametrize("override, says", [
    ("train=[1]", "`train` should be a mapping, got [1]"),
    ("rewards=[exact_match]", "`rewards[0]` should be a mapping, got 'exact_match'"),
    ("rewards.0.weight=heavy", "`rewards[0].weight` should be a number, got 'heavy'"),
    ("rewards.0.weight=true", "`rewards[0].weight` should be a number, got True"),
    ("train.num_generations=many", "`train.num_generations` should be an integer, got 'many'"),  # int | None in TRL
    ("train.max_completion_length=1.5", "`train.max_completion_length` should be an integer, got 1.5"),
])
def test_sections_reward_weights_and_optional_trl_numbers_are_type_checked(override, says):
    with pytest.raises(UserError) as err:
        recipes.load(recipes.builtin("tiny_grpo.yaml"), [override])
    assert str(err.value) == says


@pytest.mark.parametrize("recipe, loss, says", [
    ("tiny_dpo.yaml", "[sigmoid, sftt]", "unknown loss 'sftt'; did you mean `sft`? trl.DPOConfig takes aot,"),
    ("tiny_grpo.yaml", "dr-grpo", "unknown loss 'dr-grpo'; did you mean `dr_grpo`? trl.GRPOConfig takes bnpo, cispo,"),
    ("tiny_sft.yaml", "sigmoid", "unknown loss 'sigmoid'; trl.SFTConfig takes chunked_nll, dft, nll"),
])
def test_a_misspelt_loss_type_is_refused_before_training_reads_it(recipe, loss, says):
    # DPO and GRPO would find it only in their first step, after an overwritten run was cleared
    with pytest.raises(UserError) as err:
        recipes.load(recipes.builtin(recipe), [f"train.loss_type={loss}"])
    assert says in str(err.value) and "sequence" not in str(err.value)
    assert recipes.load(recipes.builtin(recipe), ["train.loss_type=null"]).train.get("loss_type") is None


def test_an_empty_train_section_is_an_empty_one_and_a_null_optional_stays_null(recipe_file):
    assert recipes.load(recipe_file(GOOD.replace("train: {max_steps: 5, learning_rate: 1.0e-3}", "train:"))).train == {}
    recipe = recipes.load(recipes.builtin("tiny_grpo.yaml"), ["train.max_completion_length=null",
                                                              "rewards.0.weight=2"])
    assert recipe.train["max_completion_length"] is None and recipe.rewards[0]["weight"] == 2.0


def test_bad_override_syntax(recipe_file):
    with pytest.raises(UserError, match="not key=value"):
        recipes.load(recipe_file(), ["train.max_steps"])


def test_a_policy_to_start_from_is_for_reward_models_only(recipe_file):
    with pytest.raises(UserError, match="model.policy is the policy a reward model starts from"):
        recipes.load(recipe_file(), ["model.policy=runs/sft"])


def test_a_null_train_setting_means_not_set(recipe_file):
    # over a recipe's max_steps, null hands the run back to num_train_epochs (TRL failed on None)
    loaded = recipes.load(recipe_file(), ["train.max_steps=null", "train.num_train_epochs=2"])
    assert "max_steps" not in loaded.train and loaded.train["num_train_epochs"] == 2
    assert recipes.load(recipe_file(), ["train.max_length=null"]).train["max_length"] is None  # None is a value here


def test_mismatched_pairs_are_for_reward_models_only(recipe_file):
    with pytest.raises(UserError, match="data.mismatched_pairs adds pairs a reward model trains on"):
        recipes.load(recipe_file(), ["data.mismatched_pairs=true"])


def test_a_begun_reply_is_for_grpo_only(recipe_file):
    with pytest.raises(UserError, match="data.reply_start opens the reply GRPO's policy writes"):
        recipes.load(recipe_file(), ["data.reply_start={answer}"])


def test_a_reward_model_is_not_a_policy_to_start_from(recipe_file, tmp_path):
    rm_run = tmp_path / "rm_run"
    rm_run.mkdir()
    (rm_run / "adapter_config.json").write_text(json.dumps({"task_type": "SEQ_CLS"}))
    rm_recipe = recipe_file(GOOD.replace("method: sft", "method: rm"))
    result = validate(rm_recipe, f"model.policy={rm_run}")
    assert result.returncode == 2 and f"model.policy {rm_run} is a reward model" in result.stderr
    result = validate(rm_recipe, f"model.policy={tmp_path}")
    assert result.returncode == 2 and "model.policy: no adapter (adapter_config.json)" in result.stderr
    assert not (tmp_path / "run").exists()


def test_method_mismatch_points_to_the_right_command(recipe_file):
    with pytest.raises(UserError, match="python -m tinyalign.sft"):
        recipes.load(recipe_file(), method="dpo")


# ---------------------------------------------------------------- validate, end to end


def test_validate_prints_resolved_recipe(recipe_file):
    result = validate(recipe_file())
    assert result.returncode == 0, result.stderr
    assert "learning_rate: 0.001" in result.stdout  # the recipe's value
    assert "lr_scheduler_type: cosine" in result.stdout  # tinyalign's default, filled in
    assert "ok: data" in result.stdout and "20 rows" in result.stdout


def test_validate_prints_integer_settings_as_integers(recipe_file):
    # TRL types warmup_steps, logging_steps and save_steps as floats (a ratio below 1); a count stays a count
    result = validate(recipe_file(), "train.warmup_steps=10", "train.logging_steps=2")
    assert result.returncode == 0, result.stderr
    assert "  warmup_steps: 10\n" in result.stdout and "  logging_steps: 2\n" in result.stdout
    assert "learning_rate: 0.001" in result.stdout
    ratio = validate(recipe_file(), "train.warmup_steps=0.1")
    assert "  warmup_steps: 0.1\n" in ratio.stdout


@pytest.mark.slow
@pytest.mark.parametrize("override, message", [
    ("data.source=/no/such/file.jsonl", "file not found: /no/such/file.jsonl"),
    ("data.prompt={questoin}", "column 'questoin'"),
    ("model.name=./no/such/model", "local model folder not found: ./no/such/model"),
    ("train.learning_rat=1", "did you mean `learning_rate`"),
])
def test_validate_errors_are_one_line_exit_2(recipe_file, override, message):
    result = validate_cli(recipe_file(), override)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert message in result.stderr


@pytest.mark.slow
def test_missing_adapter_is_pending_for_validate_but_refused_by_a_run(recipe_file, tmp_path):
    result = validate(recipe_file(), "model.adapter=/no/such/run")
    assert result.returncode == 0 and "/no/such/run: not there yet" in result.stdout
    (tmp_path / "empty").mkdir()
    result = validate(recipe_file(), f"model.adapter={tmp_path / 'empty'}")
    assert result.returncode == 2 and "no adapter (adapter_config.json)" in result.stderr
    run = subprocess.run([sys.executable, "-m", "tinyalign.sft", str(recipe_file()), "model.adapter=/no/such/run"],
                         capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 2 and "no adapter (adapter_config.json) in /no/such/run" in run.stderr
    assert not (tmp_path / "run" / "adapter_model.safetensors").exists()


def test_missing_column_lists_the_columns_it_has(recipe_file):
    result = validate(recipe_file(), "data.completion={solution}")
    assert result.returncode == 2
    assert "'solution'" in result.stderr and "its columns: question, answer" in result.stderr


def test_finished_run_is_refused_unless_overwrite(recipe_file, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "adapter_model.safetensors").write_bytes(b"x")
    result = validate(recipe_file())
    assert result.returncode == 2 and "holds a finished run" in result.stderr and "overwrite=true" in result.stderr
    assert validate(recipe_file(), "overwrite=true").returncode == 0
    assert (run / "adapter_model.safetensors").read_bytes() == b"x"  # validate writes nothing


SHIPPED = sorted(recipes.BUILTIN.glob("*.yaml"))  # every built-in recipe, whatever its name


def test_the_shipped_recipes_are_found():
    # an empty glob would leave the test below with no cases, which pytest only reports as a skip
    names = {path.name for path in SHIPPED}
    assert {"tiny_sft.yaml", "tiny_grpo.yaml", "tiny_dpo.yaml", "tiny_rm.yaml", "qwen_1.5b_rm.yaml"} <= names, names


def earlier_outputs(path: Path, folder: Path) -> list[str]:
    """Overrides standing in for what an earlier command writes into runs/ (the judge's traces and
    verdicts, its SFT adapter): a data file with the columns the recipe's templates name, no adapter."""
    import re

    import yaml

    recipe, overrides = yaml.safe_load(path.read_text()), []
    data = recipe.get("data", {})
    if str(data.get("source", "")).startswith("runs/"):
        # DPO's and a reward model's votes as the pairs file prefs export writes; else the columns the templates name
        columns = ({"prompt", "chosen", "rejected"}
                   if recipe["method"] in ("rm", "dpo")
                   else set(re.findall(r"{(\w+)}", " ".join(str(v) for v in data.values()))))
        rows = folder / "rows.jsonl"
        rows.write_text("".join(json.dumps({c: f"{c} {i}" for c in columns}) + "\n" for i in range(20)))
        overrides.append(f"data.source={rows}")
    if str(recipe.get("model", {}).get("adapter", "")).startswith("runs/"):
        overrides.append("model.adapter=null")
    return overrides


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.name)
def test_shipped_recipes_validate_offline(path, tmp_path):
    header = path.read_text().splitlines()[0]
    assert header.startswith("# python -m tinyalign."), "every recipe starts with the command that runs it"
    result = validate(path, *earlier_outputs(path, tmp_path), f"output_dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr
