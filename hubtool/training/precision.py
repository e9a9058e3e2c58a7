"""Which precision a run trains in: ``auto`` picks the fastest one that is safe here.

- a CUDA GPU with bf16 (Ampere and later): bf16 autocast;
- an older CUDA GPU: fp16 autocast with loss scaling (Accelerate's GradScaler);
- a CPU with AVX512-BF16 or AMX: bf16 autocast, if a short matmul probe confirms that bf16
  is faster here (the answer is cached per machine under ``$HF_HOME/hubtool``);
- anything else: fp32 (on a CPU without bf16 instructions bf16 is emulated and slower).

``no``, ``bf16`` and ``fp16`` force a choice. The decision and its reason go into run.json
and the model card. Weights and optimizer state stay in fp32 in every case; evaluation runs
under the same autocast (Accelerate wraps the prepared model's forward).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from hubtool.core.rundir import cpu_name
from hubtool.errors import ConfigError

PROBE_FILE = "precision-probe.json"
PROBE_SHAPE = (1024, 384, 1536)  # (tokens, hidden, intermediate): a small encoder's FFN
FASTER_ENOUGH = 1.3  # bf16 must be at least this much faster than fp32 to be chosen


@dataclass(frozen=True)
class Precision:
    requested: str  # auto | no | bf16 | fp16
    used: str  # no | bf16 | fp16 (what Accelerate is given)
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def choose(requested: str, cache_dir: Path | None, distributed_cpu: bool = False) -> Precision:
    """The precision to train in. ``cache_dir`` keeps the CPU probe's answer (None: probe)."""
    import torch

    gpu = gpu_available() and not distributed_cpu
    if requested == "auto":
        return _cuda_choice(torch) if gpu else _cpu_choice(cache_dir)
    asked = f"--mixed-precision {requested}"
    if requested == "fp16" and not gpu:
        raise ConfigError(
            "--mixed-precision fp16 needs a GPU: on a CPU, PyTorch autocasts to bf16 only.",
            "Use --mixed-precision auto (bf16 where this CPU computes it fast) or bf16.",
        )
    if requested == "bf16" and not gpu and not cpu_bf16_instructions():
        asked += "; this CPU has no native bf16, so bf16 is emulated and slower than fp32"
    return Precision(requested, requested, asked)


def _cuda_choice(torch: Any) -> Precision:
    name = torch.cuda.get_device_name(0)
    if torch.cuda.is_bf16_supported():
        return Precision("auto", "bf16", f"{name} computes in bf16 natively")
    return Precision("auto", "fp16", f"{name} has no native bf16: fp16 with dynamic loss scaling")


def cpu_bf16_instructions() -> list[str]:
    """The CPU's native bf16 instruction sets (AVX512-BF16, AMX-BF16), [] when none."""
    import torch

    checks = (
        ("AVX512-BF16", "_is_avx512_bf16_supported", "avx512_bf16"),
        ("AMX-BF16", "_is_amx_tile_supported", "amx_bf16"),
    )
    flags: set[str] | None = None
    found = []
    for label, name, flag in checks:
        check = getattr(torch.cpu, name, None)
        if check is None:  # a torch without the query: the kernel's flags
            flags = _proc_cpu_flags() if flags is None else flags
            supported = flag in flags
        else:
            supported = bool(check())
        if supported:
            found.append(label)
    return found


def _proc_cpu_flags() -> set[str]:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return set()
    return next((set(x.split(":", 1)[1].split()) for x in lines if x.startswith("flags")), set())


def gpu_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _cpu_choice(cache_dir: Path | None) -> Precision:
    isa = cpu_bf16_instructions()
    if not isa:
        return Precision(
            "auto",
            "no",
            "this CPU has no native bf16 instructions (AVX512-BF16 or AMX): "
            "bf16 would be emulated and slower, so fp32",
        )
    probe = cached_probe(cache_dir)
    speedup = probe["bf16"] / probe["fp32"]
    measured = (
        f"a {probe['threads']}-thread matmul probe measured bf16 at {probe['bf16']:.0f} GFLOP/s "
        f"and fp32 at {probe['fp32']:.0f} GFLOP/s ({speedup:.1f}x)"
    )
    has = f"this CPU has {' and '.join(isa)}"
    if speedup >= FASTER_ENOUGH:
        return Precision("auto", "bf16", f"{has}; {measured}")
    return Precision("auto", "no", f"{has}, but {measured}: fp32 is as fast, so fp32")


def machine_key() -> str:
    """Separates probe answers by CPU, thread count and torch build."""
    import torch

    text = f"{cpu_name()}|{sorted(_proc_cpu_flags())}|{torch.get_num_threads()}|{torch.__version__}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cached_probe(cache_dir: Path | None) -> dict[str, Any]:
    """The probe for this machine: read from the cache, or measured (and cached). Concurrent
    processes of one launch wait for the first one's answer rather than probe at once."""
    if cache_dir is None:
        return probe()
    key = machine_key()
    path = cache_dir / PROBE_FILE
    with _locked(cache_dir):
        known = _read(path)
        if isinstance(known.get(key), dict) and {"fp32", "bf16"} <= set(known[key]):
            return dict(known[key])
        result = probe()
        known[key] = result
        _write(path, known)
    return result


def probe(rounds: int = 5) -> dict[str, Any]:
    """GFLOP/s of an encoder-sized matmul in fp32 and in bf16 (best of ``rounds``, the two
    dtypes interleaved after a warm-up of each)."""
    import torch

    m, k, n = PROBE_SHAPE
    pairs = {
        "fp32": (torch.randn(m, k), torch.randn(k, n)),
        "bf16": (torch.randn(m, k, dtype=torch.bfloat16), torch.randn(k, n, dtype=torch.bfloat16)),
    }
    for a, b in pairs.values():  # warm-up: threads start, oneDNN builds its kernels
        for _ in range(3):
            a @ b
    best = dict.fromkeys(pairs, float("inf"))
    for _ in range(rounds):
        for label, (a, b) in pairs.items():
            start = time.perf_counter()
            for _ in range(3):
                a @ b
            best[label] = min(best[label], (time.perf_counter() - start) / 3)
    result: dict[str, Any] = {"threads": torch.get_num_threads(), "shape": [m, k, n]}
    result |= {label: round(2 * m * k * n / s / 1e9, 1) for label, s in best.items()}
    return result


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text()[:1_000_000])
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, path)
    except OSError:  # a read-only cache: the probe runs again next time
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def _locked(cache_dir: Path) -> Iterator[None]:
    """An exclusive lock on the probe cache (held while probing); none where impossible."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        handle = (cache_dir / f".{PROBE_FILE}.lock").open("a")
    except OSError:
        handle = None
    with handle or contextlib.nullcontext():
        if handle is not None:
            with contextlib.suppress(ImportError, OSError):
                import fcntl

                fcntl.flock(handle, fcntl.LOCK_EX)
        yield
