"""Learning-rate schedules: transformers' seven, as ``LambdaLR`` multipliers of the same
formulas (``tests/test_speed.py`` checks every one against ``transformers.get_scheduler``).

Not imported from transformers: ``transformers.optimization`` imports its Trainer utilities,
which import peft where it is installed (and peft imports bitsandbytes): 2 to 4 s added to
every run's start for a few lines of arithmetic."""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

from hubtool.errors import ConfigError


def _warmup(step: int, warmup: int) -> float:
    return float(step) / float(max(1, warmup))


def linear(step: int, *, warmup: int, total: int) -> float:
    if step < warmup:
        return _warmup(step, warmup)
    return max(0.0, float(total - step) / float(max(1, total - warmup)))


def cosine(step: int, *, warmup: int, total: int, cycles: float = 0.5) -> float:
    if step < warmup:
        return _warmup(step, warmup)
    progress = float(step - warmup) / float(max(1, total - warmup))
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * float(cycles) * 2.0 * progress)))


def cosine_with_restarts(step: int, *, warmup: int, total: int, cycles: int = 1) -> float:
    if step < warmup:
        return _warmup(step, warmup)
    progress = float(step - warmup) / float(max(1, total - warmup))
    if progress >= 1.0:
        return 0.0
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * ((float(cycles) * progress) % 1.0))))


def polynomial(
    step: int, *, warmup: int, total: int, lr_init: float, lr_end: float = 1e-7, power: float = 1.0
) -> float:
    if step < warmup:
        return _warmup(step, warmup)
    if step > total:
        return lr_end / lr_init
    remaining = 1 - (step - warmup) / (total - warmup)
    return ((lr_init - lr_end) * remaining**power + lr_end) / lr_init


def constant(step: int, *, warmup: int, total: int) -> float:
    return 1.0


def constant_with_warmup(step: int, *, warmup: int, total: int) -> float:
    return _warmup(step, warmup) if step < warmup else 1.0


def inverse_sqrt(step: int, *, warmup: int, total: int) -> float:
    if step < warmup:
        return _warmup(step, warmup)
    timescale = warmup or 10_000  # transformers' default
    return 1.0 / math.sqrt((step + timescale - warmup) / timescale)


SCHEDULES: dict[str, Callable[..., float]] = {
    "linear": linear,
    "cosine": cosine,
    "cosine_with_restarts": cosine_with_restarts,
    "polynomial": polynomial,
    "constant": constant,
    "constant_with_warmup": constant_with_warmup,
    "inverse_sqrt": inverse_sqrt,
}


def make(name: str, optimizer: Any, warmup: int, total: int) -> Any:
    """The schedule ``name`` over ``total`` optimizer steps, ``warmup`` of them warming up."""
    from torch.optim.lr_scheduler import LambdaLR

    extra: dict[str, Any] = {}
    if name == "polynomial":
        extra["lr_init"] = optimizer.defaults["lr"]
    if name == "polynomial" and extra["lr_init"] <= 1e-7:
        raise ConfigError(
            f"The polynomial schedule decays to 1e-07; lr {extra['lr_init']:g} is not above it.",
            "Give a larger --lr, or another --scheduler.",
        )
    multiplier: Callable[[int], float] = functools.partial(
        SCHEDULES[name], warmup=warmup, total=total, **extra
    )
    return LambdaLR(optimizer, multiplier)
