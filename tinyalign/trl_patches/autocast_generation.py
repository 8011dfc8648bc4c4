"""GRPO's generation under the same autocast as its log-prob passes and backward.

TRL runs `model.generate` outside `accelerator.autocast()`: on a GPU the weights are already bf16, so
nothing is lost. On a CPU tinyalign keeps fp32 weights and trains under bf16 autocast (models/precision.py),
and generation, most of a CPU GRPO step, would stay in fp32: it is wrapped here.
"""


def generate_under_autocast(trainer) -> None:
    if not (trainer.args.bf16 or trainer.args.fp16) or trainer.accelerator.device.type != "cpu":
        return
    generate = trainer._generate_single_turn

    def under_autocast(*args, **kwargs):
        with trainer.accelerator.autocast():
            return generate(*args, **kwargs)

    trainer._generate_single_turn = under_autocast
