"""GRPO at num_iterations > 1: the old log-probs come from each generated batch's first update instead of
TRL's extra forward over the batch, and they are the numbers TRL's own pass computes."""

import pytest
import torch

from tinyalign import grpo
from tinyalign.config.recipe import builtin
from tinyalign.trl_patches import old_logps

RECIPE = str(builtin("tiny_grpo.yaml"))
# two updates of each generated batch (mu 2), each over two micro-batches; no LoRA dropout, so that TRL's pass
# and the first update draw nothing from the random stream the next generation samples from
MU_2 = ["train.num_iterations=2", "train.per_device_train_batch_size=32", "train.gradient_accumulation_steps=2",
        "train.max_steps=4", "train.learning_rate=1e-3", "train.warmup_steps=0", "train.logging_steps=1",
        "train.save_strategy=no", "model.lora.dropout=0", "probe=false"]


def _run(tiny_sft_run, out, monkeypatch, reuse: bool, flat_groups: str):
    """One short mu-2 run; the old log-probs each loss pass used, and how many log-prob passes ran."""
    from trl import GRPOTrainer

    used, forwards = [], []
    compute_loss, logps = GRPOTrainer.compute_loss, GRPOTrainer._get_per_token_logps_and_entropies

    def recording_loss(self, model, inputs, *args, **kwargs):
        loss = compute_loss(self, model, inputs, *args, **kwargs)
        used.append(inputs["old_per_token_logps"].clone())
        return loss

    def counting(self, *args, **kwargs):
        forwards.append(1)
        return logps(self, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(GRPOTrainer, "compute_loss", recording_loss)
        patch.setattr(GRPOTrainer, "_get_per_token_logps_and_entropies", counting)
        if not reuse:
            patch.setattr(old_logps, "applies", lambda trainer: False)
        grpo.main([RECIPE, f"model.adapter={tiny_sft_run}", f"output_dir={out}", f"flat_groups={flat_groups}", *MU_2])
    return used, len(forwards)


@pytest.mark.parametrize("flat_groups", ["keep", "drop"])
def test_old_log_probs_from_the_first_update_are_trl_s_and_save_one_pass_per_batch(tiny_sft_run, tmp_path,
                                                                                   monkeypatch, flat_groups):
    reused, reused_forwards = _run(tiny_sft_run, tmp_path / "reuse", monkeypatch, True, flat_groups)
    trl, trl_forwards = _run(tiny_sft_run, tmp_path / "trl", monkeypatch, False, flat_groups)
    # each loss pass used the old log-probs of the weights that sampled its batch, as TRL's own pass computed them
    # (on the kept rows where flat groups drop)
    assert len(reused) == len(trl)
    for mine, theirs in zip(reused, trl):
        assert mine.shape == theirs.shape
        assert torch.allclose(mine, theirs, atol=1e-5), (mine - theirs).abs().max()
    if flat_groups == "drop":  # a micro-batch of flat groups only would run no loss pass: counts vary by CPU
        assert reused_forwards < trl_forwards
        return
    # 2 generated batches x 2 updates x 2 micro-batches; the second update of each batch reads the very
    # log-probs its first update kept (micro-batches 0, 1, 0, 1)
    assert len(reused) == 8
    assert all(torch.equal(reused[i], reused[i + 2]) for i in (0, 1, 4, 5))
    # one log-prob pass over each generated batch fewer (per run: 8 loss passes, 2 reference passes, and TRL's 2)
    assert (trl_forwards, reused_forwards) == (12, 10)


def test_mu_1_misaligned_generation_and_other_losses_keep_trl_s_path():
    from types import SimpleNamespace as NS

    from trl import GRPOTrainer

    class CompiledLoss(GRPOTrainer):  # as unsloth's trainer: a loss of its own, not reading the hooked method
        def _compute_loss(self, model, inputs):
            raise NotImplementedError

    def trainer(mu, per_generation, accumulation, cls=GRPOTrainer):
        built = cls.__new__(cls)  # the settings `applies` reads, without building a model
        built.num_iterations, built.use_vllm, built.use_liger_kernel = mu, False, False
        built.args = NS(steps_per_generation=per_generation, gradient_accumulation_steps=accumulation)
        return built

    assert old_logps.applies(trainer(2, 4, 4))
    assert not old_logps.applies(trainer(1, 4, 4))  # TRL already skips the pass
    assert not old_logps.applies(trainer(2, 4, 2))  # the first update's second half would run on new weights
    assert not old_logps.applies(trainer(2, 4, 4, CompiledLoss))
