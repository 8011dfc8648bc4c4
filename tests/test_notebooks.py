"""The example notebooks run top to bottom, so none can rot: each is executed with nbclient (a kernel
from this environment) on the offline tiny model, its `parameters` cell overridden the way papermill
does it; then what the notebook promised is checked on disk."""

import json
import sys
import time
from pathlib import Path

import nbformat
import pytest

from tinyalign import prefs
from tinyalign.training import run

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
NOTEBOOKS = ("colab_grpo", "kaggle_grpo", "preference_loop")


def execute(name: str, parameters: dict, tmp_path: Path) -> nbformat.NotebookNode:
    """Run examples/NAME.ipynb in the repository root with `parameters` assigned after its parameters cell."""
    from nbclient import NotebookClient

    nb = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
    at = next(i for i, cell in enumerate(nb.cells) if "parameters" in cell.metadata.get("tags", []))
    injected = nbformat.v4.new_code_cell("\n".join(f"{key} = {value!r}" for key, value in parameters.items()))
    injected.metadata["tags"] = ["injected-parameters"]
    nb.cells.insert(at + 1, injected)
    start = time.time()
    try:
        NotebookClient(nb, kernel_name="python3", timeout=300, resources={"metadata": {"path": str(ROOT)}}).execute()
    finally:
        nbformat.write(nb, tmp_path / f"{name}.executed.ipynb")  # to read when it fails
    print(f"{name}: {time.time() - start:.0f} s")
    return nb


def text_of(nb) -> str:
    return "".join(out.get("text", "") for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs)


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebooks_are_committed_without_outputs_and_with_a_parameters_cell(name):
    nb = nbformat.read(EXAMPLES / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert sum("parameters" in cell.metadata.get("tags", []) for cell in code) == 1


def tiny_grpo_parameters(tiny_sft_run: Path, tmp_path: Path) -> dict:
    return {
        "RECIPE": "recipes/tiny_grpo.yaml",
        "START_ADAPTER": str(tiny_sft_run),
        "OUTPUT_DIR": str(tmp_path / "grpo"),
        "OVERRIDES": ["train.max_steps=4", "train.save_steps=2", "train.logging_steps=2",
                      "train.per_device_train_batch_size=32"],
        "PROBE_PROMPTS": 16, "PROBE_K": 4, "EVAL_PROMPTS": 50,
        "QUESTION": "36+31",
        "EXPORT_TO": str(tmp_path / "merged"),
        "INSTALL": False,
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["colab_grpo", "kaggle_grpo"])
def test_grpo_notebook_probes_trains_evaluates_and_chats(name, tiny_sft_run, tmp_path):
    nb = execute(name, tiny_grpo_parameters(tiny_sft_run, tmp_path), tmp_path)

    out = tmp_path / "grpo"
    output = text_of(nb)
    assert "No GPU" in output  # the hardware check is visible, and says what to change
    assert json.loads((out / "probe.json").read_text())["verdict"] != "no signal"
    assert run.is_finished(out) and json.loads((out / "trainer_state.json").read_text())["global_step"] == 4
    assert [c.name for c in run.checkpoints(out)] == ["checkpoint-2", "checkpoint-4"]
    assert "accuracy" in (out / "eval.csv").read_text() and (out / "eval.png").stat().st_size > 0
    assert "after GRPO" in output and "── start" in output
    assert (tmp_path / "merged" / "config.json").is_file()


@pytest.mark.slow
def test_preference_notebook_turns_votes_into_a_dpo_run(tiny_sft_run, tmp_path):
    db = tmp_path / "prefs.sqlite"
    nb = execute("preference_loop", {
        "ADAPTERS": {"sft": str(tiny_sft_run), "early": str(tiny_sft_run / "checkpoint-6")},
        "START": "sft",
        "DB": str(db),
        "DPO_RECIPE": "recipes/tiny_dpo.yaml",
        # the tiny recipe maps its own question/chosen/rejected columns; the vote store has prompt/chosen/rejected
        "DPO_OVERRIDES": ["data.prompt=null", "data.chosen=null", "data.rejected=null", "data.test_split=null",
                          "data.limit=null", "train.max_steps=6", "train.save_steps=6"],
        "OUTPUT_DIR": str(tmp_path / "dpo"),
        "EVAL_RECIPE": "recipes/tiny_sft.yaml",
        "EVAL_PROMPTS": 50,
        "LAUNCH_APP": False,
        "SIMULATED_VOTES": 48,
        "VOTE_DATA": "recipes/tiny_sft.yaml",
        "INSTALL": False,
    }, tmp_path)

    with prefs.VoteStore(db, create=False) as store:
        votes = store.votes()
    assert len(votes) == 48 and {v["model_a"] for v in votes} == {"sft", "early"}
    assert run.is_finished(tmp_path / "dpo")
    recipe = (tmp_path / "dpo" / "recipe.yaml").read_text()
    assert str(db) in recipe and str(tiny_sft_run) in recipe  # trained on the votes, from the SFT adapter
    output = text_of(nb)
    assert "held-out accuracy" in output and "-> dpo" in output


def test_notebook_kernel_is_this_environment():
    """The notebooks' `python -m tinyalign...` lines use the kernel's interpreter: it must be this one.
    The kernel is started as the notebooks are run and asked, since its spec may name a bare `python`."""
    from nbclient import NotebookClient

    import tinyalign

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        "import sys, tinyalign\nprint(sys.prefix)\nprint(tinyalign.__file__)")])
    NotebookClient(nb, kernel_name="python3", timeout=120).execute()
    prefix, package = nb.cells[0].outputs[0]["text"].split("\n")[:2]
    assert (prefix, package) == (sys.prefix, tinyalign.__file__)
