"""One typed configuration object, filled from arguments or ``LLMMETRICS_*`` environment variables.

Every field has a default, so ``Config()`` works with no environment at all: metrics in the default
registry and traces in a local JSONL file. An explicit argument beats the environment, which beats the default.

>>> Config.from_env({"LLMMETRICS_SERVICE": "checkout", "LLMMETRICS_SAMPLE_SUCCESS_RATIO": "0.1"}).service
'checkout'
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from typing import Any, get_args, get_origin, get_type_hints

from .pii import KINDS as PII_KINDS
from .private_files import PRIVATE_FILE_MODE

__all__ = ["Config", "ConfigError", "DEFAULT_SECRET_PATTERNS"]

#: Patterns scrubbed from every rendered record: OpenAI-style keys, bearer tokens, AWS access key ids.
#: A pattern with a group named ``secret`` has only that group replaced. Each starts with a literal, which the
#: regex engine finds with a fast substring search (about 1 µs per KB); one that does not costs ~15 µs per KB.
#: Patterns must not match a quote or a backslash, so scrubbing rendered JSON cannot break its syntax.
DEFAULT_SECRET_PATTERNS: tuple[str, ...] = (
    r"sk-[A-Za-z0-9_\-]{16,}",
    r"earer\s+(?P<secret>[A-Za-z0-9._~+/=\-]{16,})",
    r"AKIA[0-9A-Z]{16}",
)


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the field and the environment variable."""


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Everything llmmetrics can be told. Immutable: ``configure()`` builds a new one and rewires."""

    service: str = "llm-app"
    env: str = "dev"
    provider: str | None = None

    trace_file: str | None = "llmmetrics-traces.jsonl"
    trace_file_max_bytes: int = 50_000_000
    trace_file_backups: int = 5
    log_records: bool = False

    sample_success_ratio: float = 1.0
    slow_call_seconds: float = 3.0
    latency_slo_seconds: float = 2.0
    capture_content: bool = True
    max_record_bytes: int = 250_000
    secret_patterns: tuple[str, ...] = DEFAULT_SECRET_PATTERNS
    redact: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None
    max_models: int = 50
    #: multiprocess mode: no exemplar older than this is served (a dead worker's age out)
    exemplar_horizon_seconds: float = 300.0
    price_file: str | None = None
    prices: Mapping[str, Mapping[str, Any]] | None = None

    # privacy: who may read the trace files (octal; LLMMETRICS_TRACE_FILE_MODE=0640), and which kinds of
    # personal data are replaced in every record (LLMMETRICS_REDACT_PII=email,card)
    trace_file_mode: int = PRIVATE_FILE_MODE
    redact_pii: tuple[str, ...] = ()

    loki_url: str | None = None
    loki_tenant: str | None = None
    loki_username: str | None = dataclasses.field(default=None, repr=False)
    loki_password: str | None = dataclasses.field(default=None, repr=False)
    loki_bearer_token: str | None = dataclasses.field(default=None, repr=False)
    loki_ca_file: str | None = None  # PEM bundle for Loki's TLS certificate (else REQUESTS_CA_BUNDLE, else the system's)
    loki_labels: Mapping[str, str] = dataclasses.field(default_factory=dict)
    loki_structured_metadata: bool = True
    loki_spool_dir: str | None = None
    loki_spool_max_bytes: int = 1_000_000_000
    loki_queue_max_bytes: int = 64_000_000
    loki_batch_max_bytes: int = 1_000_000
    loki_batch_max_entries: int = 5000
    loki_batch_wait_seconds: float = 1.0
    loki_timeout_seconds: float = 10.0
    loki_max_backoff_seconds: float = 30.0
    loki_replay_max_age_seconds: float = 6 * 86400

    def __post_init__(self) -> None:
        _check(0.0 <= self.sample_success_ratio <= 1.0, "sample_success_ratio", "must be within [0, 1]")
        for name in ("slow_call_seconds", "latency_slo_seconds", "loki_batch_wait_seconds", "loki_timeout_seconds",
                     "exemplar_horizon_seconds"):
            _check(getattr(self, name) > 0, name, "must be > 0")
        for name in ("max_record_bytes", "max_models", "trace_file_max_bytes", "loki_queue_max_bytes",
                     "loki_batch_max_bytes", "loki_batch_max_entries", "loki_spool_max_bytes"):
            _check(getattr(self, name) > 0, name, "must be > 0")
        _check(self.max_record_bytes >= 4096, "max_record_bytes", "must be >= 4096 (a record needs room for its fields)")
        _check(self.trace_file_backups >= 0, "trace_file_backups", "must be >= 0")
        _check(self.redact is None or callable(self.redact), "redact", "must be a callable")
        mode = self.trace_file_mode
        _check(type(mode) is int and mode & ~0o666 == 0 and mode & 0o600 == 0o600, "trace_file_mode",
               "must be a file mode from 0o600 to 0o666 that lets the owner read and write, e.g. 0o640 (got "
               f"{oct(mode) if type(mode) is int else repr(mode)})")
        _check(isinstance(self.redact_pii, (tuple, list)) and set(self.redact_pii) <= set(PII_KINDS), "redact_pii",
               f"must name kinds of personal data among {', '.join(PII_KINDS)} (got {self.redact_pii!r})")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Build from ``LLMMETRICS_*`` variables, then apply explicit ``overrides`` (which win)."""
        environ = os.environ if environ is None else environ
        hints = get_type_hints(cls)
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            var = "LLMMETRICS_" + field.name.upper()
            if var in environ and field.name not in ("redact", "prices"):
                values[field.name] = _parse(environ[var], hints[field.name], field.name)
        unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ConfigError(f"unknown configuration option(s): {', '.join(sorted(unknown))}")
        values.update(overrides)
        return cls(**values)

    def replace(self, **changes: Any) -> Config:
        return dataclasses.replace(self, **changes)


def _check(ok: bool, name: str, message: str) -> None:
    if not ok:
        raise ConfigError(f"{name} {message} (argument {name} or LLMMETRICS_{name.upper()})")


#: Fields whose environment form is not their type's usual one: a file mode is octal, kinds are comma-separated.
_ENV_PARSERS: dict[str, Callable[[str], Any]] = {
    "trace_file_mode": lambda raw: int(raw.strip(), 8),
    "redact_pii": lambda raw: tuple(part.strip().lower() for part in raw.split(",") if part.strip()),
}


def _parse(raw: str, hint: Any, name: str) -> Any:
    args = set(get_args(hint)) or {hint}
    optional = type(None) in args
    try:
        if name in _ENV_PARSERS:
            return _ENV_PARSERS[name](raw)
        if raw.strip() == "" and optional:
            return None
        if bool in args:
            lowered = raw.strip().lower()
            if lowered in ("1", "true", "yes", "on"):
                return True
            if lowered in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if int in args:
            return int(raw.replace("_", ""))
        if float in args:
            return float(raw)
        origin = get_origin(hint)
        if origin is tuple:
            # patterns may contain commas, so the separator is a newline
            return tuple(part.strip() for part in raw.splitlines() if part.strip())
        if origin is Mapping:
            pairs = [p.split("=", 1) for p in raw.split(",") if p.strip()]
            if any(len(p) != 2 for p in pairs):
                raise ValueError(raw)
            return {k.strip(): v.strip() for k, v in pairs}
        return raw
    except ValueError:
        raise ConfigError(f"LLMMETRICS_{name.upper()}={raw!r} is not a valid {hint}") from None
