"""tinyalign as a package: the `tinyalign` command, the built-in recipes found from any folder, one
`resolve` per method (so `validate` prints exactly what the trainer is built with), the practice doc
naming every symptom the doctor prints, and a wheel that runs in a clean virtual environment."""

import ast
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest
import yaml

from tinyalign.__main__ import COMMANDS
from tinyalign.__main__ import main as tinyalign
from tinyalign.config import recipe as recipes
from tinyalign.core.errors import UserError
from tinyalign.training import run

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "tinyalign"


# ---------------------------------------------------------------- the tinyalign command


def defines_main(path: Path) -> bool:
    tree = ast.parse(path.read_text())
    return any(isinstance(node, ast.FunctionDef) and node.name == "main" for node in tree.body) or any(
        isinstance(node, ast.ImportFrom) and any(a.name == "main" for a in node.names) for node in tree.body)


def test_every_python_m_command_is_a_tinyalign_subcommand():
    commands = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__main__" and defines_main(p)}
    commands |= {p.name for p in PACKAGE.iterdir() if (p / "__main__.py").is_file()}  # the app
    assert commands == set(COMMANDS)
    for name, (module, _) in COMMANDS.items():
        assert module == f"tinyalign.{name}"


def test_tinyalign_help_lists_the_commands(capsys):
    tinyalign(["--help"])
    out = capsys.readouterr().out
    listed = re.findall(r"^  (\w+)  ", out, re.M)
    assert listed == list(COMMANDS)


def test_a_subcommand_is_the_modules_main_and_a_typo_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # no recipes/ here: the built-in one is found
    tinyalign(["validate", "recipes/tiny_sft.yaml", "train.max_steps=7"])
    out = capsys.readouterr().out
    assert yaml.safe_load(out.split("\nok: ")[0])["train"]["max_steps"] == 7
    with pytest.raises(SystemExit) as exit:
        tinyalign(["grpp", "recipes/tiny_grpo.yaml"])
    assert exit.value.code == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "error: no command 'grpp'; did you mean grpo? commands: " + ", ".join(COMMANDS) + " (see tinyalign --help)"]


# ---------------------------------------------------------------- the built-in recipes


def test_built_in_recipes_are_found_by_name_from_any_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert recipes.locate("recipes/tiny_sft.yaml") == recipes.BUILTIN / "tiny_sft.yaml"
    assert recipes.locate("tiny_grpo.yaml") == recipes.BUILTIN / "tiny_grpo.yaml"
    assert recipes.locate("recipes/accelerate/ddp.yaml") == recipes.BUILTIN / "accelerate" / "ddp.yaml"
    assert recipes.load("recipes/tiny_rm.yaml").method == "rm"
    # a file that is there is read as it is: a user's own recipe of the same name wins
    (tmp_path / "recipes").mkdir()
    (tmp_path / "recipes" / "tiny_sft.yaml").write_text("method: sft\n")
    assert recipes.locate("recipes/tiny_sft.yaml") == Path("recipes/tiny_sft.yaml")
    # only recipes/NAME and NAME fall back: another folder's missing file stays an error
    with pytest.raises(UserError, match="recipe file not found: elsewhere/tiny_sft.yaml"):
        recipes.load("elsewhere/tiny_sft.yaml")
    with pytest.raises(UserError, match="no built-in recipe 'nope.yaml'; the built-in recipes are .*tiny_sft.yaml"):
        recipes.builtin("nope.yaml")


def test_the_checkout_link_is_the_packaged_folder():
    assert (ROOT / "recipes").resolve() == recipes.BUILTIN


# ---------------------------------------------------------------- one resolve: validate prints what runs


def test_grpo_resolve_fills_beta_by_the_start_and_reward_weights_from_the_rewards():
    from tinyalign import grpo

    tiny = recipes.builtin("tiny_grpo.yaml")
    assert grpo.resolve(recipes.load(tiny)).train["beta"] == grpo.KL_AFTER_SFT  # it continues an adapter
    assert grpo.resolve(recipes.load(tiny, ["model.adapter=null"])).train["beta"] == grpo.KL_FROM_BASE
    assert grpo.resolve(recipes.load(tiny, ["train.beta=0.04"])).train["beta"] == 0.04  # the recipe wins
    weighted = grpo.resolve(recipes.load(tiny, ["rewards=[{name: exact_match, weight: 2}, {name: repetition, weight: 0.5}]"]))
    assert weighted.train["reward_weights"] == [2.0, 0.5]
    curriculum = grpo.resolve(recipes.load(tiny, ["data.curriculum=easy_to_hard"]))
    assert curriculum.train["shuffle_dataset"] is False  # a curriculum keeps its order


def test_rm_resolve_holds_out_a_share_only_when_the_recipe_names_none():
    from tinyalign import rm

    tiny = recipes.builtin("tiny_rm.yaml")
    assert rm.resolve(recipes.load(tiny, ["data.test_size=null"])).data.test_size == rm.HELD_OUT
    assert rm.resolve(recipes.load(tiny, ["data.test_size=0.25"])).data.test_size == 0.25
    assert rm.resolve(recipes.load(tiny, ["data.test_size=null", "data.test_split=test"])).data.test_size is None


class Built(Exception):
    """Raised by the stand-in trainer: the run stops once its trainer would be built."""


