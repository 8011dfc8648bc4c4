"""`flat_groups: drop`: GRPO groups whose answers all score alike are dropped before the log-prob passes and
the backward; the share dropped is logged per step as `flat_groups_dropped`."""

import json
import math
import textwrap

import pytest
import torch

from tinyalign import grpo, validate
from tinyalign.config.recipe import builtin
from tinyalign.trl_patches.flat_groups import flat_rows, kept_rows, take_rows

RECIPE = str(builtin("tiny_grpo.yaml"))
NAN = math.nan
# short runs: two micro-batches per generation batch of 8 prompts x 8 answers (exercises TRL's split)
SHORT = ["train.per_device_train_batch_size=32", "train.gradient_accumulation_steps=2", "train.logging_steps=1",
         "train.save_strategy=no", "probe=false"]


# --------------------------------------------------------------------------- the row arithmetic


def test_flat_rows_are_the_groups_whose_weighted_rewards_do_not_vary():
    rewards = torch.tensor([
        [1.0, 0.0], [1.0, 0.0], [1.0, 0.0], [1.0, 0.0],  # all alike: flat
        [0.0, 0.0], [1.0, 0.0], [0.0, 0.0], [1.0, 0.0],  # varies: kept
        [1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0],  # each reward varies, their sum does not: flat
        [0.5, 0.0], [0.5, 0.0], [NAN, NAN], [0.5, 0.0],  # an unscored row (NaN) is left out of the spread: flat
        [NAN, NAN], [NAN, NAN], [NAN, NAN], [1.0, 0.0],  # fewer than two scored rows: flat
    ])
    flat = flat_rows(rewards, torch.tensor([1.0, 1.0]), num_generations=4)
    assert flat.tolist() == [True] * 4 + [False] * 4 + [True] * 12
    # with the second reward weighted 0 the third group varies
    assert flat_rows(rewards, torch.tensor([1.0, 0.0]), 4).view(5, 4)[:, 0].tolist() == [True, False, False, True,
                                                                                          True]


def test_kept_rows_keep_order_and_fill_up_to_equal_micro_batches():
    flat = torch.tensor([True] * 4 + [False] * 4 + [True] * 4 + [False] * 4)
    assert kept_rows(flat).tolist() == [4, 5, 6, 7, 12, 13, 14, 15]
    assert kept_rows(flat, 8).tolist() == [4, 5, 6, 7, 12, 13, 14, 15]
    # 8 kept rows, 3 micro-batches: one flat row (the first) fills up to 9, in batch order
    assert kept_rows(flat, 3).tolist() == [0, 4, 5, 6, 7, 12, 13, 14, 15]
    assert kept_rows(torch.ones(8, dtype=torch.bool), 4).tolist() == []  # all flat: nothing to train on


def test_take_rows_drops_rows_keeps_scalars_and_cuts_unused_completion_columns():
    batch = {
        "prompt_ids": torch.arange(12).view(4, 3), "prompt_mask": torch.ones(4, 3, dtype=torch.long),
        "completion_ids": torch.arange(20).view(4, 5),
        "completion_mask": torch.tensor([[1, 1, 1, 1, 1], [1, 1, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 0, 0]]),
        "advantages": torch.tensor([0.0, 1.0, 0.0, -1.0]), "ref_per_token_logps": torch.randn(4, 5),
        "num_items_in_batch": torch.tensor(11), "old_per_token_logps": None,
    }
    out = take_rows(batch, torch.tensor([1, 3]))
    assert out["advantages"].tolist() == [1.0, -1.0]
    assert out["prompt_ids"].tolist() == [[3, 4, 5], [9, 10, 11]]
    # the kept rows attend to 3 completion tokens at most: the last two columns go, from every token tensor
    assert out["completion_ids"].tolist() == [[5, 6, 7], [15, 16, 17]]
    assert torch.equal(out["ref_per_token_logps"], batch["ref_per_token_logps"][[1, 3], :3])
    assert out["num_items_in_batch"].item() == 11 and out["old_per_token_logps"] is None  # TRL's token count stays
    empty = take_rows(batch, torch.tensor([], dtype=torch.long))
    assert empty["completion_ids"].shape == (0, 1) and empty["advantages"].shape == (0,)
    with pytest.raises(ValueError, match="pixel_values"):
        take_rows({**batch, "pixel_values": torch.zeros(7, 2)}, torch.tensor([0]))


# --------------------------------------------------------------------------- the recipe option


