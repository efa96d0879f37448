"""The embedded SmolLM2-135M through the GGUF export: q8_0 measured against the f16 export."""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from llmworks.export import export_gguf
from llmworks.export.measure import measure

QUIET = Console(stderr=True, quiet=True)


@pytest.mark.slow
def test_q8_0_agrees_with_f16(embedded_gguf: Path, tmp_path: Path) -> None:
    f16 = export_gguf(None, tmp_path / "smollm2.f16.gguf", "f16", evaluate=False, console=QUIET)
    q8 = export_gguf(None, tmp_path / "smollm2.q8_0.gguf", "q8_0", evaluate=False, console=QUIET)
    ref = measure(f16.output)
    got = measure(q8.output, reference=ref)
    rise = got.perplexity / ref.perplexity - 1
    print(
        f"q8_0 vs f16: perplexity {ref.perplexity:.3f} → {got.perplexity:.3f} ({rise:+.2%}), "
        f"greedy agreement {got.greedy_agreement:.1%}"
    )
    assert got.greedy_agreement is not None and got.greedy_agreement >= 0.9
    assert abs(rise) < 0.01
    assert 0.5 < q8.size_bytes / f16.size_bytes < 0.56
