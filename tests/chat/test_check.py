"""`models check` finds a template/stop mismatch and a model that never stops (tiny models); the embedded model's
case (passes; a looping prompt is a warning) is in tests/test_embedded.py."""

import json
import re
import shutil
from pathlib import Path

from llmworks.chat.check import NEGLIGIBLE, check_model
from llmworks.engines import load_engine


def test_end_of_turn_missing_from_eos_ids_is_reported(tiny_hf_dir: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_hf_dir, broken)
    gen = json.loads((broken / "generation_config.json").read_text())
    gen["eos_token_id"] = 0  # <|endoftext|>, while the ChatML template ends turns with <|im_end|>
    (broken / "generation_config.json").write_text(json.dumps(gen))
    with load_engine(broken, "transformers") as engine:
        report = check_model(engine, max_tokens=8, prompts=("Hi",))
    assert not report.ok
    bad = [f for f in report.findings if not f.ok]
    assert any("end-of-turn '<|im_end|>' (id 2) is not an EOS id" in f.what for f in bad)
    assert all(f.fix for f in bad)


def test_answers_that_never_stop_are_reported(tiny_gguf: Path) -> None:
    """Random weights: the end-of-turn token is about as likely as any of 49k others everywhere."""
    with load_engine(tiny_gguf) as engine:
        report = check_model(engine, max_tokens=8, prompts=("Hi", "Hello"))
    failed = [f for f in report.findings if not f.ok]
    assert sum("without stopping" in f.what for f in failed) == 2
    assert all("never gives its end-of-turn token a chance" in f.fix for f in failed)
    peaks = [float(re.search(r"peaks at ([0-9.e+-]+)%", f.what).group(1)) / 100 for f in failed]  # type: ignore[union-attr]
    assert all(p < NEGLIGIBLE / 10 for p in peaks), peaks  # far below the threshold, not near it
    assert any("is an EOS id" in f.what for f in report.findings if f.ok)  # the static part is consistent
    assert not any(f.warning for f in report.findings)


def test_template_shapes_are_rendered(tiny_gguf: Path) -> None:
    with load_engine(tiny_gguf) as engine:
        report = check_model(engine, max_tokens=2, prompts=())
    assert {"template renders a system prompt", "template renders multi-turn"} <= {
        f.what for f in report.findings
    }
