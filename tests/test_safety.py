"""Nothing the user has is destroyed by a mistake, and every bad input is refused before anything
changes: one line, exit status 2, no traceback, and the files on disk byte-for-byte as they were."""

import contextlib
import hashlib
import io
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tinyalign import dpo, evaluate, probe, sample, sft, validate
from tinyalign.config import recipe as recipes
from tinyalign.training import run

ROOT = Path(__file__).resolve().parent.parent
TINY_SFT = recipes.builtin("tiny_sft.yaml")


def snapshot(folder: Path) -> dict:
    """Every file under `folder` (or the file itself) -> its sha256: equal snapshots, untouched files."""
    folder = Path(folder)
    files = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
    return {str(p.relative_to(folder.parent)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def refused(main, *args) -> str:
    """Run a command's main() in this process; assert it refused (exit 2, one line); return the line."""
    err = io.StringIO()
    with contextlib.chdir(ROOT), contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        with pytest.raises(SystemExit) as exit_:
            main([str(a) for a in args])
    message = err.getvalue()
    assert exit_.value.code == 2, message
    lines = [line for line in message.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), message
    return lines[0]


@pytest.fixture
def finished_run(tiny_sft_run, tmp_path) -> Path:
    """A copy of a finished tiny SFT run (the session's run itself stays untouched for other tests)."""
    copy = tmp_path / "finished"
    shutil.copytree(tiny_sft_run, copy)
    return copy


@pytest.fixture
def qa(tmp_path) -> Path:
    path = tmp_path / "qa.jsonl"
    path.write_text("".join(json.dumps({"question": f"{i}+1", "answer": str(i + 1)}) + "\n" for i in range(40)))
    return path


def sft_args(data: Path, out: Path, *extra) -> list:
    return [TINY_SFT, f"data.source={data}", "data.test_split=null", f"output_dir={out}", "train.max_steps=2", *extra]


# ---------------------------------------------------------------- 1. saved work survives every mistake

def test_export_never_writes_over_a_vote_store(tmp_path):
    from tinyalign import prefs

    store, other = tmp_path / "prefs.sqlite", tmp_path / "other.sqlite"
    for path in (store, other):
        with prefs.VoteStore(path) as votes:
            votes.record(conversation=[{"role": "user", "content": "2+2?"}], response_a="4", response_b="5",
                         model_a="x", model_b="y", vote="a")
    before = {**snapshot(store), **snapshot(other)}

    assert "is the file being read" in refused(prefs.main, "export", store, "--out", store)
    assert "SQLite database" in refused(prefs.main, "export", store, "--out", other)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    assert "not a file this command writes" in refused(prefs.main, "export", store, "--out", notes)

    assert {**snapshot(store), **snapshot(other)} == before and notes.read_text() == "my notes\n"
    with sqlite3.connect(store) as db:
        assert db.execute("select count(*) from votes").fetchone()[0] == 1
    # an earlier pairs file is what export may replace
    prefs.main(["export", str(store), "--out", str(tmp_path / "pairs.jsonl")])
    prefs.main(["export", str(store), "--out", str(tmp_path / "pairs.jsonl")])
    assert len((tmp_path / "pairs.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize("mistake, says", [
    (["data.prompt={questoin}"], "'questoin'"),
    (["train.learning_rat=1"], "learning_rate"),
    (["model.name=/no/such/model"], "not found"),
    (["data.source=/no/such/votes.sqlite"], "vote store not found"),
])
def test_overwrite_keeps_the_finished_run_when_the_new_recipe_fails_its_checks(finished_run, mistake, says):
    before = snapshot(finished_run)
    line = refused(sft.main, TINY_SFT, f"output_dir={finished_run}", "overwrite=true", *mistake)
    assert says in line
    assert snapshot(finished_run) == before and run.is_finished(finished_run)


# Every method starts through run.prepare / run.start: the same refusal leaves the same run untouched.
METHOD_MISTAKES = [
    ("sft", "tiny_sft.yaml", "data.prompt={questoin}", "'questoin'"),
    ("dpo", "tiny_dpo.yaml", "data.chosen={chosn}", "'chosn'"),
    ("grpo", "tiny_grpo.yaml", "data.answer={answr}", "'answr'"),
    ("rm", "tiny_rm.yaml", "data.source=tiny:addition-prefs", "no prompt column"),
]


@pytest.mark.parametrize("method, recipe, mistake, says", METHOD_MISTAKES)
def test_every_method_keeps_the_old_run_and_writes_no_new_one_on_a_refusal(finished_run, tmp_path, method, recipe,
                                                                            mistake, says):
    import importlib

    main = importlib.import_module(f"tinyalign.{method}").main
    adapter = [f"model.adapter={finished_run}"] if method in ("dpo", "grpo") else []
    before = snapshot(finished_run)
    new = tmp_path / "new_run"
    assert says in refused(main, recipes.builtin(recipe), *adapter, mistake, f"output_dir={new}")
    assert not new.exists()
    old = tmp_path / "old_run"
    shutil.copytree(finished_run, old)
    old_before = snapshot(old)
    assert says in refused(main, recipes.builtin(recipe), *adapter, mistake, f"output_dir={old}", "overwrite=true")
    assert snapshot(old) == old_before and snapshot(finished_run) == before


def test_an_overwritten_run_comes_back_if_the_new_one_fails_before_it_is_saved(finished_run, qa, monkeypatch):
    """Some settings are read only at the first step (TRL's `importance_sampling_level`, say), and a run can be
    interrupted: the run being overwritten is set aside, back whole if the new one fails before its save, gone
    once it is saved."""
    import trl

    before = snapshot(finished_run)
    old_checkpoints = {p.name for p in finished_run.glob("checkpoint-*")}
    assert old_checkpoints

    def fails_at_its_first_step(self, *args, **kwargs):
        raise ValueError("importance_sampling_level must be either 'token' or 'sequence', got 'nope'")

    args = [str(a) for a in sft_args(qa, finished_run, "overwrite=true", "train.save_steps=1")]
    with monkeypatch.context() as patch, contextlib.chdir(ROOT), pytest.raises(ValueError, match="nope"):
        patch.setattr(trl.SFTTrainer, "train", fails_at_its_first_step)
        sft.main(args)
    assert snapshot(finished_run) == before and not (finished_run / run.REPLACED).exists()

    with monkeypatch.context() as patch, contextlib.chdir(ROOT), pytest.raises(SystemExit):
        patch.setattr(run, "save", lambda *a: (_ for _ in ()).throw(KeyboardInterrupt))  # cut after training, before its save
        sft.main(args)
    assert snapshot(finished_run) == before and not (finished_run / run.REPLACED).exists()

    with contextlib.chdir(ROOT):
        sft.main(args)
    assert run.is_finished(finished_run) and not (finished_run / run.REPLACED).exists()
    assert {p.name for p in finished_run.glob("checkpoint-*")} == {"checkpoint-1", "checkpoint-2"}
    assert recipes.load(finished_run / "recipe.yaml").train["max_steps"] == 2


def test_a_run_set_aside_by_a_killed_overwrite_is_the_one_kept(tmp_path):
    """A process killed mid-overwrite leaves .replaced (the last finished run) beside an unfinished one: the
    next overwrite keeps the finished run aside and drops the unfinished one. Killed just after its save, the
    new run is finished and the .replaced beside it is stale."""
    def run_dir(name, finished, checkpoint):
        folder = tmp_path / name
        (folder / checkpoint).mkdir(parents=True)
        (folder / "recipe.yaml").write_text(name)
        if finished:
            (folder / run.FINAL).write_text(name)
        return folder

    killed = run_dir("killed", finished=False, checkpoint="checkpoint-1")
    shutil.move(run_dir("old", finished=True, checkpoint="checkpoint-9"), killed / run.REPLACED)
    assert run.set_aside(killed)
    assert not (killed / "checkpoint-1").exists() and (killed / run.REPLACED / run.FINAL).read_text() == "old"
    run.put_back(killed)  # what a run's guard does when the new run fails in its turn
    assert (killed / run.FINAL).read_text() == "old" and (killed / "checkpoint-9").is_dir()
    assert not (killed / run.REPLACED).exists()

    saved = run_dir("saved", finished=True, checkpoint="checkpoint-2")
    shutil.move(run_dir("older", finished=True, checkpoint="checkpoint-9"), saved / run.REPLACED)
    assert run.set_aside(saved)
    assert (saved / run.REPLACED / run.FINAL).read_text() == "saved" and not (saved / run.REPLACED / "checkpoint-9").exists()


def test_train_takes_a_recipe_and_returns_its_run_directory(qa, tmp_path):
    """The library entry point: a recipe object in (settings as typed values), the run directory out; a
    mistake raises UserError (only `main` turns it into one line and exit 2) and writes nothing."""
    out = tmp_path / "run"
    settings = {"data.source": qa, "data.test_split": None, "output_dir": out, "train.max_steps": 2}
    assert sft.train(recipes.load(TINY_SFT, settings, method="sft")) == out
    assert run.is_finished(out) and recipes.load(out / "recipe.yaml").train["max_steps"] == 2
    with pytest.raises(recipes.UserError, match="'questoin'"):
        sft.train(recipes.load(TINY_SFT, {**settings, "output_dir": tmp_path / "other", "data.prompt": "{questoin}"},
                               method="sft"))
    assert not (tmp_path / "other").exists()


def test_settings_as_typed_values_are_checked_as_the_yaml_is(tmp_path):
    typed = recipes.load(TINY_SFT, {"train.max_steps": 30, "output_dir": tmp_path, "data.limit": None}, method="sft")
    assert typed == recipes.load(TINY_SFT, ["train.max_steps=30", f"output_dir={tmp_path}", "data.limit=null"],
                                 method="sft")
    for mistake, says in [({"train.learning_rat": 1e-4}, "learning_rate"), ({"train.max_steps": 0}, "max_steps"),
                          ({"train.per_device_train_batch_size": "banana"}, "per_device_train_batch_size"),
                          ({"rewards": [{"name": "exact_match"}]}, "GRPO only"), ({"train..x": 1}, "empty part")]:
        with pytest.raises(recipes.UserError, match=says):
            recipes.load(TINY_SFT, mistake, method="sft")


def test_a_run_inside_another_s_work_leaves_the_outer_run_s_undo_in_place(finished_run, qa, tmp_path):
    """The loop trains one run after another: a run started and saved inside another's guard keeps its own
    undo steps, so the outer run, failing later, still puts back the run it was overwriting."""
    before = snapshot(finished_run)
    outer = recipes.load(TINY_SFT, {"output_dir": finished_run, "overwrite": True}, method="sft")
    inner = recipes.load(TINY_SFT, {"data.source": qa, "data.test_split": None, "output_dir": tmp_path / "inner",
                                    "train.max_steps": 2}, method="sft")
    with pytest.raises(RuntimeError, match="the outer run fails"), run.guarded(outer) as guard:
        run.start(outer, None, guard)  # the finished run is set aside
        assert not run.is_finished(finished_run)
        assert run.is_finished(sft.train(inner))  # a whole run, saved: its guard commits, the outer one's stays
        raise RuntimeError("the outer run fails before its save")
    assert snapshot(finished_run) == before and not (finished_run / run.REPLACED).exists()


def test_output_dir_equal_to_the_adapter_it_continues_is_refused_up_front(finished_run):
    before = snapshot(finished_run)
    line = refused(sft.main, TINY_SFT, f"model.adapter={finished_run}", f"output_dir={finished_run}", "overwrite=true")
    assert "the adapter this run continues" in line
    line = refused(dpo.main, recipes.builtin("tiny_dpo.yaml"), f"model.adapter={finished_run / 'checkpoint-6'}",
                   f"output_dir={finished_run}", "overwrite=true")
    assert "the adapter this run continues" in line
    assert snapshot(finished_run) == before


@pytest.mark.parametrize("mistake, says", [
    (["model.name=/no/such/model"], "not found"),
    (["model.adapter=EMPTY"], "no adapter"),
    (["train.per_device_train_batch_size=banana"], "per_device_train_batch_size"),
    (["train.lr_scheduler_type=sideways"], "sideways"),
    (["data.prompt={questoin}"], "'questoin'"),
    (["data.source=VOTES"], "vote store not found"),
])
def test_a_run_that_fails_its_checks_leaves_no_output_dir(qa, tmp_path, mistake, says):
    (tmp_path / "empty").mkdir()
    mistake = [m.replace("EMPTY", str(tmp_path / "empty")).replace("VOTES", str(tmp_path / "votes.sqlite"))
               for m in mistake]
    out = tmp_path / "new_run"
    assert says in refused(sft.main, *sft_args(qa, out), *mistake)
    assert not out.exists()


def test_adapter_of_another_base_is_refused_by_validate_and_training(finished_run, tmp_path):
    other = tmp_path / "other_base"
    other.mkdir()
    (other / "config.json").write_text("{}")
    for main in (validate.main, sft.main):
        line = refused(main, TINY_SFT, f"model.name={other}", f"model.adapter={finished_run}",
                       f"output_dir={tmp_path / 'out'}")
        assert "was trained on" in line
    assert not (tmp_path / "out").exists()


def test_resume_of_a_finished_run_is_refused_and_its_recipe_kept(finished_run):
    before = snapshot(finished_run)
    assert "nothing to resume" in refused(sft.main, TINY_SFT, f"output_dir={finished_run}", "resume=true",
                                          "train.max_steps=30")
    assert snapshot(finished_run) == before


@pytest.mark.slow
def test_a_run_cut_during_its_final_save_resumes_to_exactly_its_planned_end(qa, tmp_path, monkeypatch):
    from safetensors.torch import load_file

    whole, cut = tmp_path / "whole", tmp_path / "cut"
    args = [*sft_args(qa, whole, "train.max_steps=4", "train.save_steps=2")]
    sft.main([str(a) for a in args])

    real_replace = run.os.replace

    def killed_before_the_adapter(src, dst):  # the process dies as the adapter file is moved into place
        if Path(dst).name == run.FINAL:
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(run.os, "replace", killed_before_the_adapter)
    cut_args = [str(a) for a in sft_args(qa, cut, "train.max_steps=4", "train.save_steps=2")]
    with pytest.raises(SystemExit):
        sft.main(cut_args)
    monkeypatch.setattr(run.os, "replace", real_replace)
    assert (cut / "trainer_state.json").is_file() and not run.is_finished(cut)

    sft.main(cut_args + ["resume=true"])
    state = json.loads((cut / "trainer_state.json").read_text())
    assert state["global_step"] == 4 == json.loads((whole / "trainer_state.json").read_text())["global_step"]
    steps = [e["step"] for e in state["log_history"] if "loss" in e]
    assert max(steps) == 4 and len(steps) == len(set(steps))
    a, b = load_file(whole / run.FINAL), load_file(cut / run.FINAL)
    assert a.keys() == b.keys() and all((a[k] - b[k]).abs().max() < 1e-6 for k in a)


@pytest.mark.slow
def test_disk_full_is_one_line_and_the_last_complete_checkpoint_survives(qa, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2500k", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (needs root)")
    try:
        out = disk / "run"
        done = subprocess.run([sys.executable, "-m", "tinyalign.sft",
                               *map(str, sft_args(qa, out, "train.max_steps=12", "train.save_steps=1",
                                                  "train.save_total_limit=null"))],
                              cwd=ROOT, capture_output=True, text=True)
        errors = [line for line in done.stderr.splitlines() if line.startswith(("error", "Traceback"))]
        assert done.returncode == 2 and errors and errors[0].startswith("error: disk full while writing"), done.stderr[-2000:]
        assert len(errors) == 1 and "MB more needed" in errors[0] and "resume=true continues from checkpoint-" in errors[0]
        complete = run.checkpoints(out)
        assert complete and all(p in complete for p in out.glob("checkpoint-*"))  # the cut one was removed
        json.loads((complete[-1] / "trainer_state.json").read_text())  # readable: a resume can start from it
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ---------------------------------------------------------------- 2. validate catches what training would trip on

@pytest.mark.parametrize("data_keys, sections, says", [
    ("", "generation: {temprature: 0.5}\n", "did you mean `temperature`"),
    ("", "train: {max_steps: -1}\n", "`train.max_steps` should be at least 1"),
    ("", "train: {per_device_train_batch_size: 0}\n", "per_device_train_batch_size"),
    (", limit: 0", "", "`data.limit` should be at least 1"),
    (", limit: -1", "", "`data.limit` should be at least 1"),
    (", test_size: 500", "", "holds out 500 of 40 rows"),
    (", mix: [{source: tiny:addition, fraction: 2}]", "", "between 0 and 1"),
    ("", "train: {max_steps: 3}\ntrain: {max_steps: 5}\n", "duplicate key 'train'"),
])
def test_validate_refuses_what_training_would_trip_on(qa, tmp_path, data_keys, sections, says):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"method: sft\nmodel: {{name: tiny:qwen2-1m}}\noutput_dir: {tmp_path / 'out'}\n"
                      f"data: {{source: {qa}, prompt: '{{question}}', completion: '{{answer}}'{data_keys}}}\n{sections}")
    assert says in refused(validate.main, recipe)
    assert says in refused(sft.main, recipe)
    assert not (tmp_path / "out").exists()


def test_validate_refuses_an_output_dir_that_is_a_file(qa, tmp_path):
    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    for main in (validate.main, sft.main):
        assert "is a file" in refused(main, *sft_args(qa, afile))
    assert afile.read_text() == "keep me"


def test_an_output_path_under_a_file_is_refused_before_any_work(qa, tmp_path):
    from tinyalign import export, prefs

    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    says = f"{afile} is a file, not a folder"
    assert says in refused(sft.main, *sft_args(qa, afile / "run"))
    assert says in refused(probe.main, TINY_SFT, "--out", afile / "probe")
    for recipe in ("tiny_sft.yaml", "tiny_rm.yaml"):  # a reward model is measured, not generated: checked alike
        fake = tmp_path / recipe.removesuffix(".yaml")
        (fake / "checkpoint-2").mkdir(parents=True)
        (fake / "checkpoint-2" / "trainer_state.json").write_text("{}")
        recipes.write(recipes.load(recipes.builtin(recipe), [f"output_dir={fake}"]), fake / "recipe.yaml")
        assert says in refused(evaluate.main, fake, "--out", afile / "eval")
        assert says in refused(evaluate.main, fake, "--out", afile)
    store = tmp_path / "prefs.sqlite"
    with prefs.VoteStore(store) as votes:
        votes.record(conversation=[{"role": "user", "content": "2+2?"}], response_a="4", response_b="5",
                     model_a="x", model_b="y", vote="a")
    assert says in refused(prefs.main, "export", store, "--out", afile / "pairs" / "p.jsonl")
    adapter = tmp_path / "tiny_sft"  # holds adapter_config.json from here on: export takes it as a run
    (adapter / "adapter_config.json").write_text("{}")
    assert says in refused(export.main, adapter, "--out", afile / "exported")
    assert afile.read_text() == "keep me" and not (tmp_path / "tiny_sft" / "eval.csv").exists()


@pytest.mark.parametrize("damaged, text", [("recipe.yaml", "model: {name: tiny"), ("adapter_config.json", '{"base')])
def test_a_damaged_file_in_a_run_is_named_by_the_commands_that_read_it(qa, tmp_path, damaged, text):
    from tinyalign import export
    from tinyalign.app import cli as app

    adapter = tmp_path / "adapter"
    adapter.mkdir()
    (adapter / "adapter_config.json").write_text('{"base_model_name_or_path": "tiny:qwen2-1m"}')
    (adapter / damaged).write_text(text)
    says = f"{adapter / damaged} is damaged and cannot be read"
    assert says in refused(sft.main, *sft_args(qa, tmp_path / "out", f"model.adapter={adapter}"))
    assert says in refused(export.main, adapter, "--out", tmp_path / "exported")
    assert says in refused(app.main, "--adapter", f"a={adapter}", "--base", "tiny:qwen2-1m", "--port", "0",
                           "--db", tmp_path / "votes.sqlite")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adapter", "qa.jsonl"]


def test_a_file_given_for_a_run_directory_or_a_folder_for_pairs_is_named_as_such(tmp_path):
    from tinyalign import doctor, export, judge

    afile = tmp_path / "notes.txt"
    afile.write_text("keep me")
    assert f"{afile} is a file, not a run directory" in refused(doctor.main, afile)
    assert f"{afile} is a file, not a run directory" in refused(export.main, afile, "--out", tmp_path / "out")
    assert "run directory not found" in refused(doctor.main, tmp_path / "nope")
    assert f"--pairs {tmp_path} is a folder" in refused(judge.main, "verdicts", "--pairs", tmp_path, "--out",
                                                        tmp_path / "v.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]


def test_non_utf8_data_and_missing_values_are_named(tmp_path):
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes('{"question": "caf\xe9?", "answer": "1"}\n'.encode("latin-1"))
    assert "not UTF-8" in refused(validate.main, *sft_args(latin, tmp_path / "o"))

    holes = tmp_path / "holes.jsonl"
    holes.write_text(json.dumps({"question": "1+1", "answer": "2"}) + "\n" + json.dumps({"question": "2+2"}) + "\n")
    line = refused(validate.main, *sft_args(holes, tmp_path / "o"))
    assert "data.completion" in line and "'answer'" in line and "2+2" in line

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    assert "is empty" in refused(sft.main, *sft_args(empty, tmp_path / "o"))
    assert not (tmp_path / "o").exists()


def test_validate_names_a_local_absolute_model_folder_as_local(qa, tmp_path):
    from tinyalign.models import tiny

    folder = tiny.model_path("tiny:qwen2-1m")
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        validate.main([str(a) for a in sft_args(qa, tmp_path / "o", f"model.name={folder}")])
    assert f"model {folder}: local folder" in out.getvalue()


# ---------------------------------------------------------------- 3. one line, never a traceback

@pytest.mark.parametrize("main, args, says", [
    (probe.main, [TINY_SFT, "--k", "0"], "--k"),
    (probe.main, [TINY_SFT, "--k", "-1"], "--k"),
    (probe.main, [TINY_SFT, "--prompts", "0"], "--prompts"),
    (probe.main, [TINY_SFT, "--prompts", "-5"], "--prompts"),
    (sample.main, [TINY_SFT, "--prompts", "-2", "--out", "x.jsonl"], "--prompts"),
    (evaluate.main, [TINY_SFT, "--k", "0"], "--k"),
    (validate.main, [TINY_SFT, "a..b=1"], "empty part"),
])
def test_bad_counts_and_keys_on_the_command_line(main, args, says):
    line = refused(main, *args)
    assert says in line


def test_overrides_after_an_option_are_read_as_overrides():
    # the override is read (and its key named) wherever it stands, not refused as an unrecognized argument
    for args in ([TINY_SFT, "--k", "2", "train.lr=1e-4"], [TINY_SFT, "train.lr=1e-4", "--k", "2"],
                 [TINY_SFT, "--prompts", "4", "seed=1", "--k", "2", "train.lr=1e-4"]):
        line = refused(probe.main, *args)
        assert "`train.lr`: did you mean `learning_rate`?" in line and "unrecognized" not in line


def test_evaluate_and_sample_refuse_an_out_that_would_destroy_a_file(finished_run, tmp_path):
    afile = tmp_path / "report.txt"
    afile.write_text("mine")
    assert "is a file" in refused(evaluate.main, finished_run, "--out", afile)
    assert "not a file this command writes" in refused(sample.main, finished_run, "--out", afile)
    assert "is the file being read" in refused(sample.main, TINY_SFT, "data.source=" + str(afile),
                                               "--out", afile)
    assert afile.read_text() == "mine"


def test_recipe_errors_never_write(tmp_path):
    """The recipe loader alone: a bad recipe raises before any folder exists."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text("method: sft\nmodel: {name: tiny:qwen2-1m}\ndata: {source: x.jsonl}\n"
                      f"output_dir: {tmp_path / 'out'}\ntrain: {{max_steps: 0}}\n")
    with pytest.raises(recipes.UserError, match="max_steps"):
        recipes.load(recipe)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("state", ['{"log_history": {"loss": 1}}', '{"log_history": [1, 2]}', "not json"])
def test_doctor_names_a_trainer_state_it_cannot_read(tmp_path, state):
    from tinyalign import doctor

    (tmp_path / "trainer_state.json").write_text(state)
    assert "trainer_state.json" in refused(doctor.main, tmp_path)


def test_a_hub_model_that_cannot_be_reached_is_named_at_once(qa, tmp_path, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # as on a machine without network, without asking it
    line = refused(sft.main, *sft_args(qa, tmp_path / "o", "model.name=someone/not-cached-model"))
    assert "someone/not-cached-model" in line and "hf download" in line
    assert not (tmp_path / "o").exists()


def test_the_loop_refuses_a_folder_that_already_holds_something(tmp_path):
    from tinyalign import loop

    (tmp_path / "mine.txt").write_text("keep me")
    assert "is not empty" in refused(loop.main, "run", "--sft", tmp_path, "--out", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["mine.txt"]


def test_the_loop_names_a_missing_judge_before_it_votes_or_trains(tmp_path):
    from tinyalign import loop

    line = refused(loop.main, "run", "--sft", tmp_path, "--out", tmp_path / "loop", "--judge", tmp_path / "no-judge")
    assert "--judge" in line and "no-judge" in line
    assert not (tmp_path / "loop").exists()
    assert "--prompts" in refused(loop.main, "run", "--sft", tmp_path, "--out", tmp_path / "loop", "--prompts", "0")


COMMANDS = ["sft", "dpo", "grpo", "rm", "validate", "probe", "evaluate", "sample", "export", "doctor", "prefs",
            "demo", "loop", "judge", "app.cli"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_answers_a_usage_mistake_in_one_line(command, tmp_path):
    import importlib

    main = importlib.import_module(f"tinyalign.{command}").main
    line = refused(main, "--no-such-option", tmp_path / "x")
    assert any(word in line for word in ("--no-such-option", "required", "invalid choice")), line
    assert "--help" in line and not (tmp_path / "x").exists()
