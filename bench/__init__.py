"""tinyalign's benchmarks (speed and memory against plain TRL, side by side in one run) and studies (each
reproduces one section of bench/RESULTS.md with one command). Run from the repository root as modules:

    python -m bench.benchmarks.grpo_overhead --steps 20 --rounds 2
    python -m bench.studies.doctor_corpus --table-only

Every script goes through bench/harness.py: thread pinning, the methods' library entry point, a JSON record
per run (commit, hardware, versions, command, figures) and the Markdown tables.
"""
