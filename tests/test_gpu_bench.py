"""The GPU benchmark's offline wheel bundle: slimmed wheels keep what the GPU machine loads, and install.
And bench's shared harness (bench/harness.py), which every benchmark and study writes its record through."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

from bench import harness
from bench.benchmarks import gpu_wheels

ROOT = Path(__file__).resolve().parent.parent


def fake_wheel(folder: Path, name: str, members: list[str]) -> Path:
    wheel = folder / f"{name}-1.0-py3-none-any.whl"
    info = f"{name}-1.0.dist-info"
    with zipfile.ZipFile(wheel, "w") as z:
        for member in members:
            z.writestr(member, "x")
        z.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
        z.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        z.writestr(f"{info}/RECORD", "".join(f"{m},,\n" for m in [*members, f"{info}/METADATA", f"{info}/WHEEL"])
                   + f"{info}/RECORD,,\n")
    return wheel


def test_bitsandbytes_keeps_only_the_cuda13_and_cpu_libraries_and_still_installs(tmp_path):
    libs = [f"bitsandbytes/libbitsandbytes_{v}.so" for v in ("cpu", "cuda118", "cuda128", "cuda130", "cuda132", "rocm71")]
    wheel = fake_wheel(tmp_path, "bitsandbytes", ["bitsandbytes/__init__.py", *libs])
    gpu_wheels.slim(wheel, gpu_wheels.SLIM["bitsandbytes-"])
    with zipfile.ZipFile(wheel) as z:
        kept = {n for n in z.namelist() if n.endswith(".so")}
        record = z.read("bitsandbytes-1.0.dist-info/RECORD").decode()
    assert kept == {f"bitsandbytes/libbitsandbytes_{v}.so" for v in ("cpu", "cuda130", "cuda132")}
    assert "cuda128" not in record and "cuda130" in record
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--target",
                    str(tmp_path / "site"), str(wheel)], check=True)
    assert (tmp_path / "site" / "bitsandbytes" / "libbitsandbytes_cuda130.so").is_file()


def test_unsloth_drops_its_studio_app_only():
    keep = gpu_wheels.SLIM["unsloth-2"]
    assert keep("unsloth/models/llama.py") and keep("unsloth-2026.10.9.dist-info/RECORD")
    assert not keep("studio/frontend/dist/assets/chat.js")


# ---------------------------------------------------------------- the harness


def test_a_record_names_the_commit_the_machine_the_versions_and_the_command(tmp_path, monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    argv = [str(ROOT / "bench" / "benchmarks" / "real_cpu.py"), "--threads", "1", "--rounds", "3"]
    path = harness.record("real_cpu", {"step_s": 14.7}, tmp_path / "r.json", argv=argv)
    entry = json.loads(path.read_text())
    assert entry["command"] == "OMP_NUM_THREADS=1 python -m bench.benchmarks.real_cpu --threads 1 --rounds 3"
    assert len(entry["commit"]["sha"]) == 40 and isinstance(entry["commit"]["dirty"], bool)
    assert entry["hardware"]["cores"] >= 1 and set(entry["hardware"]["cpu_flags"]) == set(harness.CPU_FLAGS)
    assert set(entry["versions"]) >= {"torch", "transformers", "trl", "peft", "bitsandbytes"}
    assert entry["figures"] == {"step_s": 14.7} and entry["date"][:4].isdigit()


def test_record_paths_do_not_overwrite_a_day_s_earlier_record(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "RECORDS", tmp_path)
    first = harness.record_path("x")
    first.write_text("{}")
    assert harness.record_path("x") != first and harness.record_path("x").name.startswith("x-")


def test_tables_right_align_columns_of_numbers_and_print_none_as_a_dash():
    text = harness.table([{"variant": "plain TRL", "s/step": "2.170", "note": None},
                          {"variant": "tinyalign", "s/step": "1.656", "note": "x"}])
    assert text.splitlines() == ["| variant | s/step | note |", "|---|---:|---|",
                                 "| plain TRL | 2.170 | - |", "| tinyalign | 1.656 | x |"]


def test_overrides_given_as_a_mapping_read_back_as_the_same_values():
    from tinyalign.config.recipe import apply_override

    given = {"data.completion": "{completion}", "data.test_split": None, "train.learning_rate": 2e-4,
             "a.b": "yes", "rewards": [{"name": "reward_model", "model": "runs/rm"}], "data.source": Path("/x")}
    raw = {}
    for item in harness.as_overrides(given):
        apply_override(raw, item)
    assert raw == {"data": {"completion": "{completion}", "test_split": None, "source": "/x"},
                   "train": {"learning_rate": 2e-4}, "a": {"b": "yes"},
                   "rewards": [{"name": "reward_model", "model": "runs/rm"}]}


def test_bench_scripts_run_as_modules_with_no_path_edits():
    scripts = sorted((ROOT / "bench").rglob("*.py"))
    assert {p.parent.name for p in scripts} == {"bench", "benchmarks", "studies"}
    assert [p for p in scripts if "sys.path" in p.read_text()] == []
    for path in scripts:
        if path.name != "__init__.py" and path.parent.name != "bench":
            out = subprocess.run([sys.executable, "-m", ".".join(path.relative_to(ROOT).with_suffix("").parts),
                                  "--help"], cwd=ROOT, capture_output=True, text=True, timeout=120)
            assert out.returncode == 0 and "--record" in out.stdout, (path, out.stderr[-1000:])
