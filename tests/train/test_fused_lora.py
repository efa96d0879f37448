"""The fused LoRA path computes what peft's own forward computes: same loss, same adapter gradients."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from llmworks.train import data as D
from llmworks.train.config import SFTConfig
from llmworks.train.fused_lora import fuse_lora
from llmworks.train.loss import TargetScorer
from llmworks.train.sft import TokenLoss


def _lora(tiny_hf_dir: Path, **kw: object) -> torch.nn.Module:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_hf_dir, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear", **kw))
    for name, p in model.named_parameters():
        if "lora_B" in name:  # peft starts B at zero; a non-zero B exercises every term
            torch.nn.init.normal_(p, std=0.05)
    return model


def _loss_and_grads(model: torch.nn.Module) -> tuple[float, dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(1)
    rows = [torch.randint(0, 400, (24,), generator=g).tolist() for _ in range(3)]
    items = [D.Sample(r, [*r[1:], D.IGNORE], list(range(len(r)))) for r in rows]
    loss, _ = TokenLoss(0).loss(TargetScorer(model), items)
    loss.backward()
    return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_fused_matches_peft(tiny_hf_dir: Path) -> None:
    peft_model = _lora(tiny_hf_dir)
    fused = copy.deepcopy(peft_model)
    assert fuse_lora(fused) == sum(1 for n, _ in fused.named_modules() if n.endswith("lora_A"))
    loss_p, grads_p = _loss_and_grads(peft_model)
    loss_f, grads_f = _loss_and_grads(fused)
    assert loss_f == pytest.approx(loss_p, rel=1e-5)
    for name, g in grads_p.items():  # fp32 sums in another order: compare to the gradient's scale
        assert (grads_f[name] - g).abs().max() <= 1e-4 * g.abs().max(), name


def test_fused_path_steps_aside_when_peft_must_do_the_work(tiny_hf_dir: Path) -> None:
    assert fuse_lora(_lora(tiny_hf_dir, lora_dropout=0.1)) == 0  # dropout: peft's forward differs
    model = _lora(tiny_hf_dir)
    fuse_lora(model)
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        tuned = model(input_ids=ids).logits
        with model.disable_adapter():
            base = model(input_ids=ids).logits
    assert not torch.allclose(tuned, base)
    with torch.no_grad():
        model.merge_adapter()
        torch.testing.assert_close(model(input_ids=ids).logits, tuned, rtol=1e-4, atol=1e-5)


def test_training_uses_it(tiny_hf_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from llmworks.train.model import apply_method

    model = AutoModelForCausalLM.from_pretrained(tiny_hf_dir, dtype=torch.float32)
    model = apply_method(model, SFTConfig(data=["x"], output_dir=str(tmp_path)))
    fused = [m for m in model.modules() if hasattr(m, "_peft_forward")]
    assert fused and len(fused) == sum(1 for n, _ in model.named_modules() if n.endswith("lora_A"))
