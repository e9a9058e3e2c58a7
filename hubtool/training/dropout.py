"""Dropout that is cheap on CPUs.

PyTorch's CPU dropout draws one Mersenne-Twister number per element (``bernoulli_``): in a
small encoder's training step that was 19 % of the time (all-MiniLM-L6-v2, bf16, 2 cores:
20 masks of 0.3–1 M elements, ~1.4 ms each). Here one 64-bit draw gives three 16-bit
thresholds, so a mask costs a third of the draws: the same inverted dropout (each element
kept with probability 1 − p, quantised to 1/65,536, and scaled by 1/(1 − p)), from the same
seeded generator, so runs stay reproducible and resumable.

``speed_up`` swaps the model's ``nn.Dropout`` modules for ``FastDropout`` and, for
architectures on SDPA attention, routes training-time attention with dropout through
``attention`` (the math SDPA runs on a CPU when dropout is on, with this mask). Evaluation,
GPUs and every other case use PyTorch's own kernels unchanged.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

ATTENTION = "hubtool_sdpa"  # registered with transformers' AttentionInterface


def keep_mask(shape: torch.Size | tuple[int, ...], p: float) -> torch.Tensor:
    """A bool mask of ``shape`` whose elements are True with probability 1 − p."""
    n = 1
    for size in shape:
        n *= size
    words = torch.empty((n + 2) // 3, 4, dtype=torch.int16)
    words.view(torch.int64).random_()  # 63 random bits: the 4th 16-bit chunk is biased
    limit = -32768 + round((1 - p) * 65536)
    return (words[:, :3] < limit).reshape(-1)[:n].view(shape)


def fast_dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    return x * keep_mask(x.shape, p).to(x.dtype).mul_(1 / (1 - p))


class FastDropout(nn.Dropout):
    """``nn.Dropout`` with ``keep_mask`` on CPU tensors in training; PyTorch's otherwise."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        if self.p == 1:
            return x * 0
        return fast_dropout(x, self.p)


def attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    dropout: float = 0.0,
    scaling: float | None = None,
    is_causal: bool | None = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' SDPA attention, except CPU training with dropout: softmax(QKᵀ·s + mask),
    dropout with ``keep_mask``, times V (what SDPA's CPU math kernel computes then)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    causal = is_causal if is_causal is not None else getattr(module, "is_causal", False)
    special = kwargs.get("position_bias") is not None or kwargs.get("softcap") is not None
    grouped = getattr(module, "num_key_value_groups", 1) > 1
    if dropout == 0 or query.device.type != "cpu" or special or grouped or causal:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout, scaling, is_causal, **kwargs
        )
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    scores = torch.matmul(query, key.transpose(-1, -2)) * scale
    if attention_mask is not None:
        mask = attention_mask[..., : key.shape[-2]]
        if mask.dtype == torch.bool:
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        else:
            scores = scores + mask
    probs = fast_dropout(torch.softmax(scores, dim=-1), dropout)
    return torch.matmul(probs.to(value.dtype), value).transpose(1, 2).contiguous(), None


def speed_up(model: nn.Module) -> bool:
    """Use the cheap dropout in ``model`` (trained on a CPU); True if anything changed."""
    changed = False
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if type(child) is nn.Dropout and child.p > 0:
                setattr(parent, name, FastDropout(child.p))
                changed = True
    config = getattr(model, "config", None)
    if getattr(config, "_attn_implementation", None) == "sdpa":
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

        AttentionInterface.register(ATTENTION, attention)
        # Without a mask function of its own name, transformers builds no attention mask at
        # all for a registered attention: padding would be attended to.
        AttentionMaskInterface.register(ATTENTION, sdpa_mask)
        model.set_attn_implementation(ATTENTION)  # type: ignore[operator]
        changed = True
    return changed
