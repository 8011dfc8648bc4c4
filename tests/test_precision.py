"""The precision a run computes in: bf16 autocast over fp32 weights on a CPU that has native bf16, fp32
elsewhere, `model.dtype` over both; what the trainers are told and what inference runs under."""

import pytest
import torch

from tinyalign.config.recipe import Model
from tinyalign.models import loading, precision

ZEN5 = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n"
SAPPHIRE = "flags\t\t: avx512f avx512_bf16 amx_bf16 amx_tile\n"
GRAVITON3 = "Features\t: fp asimd sve bf16 i8mm\n"


@pytest.mark.parametrize("cpuinfo, named", [(ZEN5, "AVX512-BF16"), (SAPPHIRE, "AMX-BF16"), (GRAVITON3, "Arm BF16"),
                                            (SKYLAKE, None), ("", None)])
def test_native_bf16_is_read_from_the_cpu_flags(cpuinfo, named):
    assert precision.native_bf16(cpuinfo) == named


@pytest.fixture
def cpu(monkeypatch):
    """A CPU-only machine whose bf16 support the test sets."""
    monkeypatch.setattr(loading, "has_cuda", lambda: False)

    def with_bf16(name):
        monkeypatch.setattr(precision, "cpu_bf16", lambda: name)
    return with_bf16


def test_a_cpu_with_native_bf16_trains_under_autocast_over_fp32_weights(cpu):
    cpu("AVX512-BF16")
    spec = Model(name="tiny:qwen2-1m")
    chosen = loading.precision(spec)
    assert (chosen.weights, chosen.autocast) == ("float32", "bfloat16")
    assert "AVX512-BF16" in chosen.describe()
    assert loading.hardware_args(spec)["bf16"] is True and loading.hardware_args(spec)["use_cpu"] is True
    assert loading.weights_dtype(spec) == torch.float32 and loading.compute_dtype(spec) == torch.bfloat16


def test_a_cpu_without_it_stays_fp32_and_float32_turns_autocast_off(cpu):
    cpu(None)
    assert loading.hardware_args(Model(name="m"))["bf16"] is False
    assert loading.compute_dtype(Model(name="m")) == torch.float32
    cpu("AMX-BF16")
    assert loading.hardware_args(Model(name="m", dtype="float32"))["bf16"] is False


def test_bfloat16_asked_of_a_cpu_without_it_runs_emulated_with_a_note(cpu, capsys):
    cpu(None)
    spec = Model(name="tiny:qwen2-1m", quantization="none", dtype="bfloat16")
    assert loading.hardware_args(spec)["bf16"] is True  # asked for: it runs, slowly
    assert "emulated" in loading.precision(spec).reason
    base = loading.load_base(spec, loading.load_tokenizer(spec))
    assert next(base.parameters()).dtype == torch.float32
    assert "emulated" in capsys.readouterr().out


def test_inference_on_a_marked_model_runs_under_its_autocast(cpu):
    cpu("AVX512-BF16")
    spec = Model(name="tiny:qwen2-1m", quantization="none")
    base = loading.load_base(spec, loading.load_tokenizer(spec))
    ids = torch.tensor([[1, 2, 3]])
    with precision.autocast(base):
        assert base(input_ids=ids).logits.dtype == torch.bfloat16
    assert base(input_ids=ids).logits.dtype == torch.float32  # the weights themselves stay fp32
    cpu(None)
    unmarked = loading.load_base(spec)
    with precision.autocast(unmarked):
        assert unmarked(input_ids=ids).logits.dtype == torch.float32


def test_a_judge_that_only_answers_holds_its_weights_in_bf16_where_the_cpu_computes_it(cpu):
    cpu("AVX512-BF16")
    spec = Model(name="tiny:qwen2-1m", quantization="none")
    judge = precision.answering_only(loading.load_base(spec, loading.load_tokenizer(spec)))
    assert {p.dtype for p in judge.parameters()} == {torch.bfloat16}
    with precision.autocast(judge):  # nothing left to cast
        assert not torch.is_autocast_enabled("cpu")
    cpu(None)
    fp32 = precision.answering_only(loading.load_base(spec))
    assert {p.dtype for p in fp32.parameters()} == {torch.float32}
