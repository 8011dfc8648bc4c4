"""User mistakes end in one line, exit status 2 and no traceback; bugs still traceback."""

import argparse
import functools
import sys


class UserError(Exception):
    """A mistake the user can fix: the message names the thing and the fix."""


def _close_progress_bars() -> None:
    """A bar cut off by an error leaves the cursor mid-line: close open bars so the error gets its own line."""
    std = sys.modules.get("tqdm.std")
    for bar in list(getattr(getattr(std, "tqdm", None), "_instances", ())):
        bar.close()


def cli(main):
    """Wrap a command's main() so a UserError prints `error: ...` and exits 2. What a failed run leaves on
    disk is undone by its own guard before the error gets here (`training.run.guarded`)."""

    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            result = main(*args, **kwargs)
            _leave_process_group()
            return result
        except UserError as e:
            _close_progress_bars()
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return run


def _leave_process_group() -> None:
    """Under `accelerate launch`, wait for every process, then leave the process group: a rank that exits
    while the others still save, its gloo group open, can abort at exit ("terminate called without an
    active exception", exit -6) after a finished run, and the launcher then fails the whole run."""
    dist = sys.modules.get("torch.distributed")  # loaded only if the command used torch
    if dist is not None and dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


class ArgumentParser(argparse.ArgumentParser):
    """argparse whose usage mistakes read like every other mistake: one `error:` line, exit status 2."""

    def error(self, message):
        raise UserError(f"{message} (see {self.prog} --help)")

    def parse_args(self, args=None, namespace=None):
        # `probe RECIPE --k 2 train.x=1` is as valid as `probe RECIPE train.x=1 --k 2`: plain argparse takes
        # the positionals (the overrides) in one run only and calls the later ones unrecognized
        if self._subparsers is None:
            return self.parse_intermixed_args(args, namespace)
        return super().parse_args(args, namespace)


def positive_int(text: str) -> int:
    """argparse type for counts that must be at least 1 (--k, --prompts, --batch-size)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value