# method -> (recipe, overrides for both validate and the run). Fresh LoRA starts (no adapter on disk),
# probe off, the RM on the task's preference pairs with no held-out split named (its 10 % applies).
RUNS = {
    "sft": ("tiny_sft.yaml", []),
    "dpo": ("tiny_dpo.yaml", ["model.adapter=null"]),
    "grpo": ("tiny_grpo.yaml", ["model.adapter=null", "probe=false"]),
    "rm": ("tiny_rm.yaml", ["data.source=tiny:addition-prefs", "data.test_size=null", "data.prompt={question}",
                            "data.chosen={chosen}", "data.rejected={rejected}", "data.limit=64"]),
}
TRAINERS = {"sft": "SFTTrainer", "dpo": "DPOTrainer", "grpo": "GRPOTrainer", "rm": "RewardTrainer"}


@pytest.mark.parametrize("method", RUNS)
def test_validate_prints_the_settings_the_trainer_is_built_with(method, tmp_path, monkeypatch, capsys):
    import importlib

    import trl

    from tinyalign import validate

    name, overrides = RUNS[method]
    argv = [str(recipes.builtin(name)), *overrides, f"output_dir={tmp_path / 'run'}"]
    validate.main(argv)
    printed, notes = capsys.readouterr().out.split("\nok: ", 1)
    printed = yaml.safe_load(printed)

    seen = {}

    def built(*args, **kwargs):
        seen["config"] = kwargs["args"]
        raise Built

    def callbacks(recipe):
        seen["recipe"] = recipe.to_dict()
        return []

    monkeypatch.setattr(trl, TRAINERS[method], built)
    monkeypatch.setattr(run, "callbacks", callbacks)
    with pytest.raises(Built):
        importlib.import_module(f"tinyalign.{method}").main(argv)

    assert seen["recipe"] == printed  # the whole resolved recipe, not only `train:`
    # the printed `train:`, the seed and the flags validate says this machine adds make the trainer's
    # config, field for field: nothing else is set behind them
    config = seen["config"]
    line = notes.split("this machine adds: ")[1].splitlines()[0]
    hardware = {key: yaml.safe_load(value) for key, value in re.findall(r"(\w+)=([^,]+)", line)}
    rebuilt = type(config)(output_dir=printed["output_dir"], seed=printed["seed"], **hardware, **printed["train"])
    assert rebuilt.to_dict() == config.to_dict()
    if method == "grpo":
        assert config.beta == 0.0 and config.reward_weights == [1.0]
    if method == "rm":
        assert printed["data"]["test_size"] == 0.1


# ---------------------------------------------------------------- the practice the doctor encodes


def test_the_practice_doc_names_every_symptom_the_doctor_prints():
    from tinyalign import symptoms

    checks = {f.__name__ for group in symptoms.CHECKS.values() for f in group}
    checks |= {f.__name__ for group in getattr(symptoms, "RECIPE_CHECKS", {}).values() for f in group}
    text = (ROOT / "docs" / "practice.md").read_text()
    assert {name for name in checks if f"`{name}`" not in text} == set()


# ---------------------------------------------------------------- a wheel in a clean environment


def installed(tmp_path: Path) -> Path:
    """Build the wheel offline from a copy of the sources, install it into a fresh venv that sees this
    environment's dependencies (torch, trl, ...) but not this checkout; return the venv."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    shutil.copytree(PACKAGE, source / "tinyalign", ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "--no-index",
                            "--wheel-dir", str(wheels), str(source)], capture_output=True, text=True)
    assert built.returncode == 0, built.stdout + built.stderr
    # -v shows setuptools' own output, where an install's deprecation blocks come from (project.license as a table)
    assert "deprecat" not in (built.stdout + built.stderr).lower()
    wheel, = wheels.glob("tinyalign-*.whl")

    env = tmp_path / "venv"
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    # this environment's packages, after the venv's own; a plain path entry, so its .pth files (this
    # checkout's editable install among them) are not run
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index",
                           "--quiet", str(wheel)], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
    return env


@pytest.mark.slow
def test_the_wheel_runs_from_any_folder_without_the_source_tree(tmp_path):
    env = installed(tmp_path)
    work = tmp_path / "elsewhere"
    work.mkdir()
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    clean.update(OMP_NUM_THREADS="1", PATH=f"{env / 'bin'}{os.pathsep}{clean.get('PATH', '')}")

    def call(*argv):
        done = subprocess.run(argv, cwd=work, env=clean, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout

    python = str(env / "bin" / "python")
    where = call(python, "-c", "import tinyalign, tinyalign.demo as d; print(tinyalign.__file__); print(d.recipe_path('tiny_sft.yaml'))")
    package, recipe = where.split()
    assert Path(package).is_relative_to(env) and Path(recipe).is_relative_to(env) and not Path(package).is_relative_to(ROOT)

    help_text = call(str(env / "bin" / "tinyalign"), "--help")
    assert all(f"  {name}  " in help_text for name in COMMANDS)
    printed = call(python, "-m", "tinyalign.validate", "recipes/tiny_grpo.yaml")
    assert yaml.safe_load(printed.split("\nok: ")[0])["train"]["beta"] == 0.001  # resolved: from the SFT adapter

    # the demo's first stage, as the demo runs it: SFT on the built-in recipe, through the console script
    out = call(str(env / "bin" / "tinyalign"), "sft", "recipes/tiny_sft.yaml", "output_dir=runs/demo/sft",
               "train.max_steps=4", "train.save_steps=4")
    assert "saved adapter to runs/demo/sft" in out
    assert (work / "runs" / "demo" / "sft" / "adapter_model.safetensors").is_file()
