"""The number format a run computes in on this hardware, and why (what `validate` prints).

GPU: bf16 where the card computes it natively, else fp16 (a T4); weights and compute alike.
CPU: fp32 weights. Where the CPU computes bf16 natively (AVX512-BF16, AMX-BF16, Arm BF16), the forward,
the backward and generation run under bf16 autocast while the LoRA weights and optimizer state stay
fp32, as mixed precision keeps them on a GPU; elsewhere bf16 is emulated and slower than fp32, so fp32.
`model.dtype` overrides: float32 turns autocast off, bfloat16 asks for it on any CPU (slowly where emulated).
"""

import contextlib
import functools
from dataclasses import dataclass
from pathlib import Path

# /proc/cpuinfo flags of native bf16 arithmetic, strongest first
CPU_BF16_FLAGS = {"amx_bf16": "AMX-BF16", "avx512_bf16": "AVX512-BF16", "bf16": "Arm BF16"}


@dataclass(frozen=True)
class Precision:
    weights: str  # the dtype the base model loads in
    autocast: "str | None"  # CPU only: the dtype matmuls run in under torch.autocast, or None
    reason: str  # one line for `validate` and the console

    @property
    def compute(self) -> str:
        """What the matmuls run in (a 4-bit base's compute dtype)."""
        return self.autocast or self.weights

    def describe(self) -> str:
        what = f"{self.autocast} autocast over {self.weights} weights" if self.autocast else self.weights
        return f"{what}: {self.reason}"


@functools.cache
def cpu_bf16() -> "str | None":
    """This CPU's native bf16 instructions by name (e.g. "AVX512-BF16"), or None."""
    try:
        return native_bf16(Path("/proc/cpuinfo").read_text())
    except OSError:
        return None


def native_bf16(cpuinfo: str) -> "str | None":
    """The native bf16 instructions a /proc/cpuinfo text lists (its `flags`, or an Arm CPU's `Features`)."""
    flags = set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return next((name for flag, name in CPU_BF16_FLAGS.items() if flag in flags), None)


def choose(dtype: str = "auto", cuda: "bool | None" = None) -> Precision:
    """The precision for `model.dtype` (auto, bfloat16, float16, float32) on this machine."""
    import torch

    cuda = torch.cuda.is_available() if cuda is None else cuda
    if cuda:
        if dtype != "auto":
            return Precision(dtype, None, "model.dtype")
        # a T4 "supports" bf16 only by emulation, which is slow: count native support only
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return Precision("bfloat16", None, "this GPU computes bf16 natively")
        return Precision("float16", None, "this GPU has no native bf16")
    native = cpu_bf16()
    if dtype == "auto":
        if native:
            return Precision("float32", "bfloat16", f"this CPU has {native}")
        return Precision("float32", None, "this CPU has no native bf16 (emulated bf16 is slower than fp32)")
    if dtype == "bfloat16":
        if native:
            return Precision("float32", "bfloat16", f"model.dtype, and this CPU has {native}")
        return Precision("float32", "bfloat16", "model.dtype; this CPU has no native bf16, so it is emulated: slow")
    return Precision(dtype, None, "model.dtype")


def mark(model, precision: Precision):
    """Tag a loaded model with its CPU autocast dtype, which `autocast(model)` reads back (PEFT wrappers
    forward the attribute to the model they wrap)."""
    model.tinyalign_autocast = precision.autocast
    return model


def answering_only(model):
    """`model` (a judge this process never trains) with its weights in its autocast dtype, autocast off:
    recasting fp32 weights at every decoding step costs more than the step itself."""
    dtype = getattr(model, "tinyalign_autocast", None)
    quantized = getattr(model, "hf_quantizer", None) is not None  # 4-bit weights stay as they are
    if dtype is not None and not quantized and next(model.parameters()).device.type == "cpu":
        import torch

        model.to(getattr(torch, dtype))
        model.tinyalign_autocast = None
    return model


def autocast(model):
    """The autocast context a model loaded by tinyalign computes in: bf16 on a CPU that has it, else none.
    Autocast is per thread: a generation thread enters its own."""
    import torch

    dtype = getattr(model, "tinyalign_autocast", None)
    if dtype is None or next(model.parameters()).device.type != "cpu":
        return contextlib.nullcontext()
    return torch.autocast("cpu", dtype=getattr(torch, dtype))
