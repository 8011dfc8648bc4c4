"""How many torch threads a CPU run should use: the cores other processes leave free."""

import os


def cpu_threads() -> int:
    """Torch threads for a CPU run: the cores other processes leave free (at least one).

    OpenMP threads that find their core taken spin-wait against the other process: on a 2-core box
    beside one busy process, a 2-thread GRPO step on SmolLM2 took 4-13x its time on a quiet box.
    Busy means busy now: a second of /proc/stat. Not the load average: it lingers for a minute after
    a job ends, and a demo started right after the tests would run on one thread, 1.7x as long.
    OMP_NUM_THREADS, when set, wins.
    """
    if os.environ.get("OMP_NUM_THREADS", "").isdigit():
        return max(1, int(os.environ["OMP_NUM_THREADS"]))
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    others = _busy_now(cores)
    return max(1, min(len(cores), round(len(cores) - others)))


def _busy_now(cores: list[int], window: float = 1.0) -> float:
    """How many of `cores` were busy over the last `window` seconds (Linux; 0 elsewhere)."""
    import time

    def snapshot():
        idle = total = 0
        with open("/proc/stat") as f:
            for line in f:
                name, *ticks = line.split()
                if name[3:].isdigit() and int(name[3:]) in cores:
                    ticks = [int(t) for t in ticks[:8]]
                    idle, total = idle + ticks[3] + ticks[4], total + sum(ticks)
        return idle, total

    try:
        idle0, total0 = snapshot()
        time.sleep(window)
        idle1, total1 = snapshot()
    except OSError:
        return 0.0
    return len(cores) * (1 - (idle1 - idle0) / max(1, total1 - total0))


def use_cpu_threads() -> None:
    """Set torch's thread count by cpu_threads(), once per process, when there is no GPU."""
    import torch

    global _threads_set
    if not _threads_set and not torch.cuda.is_available():
        torch.set_num_threads(cpu_threads())
        _threads_set = True


_threads_set = False
