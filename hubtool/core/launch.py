"""Where this process stands in a multi-process job (``accelerate launch``, torchrun): the
launcher's facts, read once at the command line's boundary like the Hub settings."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Launch:
    rank: int = 0
    world_size: int = 1
    fsdp: bool = False  # accelerate launch --use_fsdp (or an FSDP accelerate config)
    fsdp_version: int = 1

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Launch:
        env = os.environ if environ is None else environ
        version = env.get("FSDP_VERSION", "1").strip()
        return cls(
            int(env.get("RANK", "0") or 0),
            int(env.get("WORLD_SIZE", "1") or 1),
            env.get("ACCELERATE_USE_FSDP", "false").strip().lower() in ("true", "1", "yes"),
            int(version) if version.isdigit() else 1,
        )

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1
