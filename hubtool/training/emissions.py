"""The energy a run used and its CO2-equivalent, measured by ``codecarbon``'s offline tracker
(nothing is sent anywhere): power from the machine's counters where it has them (RAPL,
NVML), else estimated from the CPU's TDP and its load, which the record says. The carbon
intensity is the country's (``emissions_country``, ISO 3166 alpha-3, with an optional
``emissions_region``), else the world average.

The whole run is measured, loading and evaluations included: what producing the model took.
The tracker's set-up waits about 1.5 s on hardware probes, so it is started in a thread while
the model and data load."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from typing import Any

from hubtool.errors import ConfigError

# codecarbon's CPU modes, as a card says them
METHODS = {
    "intel_rapl": "measured by the CPU's power counters (RAPL)",
    "intel_power_gadget": "measured by Intel Power Gadget",
    "windows_emi": "measured by the Windows energy meter",
    "cpu_load": "estimated from the CPU's TDP and its load (no power counters readable)",
    "constant": "estimated from the CPU's TDP (no power counters readable)",
}


def available() -> bool:
    import importlib.util

    return importlib.util.find_spec("codecarbon") is not None


def check_country(country: str | None) -> None:
    """Refuse a country codecarbon has no energy mix for, before anything runs."""
    if country is None or not available():
        return
    from codecarbon.input import DataSource

    known = DataSource().get_global_energy_mix_data()
    if country.upper() not in known:
        raise ConfigError(
            f"emissions_country {country!r} is not an ISO 3166 alpha-3 code codecarbon knows.",
            "Use three letters, such as FRA, DEU, USA or IND.",
        )


@dataclass
class Meter:
    """A tracker being started in the background; ``stop`` gives run.json's record."""

    country: str | None
    region: str | None
    processes: int
    from_step: int = 0  # where the measured span began (a resumed run: its checkpoint)
    tracker: Any = None
    error: str | None = None
    _ready: threading.Event = field(default_factory=threading.Event)

    def start(self) -> Meter:
        threading.Thread(target=self._start, name="hubtool-emissions", daemon=True).start()
        return self

    def _start(self) -> None:
        try:
            from codecarbon import OfflineEmissionsTracker

            for name in ("codecarbon", "codecarbon.core"):
                logging.getLogger(name).setLevel(logging.CRITICAL)
            tracker = OfflineEmissionsTracker(
                country_iso_code=(self.country or "").upper() or None,
                region=self.region,
                save_to_file=False,
                log_level="critical",
                # one process: its own share; several: the machine they share
                tracking_mode="process" if self.processes == 1 else "machine",
                allow_multiple_runs=True,
                measure_power_secs=5,
            )
            tracker.start()
            self.tracker = tracker
        except Exception as exc:  # a measurement must never stop a run
            self.error = f"{type(exc).__name__}: {str(exc)[:200]}"
        finally:
            self._ready.set()

    def stop(self) -> dict[str, Any]:
        self._ready.wait(timeout=60)
        if self.tracker is None:
            return {"measured": False, "reason": self.error or "the tracker did not start"}
        try:
            kg = self.tracker.stop()
            data = self.tracker.final_emissions_data
            return _record(self.tracker, data, kg, self.country, self.region)
        except Exception as exc:
            return {"measured": False, "reason": f"{type(exc).__name__}: {str(exc)[:200]}"}


def _record(
    tracker: Any, data: Any, kg: float | None, country: str | None, region: str | None
) -> dict[str, Any]:
    modes = [getattr(h, "_mode", None) for h in getattr(tracker, "_hardware", [])]
    cpu_mode = next((m for m in modes if m in METHODS), None)
    energy = float(data.energy_consumed or 0.0)
    return {
        "measured": True,
        "energy_kwh": energy,
        "emissions_kg": float(kg or 0.0),
        "duration_s": round(float(data.duration or 0.0), 1),
        "cpu_power_w": round(float(data.cpu_power or 0.0), 2),
        "gpu_power_w": round(float(data.gpu_power or 0.0), 2),
        "ram_power_w": round(float(data.ram_power or 0.0), 2),
        "method": METHODS.get(cpu_mode or "", "as codecarbon could measure it"),
        "gpu": data.gpu_model or None,
        "cpu": data.cpu_model or None,
        "country": data.country_name if country else None,
        "region": data.region if region else None,
        "carbon_intensity_g_per_kwh": round(1000 * float(kg or 0.0) / energy, 1)
        if energy
        else None,
        "tracking": data.tracking_mode,
        "codecarbon": data.codecarbon_version,
    }
