"""Whether a run compiles its model with ``torch.compile``, and the shapes that keeps cheap.

``--compile auto`` (the default) compiles on a CUDA GPU when the run is long enough to repay
the compile time; on a CPU it does not: inductor's compiled training step was measured slower
than eager there (all-MiniLM-L6-v2, bf16, 2 cores, 200 steps: 145 against 163 samples/s even
leaving out its 38 s of compiling; ``benchmarks/finetune_bench.py --loops
hubtool,hubtool-compile``), so ``--compile yes`` is needed to force it. A compiled run pads
each batch to a multiple of 8 tokens (inside length-grouped batches that costs little
padding), and dynamo makes the length dynamic at its first change, so new lengths do not
recompile batch after batch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

CHOICES = ("auto", "yes", "no")
GPU_STEPS_TO_REPAY = 500  # below this, a GPU run's compile time (~1 min) is not repaid
PAD_MULTIPLE = 8


@dataclass(frozen=True)
class Compilation:
    requested: str
    used: bool
    reason: str

    @property
    def pad_multiple(self) -> int | None:
        return PAD_MULTIPLE if self.used else None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose(requested: str, device: str, total_steps: int) -> Compilation:
    if requested == "yes":
        return Compilation(requested, True, "asked for (--compile yes)")
    if requested == "no":
        return Compilation(requested, False, "asked for (--compile no)")
    if not device.startswith("cuda"):
        return Compilation(
            requested,
            False,
            f"on {device}, compiled training is not faster than eager (measured); "
            "--compile yes forces it",
        )
    if total_steps < GPU_STEPS_TO_REPAY:
        return Compilation(
            requested,
            False,
            f"{total_steps} steps are too few to repay compiling (from {GPU_STEPS_TO_REPAY})",
        )
    return Compilation(requested, True, f"a GPU run of {total_steps} steps repays compiling")


def compile_model(model: Any) -> None:
    """Compile ``model`` in place (its state dict keeps its names, so saving is unchanged)."""
    model.compile(dynamic=None)  # static first; one dynamic recompile if lengths vary


def compile_seconds() -> float | None:
    """Seconds torch.compile has spent so far in this process (None if unknown)."""
    try:
        from torch._dynamo.utils import calculate_time_spent

        spent = calculate_time_spent()
    except Exception:  # a private API: absent or changed in another torch
        return None
    total = spent.get("entire_frame_compile") or spent.get("_compile.compile_inner")
    return round(float(total), 1) if total is not None else None
