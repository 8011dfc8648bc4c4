"""tinyalign COMMAND [ARGS ...] — every command of the kit under one name.

`tinyalign grpo RECIPE key=value ...` is `python -m tinyalign.grpo RECIPE key=value ...`: each
command is that module's own main(), with the same arguments and `--help`.
"""

import importlib
import sys

# command -> (module, what it does). Modules are imported only when their command runs: `--help`
# stays instant, with no torch import.
COMMANDS = {
    "sft": ("tinyalign.sft", "4-bit QLoRA supervised fine-tuning from a recipe"),
    "dpo": ("tinyalign.dpo", "4-bit QLoRA DPO on preference pairs"),
    "grpo": ("tinyalign.grpo", "4-bit QLoRA GRPO with rule rewards"),
    "rm": ("tinyalign.rm", "a 4-bit QLoRA reward model from preference pairs"),
    "validate": ("tinyalign.validate", "check a recipe and print the settings the run will use"),
    "probe": ("tinyalign.probe", "is RL viable from this model? pass@k before GRPO"),
    "sample": ("tinyalign.sample", "rejection sampling: the best of K answers per prompt, as JSONL"),
    "evaluate": ("tinyalign.evaluate", "score the base, each checkpoint and the final adapter on held-out prompts"),
    "doctor": ("tinyalign.doctor", "read a run's logs: what is going wrong and which overrides to try"),
    "export": ("tinyalign.export", "a run as a standalone model: the adapter alone, or merged into its base"),
    "app": ("tinyalign.app", "the side-by-side arena: chat with checkpoints, vote"),
    "prefs": ("tinyalign.prefs", "the vote store: export votes as DPO pairs (or SFT rows), their statistics"),
    "judge": ("tinyalign.judge", "a pairwise reasoning judge trained from votes"),
    "loop": ("tinyalign.loop", "policy and reward model trained together, offline, with simulated annotators"),
    "demo": ("tinyalign.demo", "the offline end-to-end demo on CPU"),
    "demo_real": ("tinyalign.demo_real", "the same practice on a real model (SmolLM2-135M), offline, on CPU"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [__doc__.splitlines()[0], "", "commands:"]
    lines += [f"  {name:<{width}}  {summary}" for name, (_, summary) in COMMANDS.items()]
    lines += ["", "`tinyalign COMMAND --help` shows a command's arguments; `python -m tinyalign.COMMAND` is the same.",
              "The built-in recipes are found by name from any folder: tinyalign validate recipes/tiny_sft.yaml"]
    return "\n".join(lines)


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(usage())
        return
    if argv[0] in ("-V", "--version"):
        from tinyalign import __version__

        print(f"tinyalign {__version__}")
        return
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        from tinyalign.core.names import did_you_mean

        hint = did_you_mean(name, COMMANDS, form="did you mean {}? ")
        print(f"error: no command {name!r}; {hint}commands: {', '.join(COMMANDS)} (see tinyalign --help)",
              file=sys.stderr)
        sys.exit(2)
    module = importlib.import_module(COMMANDS[name][0])
    sys.argv = [f"tinyalign {name}", *rest]  # what a command that reads sys.argv itself sees
    module.main(rest)


if __name__ == "__main__":
    main()
