"""The GPU benchmark's offline wheel bundle: slimmed wheels keep what the GPU machine loads, and install."""

import importlib.util
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("gpu_wheels", ROOT / "bench" / "gpu_wheels.py")
gpu_wheels = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gpu_wheels)


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
