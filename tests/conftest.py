"""Shared fixtures: one tiny SFT run per test session, reused by every test that needs an adapter."""

import os

# Tiny models' matmuls are too small to split across threads; with parallel processes in a test
# (an app server, concurrent writers) OpenMP threads only spin against each other (40x slower).
# Set, not defaulted: tests compare runs trained in this process and in subprocesses (a resumed run
# against an uninterrupted one), and float sums differ with the thread count; with OMP_NUM_THREADS=2
# exported, an RM run resumed at 1 thread ended 2e-4 away from the same run at 2.
os.environ["OMP_NUM_THREADS"] = "1"

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def tiny_sft_run(tmp_path_factory) -> Path:
    """recipes/tiny_sft.yaml trained once (4-bit QLoRA, ~30 s on CPU); the run directory."""
    from tinyalign import sft
    from tinyalign.config.recipe import builtin

    out = tmp_path_factory.mktemp("runs") / "tiny_sft"
    sft.main([str(builtin("tiny_sft.yaml")), f"output_dir={out}"])
    return out


def pytest_collection_modifyitems(items):
    """A test that uses tiny_sft_run (directly or through another fixture) waits for a training run:
    it is slow, and `make test-fast` (pytest -m "not slow") leaves it out."""
    for item in items:
        if "tiny_sft_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
