"""hubtool.yaml (or .toml): read once, at the command line's boundary, with bounds (1 MiB of
UTF-8, YAML aliases bounded); each stage takes its own section from the one ``ConfigFile``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hubtool.errors import ConfigError


@dataclass(frozen=True)
class ConfigFile:
    path: Path | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path | None) -> ConfigFile:
        """The file's settings; an empty ConfigFile when no file is given."""
        return cls(path, read_raw_config(path)) if path is not None else cls()

    def section(self, name: str) -> dict[str, Any]:
        """A top-level section as a mapping ({} when absent)."""
        value = self.data.get(name)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise ConfigError(f"The '{name}' section of {self.path} must be a mapping.")
        return value


def read_raw_config(path: Path) -> dict[str, Any]:
    """The whole config file as a mapping (YAML, or TOML by its suffix), read with bounds."""
    text = _config_text(path)
    try:
        if path.suffix == ".toml":
            try:
                import tomllib
            except ImportError:  # Python 3.10
                raise ConfigError(
                    "TOML config files need Python 3.11 or later.",
                    "Use a YAML file (hubtool.yaml) instead.",
                ) from None
            data: Any = tomllib.loads(text)
        else:
            from hubtool.core import boundedyaml

            data = boundedyaml.safe_load(text) or {}
    except ConfigError:
        raise
    except Exception as exc:  # yaml and toml raise their own error types
        detail = " ".join(str(exc).split())
        raise ConfigError(
            f"Config file {path} is not valid {path.suffix[1:].upper() or 'YAML'}: {detail}"
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"Config file {path} must hold a mapping of settings.")
    return data


MAX_CONFIG_BYTES = 1 << 20


def _config_text(path: Path) -> str:
    """The file's text: at most 1 MiB of UTF-8."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"Cannot read config file {path}: {exc.strerror or exc}.") from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(f"Config file {path} is larger than 1 MiB: it is not a config file.")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        utf16 = raw[:2] in (b"\xff\xfe", b"\xfe\xff")
        raise ConfigError(
            f"Config file {path} is {'UTF-16' if utf16 else 'not UTF-8'} (byte {exc.start} "
            "cannot be read as UTF-8).",
            f"Save it as UTF-8, e.g. `iconv -f {'utf-16' if utf16 else 'latin1'} -t utf-8 "
            f"{path} > {path}.utf8`.",
        ) from None
