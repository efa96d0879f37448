"""`models check` finds a template/stop mismatch (tiny model) and passes a consistent model (slow test)."""

import json
import shutil
from pathlib import Path

from llmworks.chat.check import check_model
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
    with load_engine(tiny_gguf) as engine:  # random weights: never emits EOS
        report = check_model(engine, max_tokens=8, prompts=("Hi", "Hello"))
    failed = [f.what for f in report.findings if not f.ok]
    assert sum("without stopping" in w for w in failed) == 2
    assert any("is an EOS id" in f.what for f in report.findings if f.ok)  # the static part is consistent


def test_template_shapes_are_rendered(tiny_gguf: Path) -> None:
    with load_engine(tiny_gguf) as engine:
        report = check_model(engine, max_tokens=2, prompts=())
    assert {"template renders a system prompt", "template renders multi-turn"} <= {
        f.what for f in report.findings
    }
