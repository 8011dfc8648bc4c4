"""python -m bench.benchmarks.gpu_wheels [--dir .gpu-wheels] — the wheels the GPU benchmark (gpu_grpo) needs on a
bare CUDA machine.

Such a machine (NOTES-STACK.md) has Python 3.12, torch (CUDA 13), transformers, peft and accelerate,
but no package index, and no trl, bitsandbytes, datasets, math-verify or unsloth. Their wheels travel
with the checkout, in a git-ignored folder, and checkout + wheels must stay under 64 MiB. Run this on
any machine with pip and an index (`make gpu-wheels`): it downloads the wheels for the target
(CPython 3.12, manylinux x86_64), slims the two big ones, and checks the total.

Slimmed, and why it is safe:
    bitsandbytes  43 MB, of which ~38 MB are native libraries for CUDA 11.8-12.8 and ROCm; it loads
                  the one that matches torch.version.cuda, so a CUDA 13 machine needs only cuda13x.
    unsloth       28.6 MB, of which most is `studio/` (its web UI and inference server), never
                  imported by training.
On the GPU machine: `make gpu-bench` (installs them with --no-index into a folder on PYTHONPATH).
A tool beside the benchmark, not a measurement; its record holds the bundle's sizes.
"""

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

from bench import harness

ROOT = harness.ROOT
LIMIT_MIB = 64
TARGET = ["--python-version", "3.12", "--implementation", "cp", "--only-binary=:all:",
          *[arg for p in ("manylinux_2_28_x86_64", "manylinux_2_24_x86_64", "manylinux_2_17_x86_64",
                          "manylinux2014_x86_64") for arg in ("--platform", p)]]
WHEELS = [
    # the GRPO baseline and tinyalign's training path
    "trl==1.14.2", "bitsandbytes==0.50.2",
    "datasets==4.8.5", "dill==0.4.1", "multiprocess==0.70.19", "xxhash==3.6.0",
    "requests==2.34.2", "urllib3", "idna", "certifi", "charset_normalizer",  # datasets imports requests
    # the recipe's math_accuracy reward
    "math-verify==0.9.0", "latex2sympy2_extended==1.10.2", "antlr4-python3-runtime==4.13.2",
    # the unsloth backend and what it imports at load time
    "unsloth==2026.10.9", "unsloth_zoo==2026.10.9", "tyro", "docstring-parser", "shtab", "typeguard", "msgspec",
    "cut_cross_entropy", "sentencepiece", "einops", "hf_transfer", "torchao==0.18.0",
]
# (wheel name prefix, keep-this-member predicate)
SLIM = {
    "bitsandbytes-": lambda name: not (name.endswith(".so") and "libbitsandbytes_" in name)
                                  or "_cuda13" in name or "_cpu" in name,
    "unsloth-2": lambda name: not name.startswith("studio/"),
}


def download(folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", *TARGET, "-d", str(folder), *WHEELS],
                   check=True)


def slim(wheel: Path, keep) -> None:
    """Rewrite `wheel` without the members `keep` rejects (RECORD too); idempotent."""
    with zipfile.ZipFile(wheel) as source:
        names = source.namelist()
        dropped = {n for n in names if not keep(n)}
        if not dropped:
            return
        tmp = wheel.with_suffix(".tmp")
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as out:
            for name in names:
                if name in dropped:
                    continue
                data = source.read(name)
                if name.endswith(".dist-info/RECORD"):
                    data = "".join(line for line in data.decode().splitlines(keepends=True)
                                   if line.split(",", 1)[0] not in dropped).encode()
                out.writestr(source.getinfo(name), data)
    tmp.replace(wheel)
    print(f"slimmed {wheel.name}: dropped {len(dropped)} files")


def checkout_bytes() -> int:
    """What travels with the checkout: tracked files and untracked ones git does not ignore."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    return sum((ROOT / f).stat().st_size for f in files if f and (ROOT / f).is_file())


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.benchmarks.gpu_wheels", description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=str(ROOT / ".gpu-wheels"), help="where the wheels go (git-ignored)")
    parser.add_argument("--no-download", action="store_true", help="only slim and check what is there")
    harness.add_record_arg(parser)
    args = parser.parse_args(argv)
    folder = Path(args.dir)
    if not args.no_download:
        download(folder)
    wheels = sorted(folder.glob("*.whl"))
    for wheel in wheels:
        for prefix, keep in SLIM.items():
            if wheel.name.startswith(prefix):
                slim(wheel, keep)
    sizes = {w.name: w.stat().st_size for w in wheels}
    checkout = checkout_bytes()
    total = checkout + sum(sizes.values())
    rows = [(f"{size / 2**20:.2f}", name) for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])]
    rows += [(f"{checkout / 2**20:.2f}", "checkout (tracked + untracked, not ignored)"),
             (f"{total / 2**20:.2f}", f"total; limit {LIMIT_MIB} MiB")]
    print(harness.table(rows, ["MiB", "what"]))
    harness.record("gpu_wheels", {"wheels_bytes": sizes, "checkout_bytes": checkout, "total_bytes": total,
                                  "limit_mib": LIMIT_MIB}, args.record)
    if total >= LIMIT_MIB * 2**20:
        print(f"error: checkout + wheels are {total / 2**20:.1f} MiB, over {LIMIT_MIB} MiB", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
