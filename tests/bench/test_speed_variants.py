"""benchmarks/speed_student_vs_teacher.py: `--variant` specs map to flashgen.load keywords."""

import benchmark_script
import pytest

speed = benchmark_script.load("speed_student_vs_teacher", "speed")


def test_tokens_combine_into_load_options():
    assert speed.variant_options("tiny") == {"decoder": "tiny"}
    assert speed.variant_options("no-t5+tiny") == {"drop_t5": True, "decoder": "tiny"}
    assert speed.variant_options("laptop+tiny") == {"profile": "laptop", "decoder": "tiny"}
    assert speed.variant_options("full") == {"decoder": "full"}  # the VAE, not the default
    assert speed.variant_options("fp32") == {"dtype": "fp32"}  # whatever the CPU's default
    assert speed.variant_options("bf16+no-t5") == {"dtype": "bf16", "drop_t5": True}
    assert speed.variant_options("compile+tiny") == {"compile": True, "decoder": "tiny"}


@pytest.mark.parametrize(
    "spec",
    ["huge", "laptop+phone", "tiny+", "", "tiny+full", "fp32+bf16", "fp16", "compile+compile"],
)
def test_unknown_or_conflicting_tokens_are_refused(spec):
    with pytest.raises(SystemExit, match="--variant"):
        speed.variant_options(spec)
