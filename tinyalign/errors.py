"""User mistakes end in one line, exit status 2 and no traceback; bugs still traceback."""

import functools
import sys


class UserError(Exception):
    """A mistake the user can fix: the message names the thing and the fix."""


def cli(main):
    """Wrap a command's main() so a UserError prints `error: ...` and exits 2."""

    @functools.wraps(main)
    def run(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return run