def test_a_bad_value_is_one_line_naming_the_key(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        grpo.main([RECIPE, "flat_groups=sometimes", f"output_dir={tmp_path / 'run'}"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "`flat_groups`" in err and "drop | keep" in err, err


def test_flat_groups_is_for_grpo_only(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        validate.main([str(builtin("tiny_sft.yaml")), "flat_groups=drop", f"output_dir={tmp_path}"])
    assert exit_.value.code == 2 and "GRPO only" in capsys.readouterr().err


@pytest.mark.slow  # validate reads the tiny dataset (~5 s)
@pytest.mark.parametrize("override, expected", [([], "drop"), (["flat_groups=keep"], "keep")])
def test_validate_prints_the_setting(tmp_path, capsys, override, expected):
    validate.main([RECIPE, *override, f"output_dir={tmp_path / 'run'}"])
    out = capsys.readouterr().out
    assert f"\nflat_groups: {expected}\n" in out and f"ok: flat_groups {expected}:" in out, out


# --------------------------------------------------------------------------- real runs on the tiny model


def _log(run_dir):
    return json.loads((run_dir / "trainer_state.json").read_text())["log_history"]


def test_a_short_run_drops_flat_groups_logs_the_share_and_trains_only_the_rest(tiny_sft_run, tmp_path,
                                                                              monkeypatch):
    from trl import GRPOTrainer

    rows = []  # completions each loss pass ran on
    real = GRPOTrainer._compute_loss

    def counting(self, model, inputs):
        rows.append(inputs["completion_ids"].size(0))
        return real(self, model, inputs)

    monkeypatch.setattr(GRPOTrainer, "_compute_loss", counting)
    out = tmp_path / "run"
    grpo.main([RECIPE, f"model.adapter={tiny_sft_run}", f"output_dir={out}", "train.max_steps=6", *SHORT])
    steps = [e for e in _log(out) if "flat_groups_dropped" in e]
    assert len(steps) == 6
    dropped = [e["flat_groups_dropped"] for e in steps]
    # the same groups TRL counts as zero-spread, of 8 per step; from the SFT start some are, not all
    assert all(e["flat_groups_dropped"] == pytest.approx(e["frac_reward_zero_std"]) for e in steps), steps
    assert all(d * 8 == pytest.approx(round(d * 8)) for d in dropped) and 0 < sum(dropped) < 6, dropped
    assert sum(rows) == pytest.approx(sum(64 * (1 - d) for d in dropped)), (rows, dropped)
    assert all(r <= 32 for r in rows)
    assert all("reward" in e and "rewards/exact_match/mean" in e for e in steps)  # TRL's own metrics stay
    assert (out / "adapter_model.safetensors").is_file()


@pytest.fixture
def always_one(tmp_path, monkeypatch):
    (tmp_path / "flat_rewards.py").write_text(textwrap.dedent('''
        def always_one(completions, **kwargs):
            return [1.0 for _ in completions]
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    return "flat_rewards:always_one"


def test_a_step_whose_every_group_is_flat_runs_without_a_forward(tiny_sft_run, tmp_path, always_one):
    out = tmp_path / "run"
    grpo.main([RECIPE, f"model.adapter={tiny_sft_run}", f"output_dir={out}", f"rewards.0.name={always_one}",
               "train.max_steps=2", *SHORT])
    steps = [e for e in _log(out) if "flat_groups_dropped" in e]
    assert [e["flat_groups_dropped"] for e in steps] == [1.0, 1.0]
    assert all(e["loss"] == 0 and "entropy" not in e for e in steps), steps  # no loss pass ran
    assert (out / "adapter_model.safetensors").is_file()


def test_every_trained_answer_keeps_its_own_advantage(tiny_sft_run, tmp_path, monkeypatch):
    """Dropping rows must not shift them: a right answer (exact_match 1) in a mixed group trains with a positive
    advantage, a wrong one with a negative one."""
    from trl import GRPOTrainer

    rewards, signs = {}, []  # completion token ids -> the rewards they got; (reward, advantage) per trained row
    calculate, compute_loss = GRPOTrainer._calculate_rewards, GRPOTrainer.compute_loss

    def recording_rewards(self, inputs, prompts, completions, completion_ids_list):
        scores = calculate(self, inputs, prompts, completions, completion_ids_list)
        for ids, score in zip(completion_ids_list, scores[:, 0].tolist()):
            rewards.setdefault(tuple(ids), set()).add(score)
        return scores

    def checking_loss(self, model, inputs, *args, **kwargs):
        for ids, mask, advantage in zip(inputs["completion_ids"], inputs["completion_mask"], inputs["advantages"]):
            seen = rewards[tuple(ids[mask.bool()].tolist())]
            if len(seen) == 1 and advantage != 0:  # the same answer to two prompts may score both ways
                signs.append((next(iter(seen)), float(advantage)))
        return compute_loss(self, model, inputs, *args, **kwargs)

    monkeypatch.setattr(GRPOTrainer, "_calculate_rewards", recording_rewards)
    monkeypatch.setattr(GRPOTrainer, "compute_loss", checking_loss)
    grpo.main([RECIPE, f"model.adapter={tiny_sft_run}", f"output_dir={tmp_path / 'run'}", "train.max_steps=3",
               *SHORT])
    assert len(signs) >= 20 and {r for r, _ in signs} == {0.0, 1.0}, signs
    assert all((advantage > 0) == (reward == 1.0) for reward, advantage in signs), signs
