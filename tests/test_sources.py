"""Model sources: every kind of model argument, and a clear error for each kind of bad one."""

import json
import shutil
from pathlib import Path

import huggingface_hub.constants
import pytest

from llmworks.errors import BadModel, ModelNotFound, UserError
from llmworks.models.sources import resolve


def test_no_argument_is_the_embedded_default(embedded_gguf: Path) -> None:
    src = resolve(None)
    assert (src.name, src.kind, src.path) == ("smollm2-135m-instruct", "gguf", embedded_gguf)
    assert src.spec is not None and src.spec.embedded


def test_registry_name_is_case_insensitive(embedded_gguf: Path) -> None:
    assert resolve("SmolLM2-135M-Instruct").path == embedded_gguf


def test_local_gguf_and_hf_dir(tiny_gguf: Path, tiny_hf_dir: Path) -> None:
    assert resolve(str(tiny_gguf)).kind == "gguf"
    src = resolve(tiny_hf_dir)
    assert (src.kind, src.path) == ("hf", tiny_hf_dir)


def test_directory_holding_one_gguf(tiny_gguf: Path, tmp_path: Path) -> None:
    shutil.copy(tiny_gguf, tmp_path / "m.gguf")
    assert resolve(tmp_path).path == tmp_path / "m.gguf"


def test_adapter_dir_resolves_its_base(tiny_hf_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(tiny_hf_dir)}))
    src = resolve(tmp_path)
    assert (src.kind, src.path, src.adapter) == ("hf", tiny_hf_dir, tmp_path)


def test_hf_cache_repo_id_offline(tiny_hf_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real HF cache layout: models--org--name/{refs/main, snapshots/<commit>/...}
    repo = tmp_path / "models--someorg--tiny-chat"
    snap = repo / "snapshots" / "abc123"
    shutil.copytree(tiny_hf_dir, snap)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    src = resolve("someorg/tiny-chat")
    assert (src.kind, src.path) == ("hf", snap)
    with pytest.raises(ModelNotFound, match="not in the local HF cache"):
        resolve("someorg/absent")


def test_missing_path_lists_what_was_tried() -> None:
    with pytest.raises(ModelNotFound) as e:
        resolve("./no/such/model.gguf")
    assert "does not exist" in e.value.problem and "no download" in e.value.fix


def test_unknown_registry_name() -> None:
    with pytest.raises(ModelNotFound, match="registry name 'no-such-model'"):
        resolve("no-such-model")


def test_hf_dir_without_config_json(tmp_path: Path) -> None:
    (tmp_path / "model.safetensors").write_bytes(b"x")
    with pytest.raises(BadModel, match=r"without config\.json"):
        resolve(tmp_path)


def test_not_a_gguf_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"PK\x03\x04 not a model")
    with pytest.raises(BadModel, match="not a GGUF file"):
        resolve(bad)
    other = tmp_path / "weights.bin"
    other.write_bytes(b"x")
    with pytest.raises(BadModel, match=r"not a \.gguf"):
        resolve(other)


def test_errors_are_user_errors_with_a_fix(tmp_path: Path) -> None:
    with pytest.raises(UserError) as e:
        resolve(tmp_path / "nothing")
    assert e.value.fix
