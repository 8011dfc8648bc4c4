"""CPU threads: a busy box gets fewer torch threads instead of OpenMP threads spinning against it."""

import os

from tinyalign.core import threads as cpu


def threads(monkeypatch, cores=2, now=0.0, omp=None, load=0.0) -> int:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    if omp:
        monkeypatch.setenv("OMP_NUM_THREADS", omp)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cores)))
    monkeypatch.setattr(os, "getloadavg", lambda: (load, load, load))
    monkeypatch.setattr(cpu, "_busy_now", lambda cores: now)
    return cpu.cpu_threads()


def test_a_quiet_box_gets_every_core_and_a_busy_one_what_is_left(monkeypatch):
    assert threads(monkeypatch, cores=2, now=0.1) == 2
    assert threads(monkeypatch, cores=2, now=1.0) == 1  # one busy neighbour
    assert threads(monkeypatch, cores=8, now=2.2) == 6
    assert threads(monkeypatch, cores=2, now=2.0) == 1  # never zero
    # a job that ended a moment ago leaves the 1-minute load average high, and takes no core now
    assert threads(monkeypatch, cores=2, now=0.0, load=2.5) == 2


def test_omp_num_threads_wins(monkeypatch):
    assert threads(monkeypatch, cores=2, load=9.0, omp="2") == 2


def test_busy_now_counts_a_spinning_neighbour():
    import subprocess
    import sys

    cores = sorted(os.sched_getaffinity(0))
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        assert cpu._busy_now(cores, window=0.5) >= 0.8
    finally:
        spinner.kill()
        spinner.wait()
