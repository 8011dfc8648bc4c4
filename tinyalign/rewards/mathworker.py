"""The child side of `mathcheck`: compares answers with math-verify, one JSON line in, one out.

`mathcheck` runs this file as a script; it imports nothing from tinyalign. It prints `"ready"`, then
for each request line `[gold, pred, timeout]` prints `true`, `false`, or `null` when the gold answer cannot be parsed (or
is itself unboundedly expensive to evaluate). A timer stops ordinary slow work after `timeout`
seconds; expressions whose evaluation size cannot be bounded (power towers, huge factorials) are
refused before sympy evaluates them, because no timer can interrupt that C-level work.
"""

import functools
import json
import logging
import signal
import sys

# Limits on what may be evaluated. Real answers stay far below them (10^{18}, 2^{64}, 20!, (x+1)^{5}).
MAX_EXPONENT = 10_000
MAX_EXPANDED_EXPONENT = 64  # for powers of sums, (x+1)^{n}: expanding is slow long before n is huge
MAX_FACTORIAL = 10_000


def too_costly(expr) -> bool:
    """Would evaluating `expr` take unbounded time? e.g. 9^{9^{9}}, 2^{10^{9}}, (10^{10})!, (x+1)^{500}."""
    from sympy import Basic, Pow, binomial, factorial, factorial2, preorder_traversal, subfactorial

    if not isinstance(expr, Basic):
        return False  # a plain string answer, compared as text
    growing = (Pow, factorial, factorial2, subfactorial, binomial)

    def big(number, limit) -> bool:
        if number.has(*growing):
            return True  # a tower: its size is only known by computing it
        try:
            return abs(float(number)) > limit
        except (TypeError, ValueError, OverflowError):
            return True  # complex, infinite or undefined: not worth evaluating

    for node in preorder_traversal(expr):
        if isinstance(node, Pow) and not node.exp.free_symbols:
            if big(node.exp, MAX_EXPONENT):
                return True
            if node.base.free_symbols and not node.base.is_Atom and big(node.exp, MAX_EXPANDED_EXPONENT):
                return True
        elif isinstance(node, growing[1:]):
            if any(not arg.free_symbols and big(arg, MAX_FACTORIAL) for arg in node.args):
                return True
    return False


class Overrun(BaseException):
    """Raised by the timer; a BaseException so math-verify's `except Exception` cannot swallow it."""


def _on_timer(signum, frame):
    raise Overrun


def serve():
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    # math-verify's own timeouts stay off (they would fight our timer); silence its warning about that.
    logging.disable(logging.CRITICAL)

    @functools.lru_cache(maxsize=1024)  # a GRPO group asks about the same gold answer k times
    def parsed(latex: str):
        extracted = parse(f"${latex}$", [LatexExtractionConfig(), ExprExtractionConfig()], parsing_timeout=None)
        return None if not extracted or any(too_costly(e) for e in extracted) else extracted

    def compare(gold: str, pred: str) -> bool | None:
        gold_parsed = parsed(gold)
        if gold_parsed is None:
            return None
        pred_parsed = parsed(pred)
        return pred_parsed is not None and verify(gold_parsed, pred_parsed, timeout_seconds=None)

    # Replies go to the real stdout; anything a library prints goes to stderr, so that it cannot
    # be mistaken for a reply.
    replies, sys.stdout = sys.stdout, sys.stderr
    timer = hasattr(signal, "setitimer")  # not on Windows: there the parent's kill is the only bound
    if timer:
        signal.signal(signal.SIGALRM, _on_timer)
    print(json.dumps("ready"), file=replies, flush=True)
    for line in sys.stdin:
        gold, pred, seconds = json.loads(line)
        try:
            try:
                if timer:
                    signal.setitimer(signal.ITIMER_REAL, seconds)
                reply = compare(gold, pred)
            finally:
                if timer:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except Overrun:
            reply = False
        except Exception:  # a parser bug must cost one comparison, not the worker
            reply = False
        print(json.dumps(reply), file=replies, flush=True)


if __name__ == "__main__":
    try:
        serve()
    except ImportError as e:
        print(json.dumps(f"{type(e).__name__}: {e}"), flush=True)
