"""Talking to a Hub (huggingface.co or a local one) through ``HfApi``.

``HubSettings`` is resolved once, at the command-line boundary, from the environment
(``HF_ENDPOINT``, ``HF_TOKEN``, ``HF_HOME``); library code receives it explicitly.
``hub_errors`` turns the client's exceptions into hubtool's error tree.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubtool.errors import HubAuthError, HubConnectionError, NotFoundError, UsageError

DEFAULT_ENDPOINT = "https://huggingface.co"
# One part of a Hub repo id (huggingface_hub's rules, in ASCII): letters, digits, - _ .,
# not starting or ending with - or ., at most 96 characters.
_PART = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?", re.ASCII)

if TYPE_CHECKING:
    from huggingface_hub import HfApi


def valid_repo_id(value: object, namespace: bool = True) -> bool:
    """NAMESPACE/NAME as the Hub accepts it: no ``--`` or ``..``, not ending in ``.git``
    (``namespace=False`` also accepts a bare NAME, as legacy ids like ``gpt2``)."""
    if not isinstance(value, str) or value.count("/") not in ((1,) if namespace else (0, 1)):
        return False
    parts = value.split("/")
    return (
        all(_PART.fullmatch(p) for p in parts)
        and "--" not in value
        and ".." not in value
        and not value.endswith(".git")
    )


def check_repo_id(value: str, what: str = "repo id", namespace: bool = True) -> str:
    """``value`` when it is a valid repo id; a UsageError saying why not otherwise."""
    if not valid_repo_id(value, namespace):
        raise UsageError(
            f"{value!r} is not a Hub repo id ({what}).",
            "Use NAMESPACE/NAME with ASCII letters, digits, '-', '_' or '.' (not at the "
            "ends, no '--' or '..', not ending in .git), e.g. alice/my-model.",
        )
    return value


@dataclass(frozen=True)
class HubSettings:
    endpoint: str
    token: str | None  # None: huggingface_hub's own lookup (HF_TOKEN, then `hf auth login`)
    hf_home: Path

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, token: str | None = None
    ) -> HubSettings:
        env = os.environ if environ is None else environ
        home = env.get("HF_HOME") or str(Path.home() / ".cache" / "huggingface")
        endpoint = (env.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")
        return cls(endpoint, token or env.get("HF_TOKEN") or None, Path(home))

    @property
    def cache_dir(self) -> Path:
        return self.hf_home / "hubtool"

    def cache_scope(self) -> str:
        """A key that separates cached answers by endpoint and caller (never the token)."""
        who = hashlib.sha256((self.token or "anonymous").encode()).hexdigest()[:12]
        return hashlib.sha256(f"{self.endpoint}|{who}".encode()).hexdigest()[:16]


def make_api(settings: HubSettings) -> HfApi:
    from huggingface_hub import HfApi

    return HfApi(endpoint=settings.endpoint, token=settings.token, library_name="hubtool")


def probe(api: HfApi) -> None:
    """Fail fast when the Hub is unreachable, refuses the token or rate-limits us.

    Listings retry failed requests for about 30 s (``http_backoff``); a single repo lookup
    does not, so one is made first. A missing repo is the expected answer.
    """
    api.repo_exists("hubtool/connectivity-check")


@contextmanager
def hub_errors(settings: HubSettings, what: str) -> Iterator[None]:
    """Map the client's failures while doing ``what`` to hubtool errors."""
    import httpx2
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        yield
    except GatedRepoError as exc:
        raise HubAuthError(
            f"{what}: the repo is gated.",
            "Accept its conditions on the Hub, then use a token (HF_TOKEN or `hf auth login`).",
        ) from exc
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        raise NotFoundError(
            f"{what}: not found on {settings.endpoint}.",
            "Check the id (namespace/name); private repos need a token "
            "(HF_TOKEN or `hf auth login`).",
        ) from exc
    except HfHubHTTPError as exc:
        raise _http_error(settings, what, exc) from exc
    except (httpx2.TransportError, OSError) as exc:
        raise HubConnectionError(
            f"{what}: cannot reach {settings.endpoint} ({exc}).",
            "Check the network, or point HF_ENDPOINT at a reachable Hub "
            "(`hubtool hub serve` runs one locally).",
        ) from exc


def _http_error(settings: HubSettings, what: str, exc: Any) -> Exception:
    status = exc.response.status_code if exc.response is not None else None
    if status == 401 and not has_token(settings):
        return no_token(f"{what}: {settings.endpoint} needs a token")
    if status == 401:
        return HubAuthError(
            f"{what}: {settings.endpoint} refused the credentials (401): the token is "
            "wrong or expired.",
            "Check HF_TOKEN or log in again with `hf auth login`.",
        )
    if status == 403:
        return HubAuthError(
            f"{what}: forbidden (403); the token lacks the rights for this.",
            "Use a token with access to it (HF_TOKEN or `hf auth login`).",
        )
    if status == 429:
        retry = exc.response.headers.get("Retry-After") if exc.response is not None else None
        return HubConnectionError(
            f"{what}: {settings.endpoint} is rate-limiting requests (429).",
            f"Wait{f' {retry} s' if retry else ''} and try again; an authenticated token "
            "gets higher limits.",
        )
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else f"HTTP {status}"
    return HubConnectionError(
        f"{what}: the Hub answered with an error: {first}",
        "Try again later, or run with --debug for details.",
    )


LOGIN_HINT = (
    "Log in with `hf auth login`, or export HF_TOKEN=<a write token>; for a local Hub, "
    "`hubtool hub token create USER --write` prints one."
)


def no_token(what: str) -> HubAuthError:
    """The error for a request that needs a token when none is configured anywhere."""
    return HubAuthError(
        f"{what}, and none was found (no HF_TOKEN, and no token stored by `hf auth login`).",
        LOGIN_HINT,
    )


def has_token(settings: HubSettings) -> bool:
    """Whether a request will carry a token: the settings' own, or the client's lookup."""
    if settings.token:
        return True
    from huggingface_hub import get_token

    return bool(get_token())


def revision_of(
    settings: HubSettings | None,
    repo_id: str,
    repo_type: str = "model",
    revision: str | None = None,
) -> str | None:
    """The commit a Hub id resolves to, for provenance; None for local paths; the revision
    asked for when there is no Hub to ask (``settings`` None) or it cannot be reached."""
    if Path(repo_id).exists():
        return None
    if settings is None:
        return revision
    try:
        return make_api(settings).repo_info(repo_id, repo_type=repo_type, revision=revision).sha
    except Exception:  # provenance is best effort: the data or model already loaded
        return revision
