"""Math equivalence with a hard time bound, from any thread: math-verify runs in a child process.

Why a process: math-verify bounds its work with `signal.alarm`, which only works in the main thread,
and even there an alarm cannot interrupt one long C-level step (sympy evaluating `9^{9^{9}}` never
returns). So `equivalent` sends each comparison to a child process (`mathworker.py`), waits at most
`timeout` seconds plus a short grace for the reply, and kills and replaces the child when it
overruns. Inside the child a timer stops ordinary slow Python work first, which keeps kills rare.
"""

import atexit
import json
import os
import queue
import subprocess
import sys
import threading

GRACE_SECONDS = 0.5  # the child's own timer fires at `timeout`; the kill only comes after this grace
STARTUP_SECONDS = 120.0  # importing sympy on a cold, busy CI box can take a while
_WORKER_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mathworker.py")


class MathWorkerError(RuntimeError):
    """The math-verify child process could not start (a broken environment, not a bad answer)."""


class _Worker:
    """One child process and a thread that turns its stdout into a queue (portable read-with-timeout)."""

    def __init__(self):
        self.pid_of_owner = os.getpid()
        # run_path, not `-m`: the child imports only math-verify, never tinyalign or what it imports.
        self.process = subprocess.Popen(
            [sys.executable, "-c", "import runpy, sys; runpy.run_path(sys.argv[1], run_name='__main__')", _WORKER_FILE],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            text=True, encoding="utf-8", bufsize=1,
        )
        self.replies = queue.SimpleQueue()
        threading.Thread(target=self._pump, daemon=True, name="mathcheck-reader").start()
        self.ready = False

    def _pump(self):
        try:
            with self.process.stdout:
                for line in self.process.stdout:
                    self.replies.put(line)
        except (OSError, ValueError):
            pass
        self.replies.put(None)  # end of file: the child died or was killed

    def wait_ready(self):
        try:
            reply = json.loads(self.replies.get(timeout=STARTUP_SECONDS) or '"no reply"')
        except (queue.Empty, ValueError):
            reply = "no reply"
        if reply != "ready":
            self.close()
            raise MathWorkerError(
                f"math_accuracy could not start math-verify in a child process ({reply}); "
                "check that `python -c 'import math_verify'` works"
            )
        self.ready = True

    def ask(self, request: list, timeout: float):
        """The child's reply, or raises TimeoutError / EOFError when it overran or died."""
        if not self.ready:
            self.wait_ready()
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
        except OSError as e:  # the child is gone (broken pipe)
            raise EOFError from e
        try:
            line = self.replies.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError from None
        if line is None:
            raise EOFError
        return json.loads(line)

    def close(self):
        self.process.kill()
        self.process.wait()
        try:
            self.process.stdin.close()
        except OSError:  # a request was still buffered for the dead child
            pass


_lock = threading.Lock()
_worker: _Worker | None = None


def equivalent(gold: str, pred: str, timeout: float = 1.0) -> bool | None:
    """Does `pred` equal `gold` by math-verify (both LaTeX without `$`)? None if gold cannot be parsed.

    Takes at most about `timeout` + 0.5 s, in any thread; an overrun counts as not equal. The child
    starts on first use (about a second) and is reused; calls from several threads take turns.
    """
    global _worker
    with _lock:
        # A forked process shares its parent's pipes; it must start its own child.
        if _worker is None or _worker.pid_of_owner != os.getpid():
            _worker = _Worker()
        try:
            return _worker.ask([gold, pred, timeout], timeout + GRACE_SECONDS)
        except (TimeoutError, EOFError):
            _worker.close()
            _worker = _Worker()  # start the replacement now, so its import overlaps other work
            return False


@atexit.register
def _stop_worker():
    if _worker is not None and _worker.pid_of_owner == os.getpid():
        _worker.close()
