"""A faster LoRA forward/backward for CPU training, swapped into peft's own LoRA layers.

peft computes `W x + s * B(A(x))`: two thin matmuls over the activations, then a scale and an add over
the full [tokens, out] output, in forward and again in backward. On a CPU those elementwise passes over
large activations cost as much as the thin matmuls. Folding the adapter into the weight first
(`W' = W + s * B @ A`, an [out, in] matrix, cheap next to a [tokens, in] x [in, out] product) makes the
forward one matmul; the backward recomputes W' rather than keeping a copy per layer, and gets dA and dB
from the rank-r projections. Everything else stays peft's: config, saving, loading, merging.
"""

from __future__ import annotations

import types
from typing import Any

import torch
import torch.nn.functional as F


class _FusedLoRALinear(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        x: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        a: torch.Tensor,
        b: torch.Tensor,
        scale: float,
    ) -> torch.Tensor:
        ctx.save_for_backward(x, weight, a, b)
        ctx.scale = scale
        return F.linear(x, torch.addmm(weight, b, a, alpha=scale), bias)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        x, weight, a, b = ctx.saved_tensors
        s = ctx.scale
        g = grad.reshape(-1, grad.shape[-1])
        x2 = x.reshape(-1, x.shape[-1])
        grad_x = None
        if ctx.needs_input_grad[0]:
            grad_x = (g @ torch.addmm(weight, b, a, alpha=s)).view_as(x)
        grad_a = (g @ b).t() @ x2 * s  # [r, in]
        grad_b = g.t() @ (x2 @ a.t()) * s  # [out, r]
        return grad_x, None, None, grad_a, grad_b, None


def _fused_forward(self: Any, x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    if self.disable_adapters or self.merged or args or kwargs or self.active_adapters != ["default"]:
        return self._peft_forward(x, *args, **kwargs)
    base = self.base_layer
    return _FusedLoRALinear.apply(
        x,
        base.weight,
        base.bias,
        self.lora_A["default"].weight,
        self.lora_B["default"].weight,
        self.scaling["default"],
    )


def fuse_lora(model: Any) -> int:
    """Swap the fused path into every plain LoRA linear of a peft model (no DoRA, dropout or quantized
    base, whose forwards differ); returns how many layers now use it."""
    from peft.tuners.lora.layer import Linear

    n = 0
    for module in model.modules():
        if not isinstance(module, Linear) or "default" not in module.lora_A:
            continue
        plain = (
            "default" not in module.lora_variant
            and isinstance(module.lora_dropout["default"], torch.nn.Identity)
            and type(module.base_layer) is torch.nn.Linear
            and module.base_layer.weight.dtype == module.lora_A["default"].weight.dtype
        )
        if plain:
            module._peft_forward = module.forward
            module.forward = types.MethodType(_fused_forward, module)
            n += 1
    return n
