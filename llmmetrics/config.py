"""One typed configuration object, filled from arguments or ``LLMMETRICS_*`` environment variables.

Every field has a default, so ``Config()`` works with no environment at all: metrics in the default
registry and traces in a local JSONL file. An explicit argument beats the environment, which beats the default.

Every value is checked when a ``Config`` is made. A bad one raises one :class:`ConfigError` that names the
field, its environment variable, the value given and what is accepted — all the bad values at once.
:meth:`Config.check` adds what only the machine can answer (is the trace file's directory writable, does
the price file parse); ``configure()`` runs it before it changes anything. Every field, its variable and
its default: docs/configuration.md.

>>> Config.from_env({"LLMMETRICS_SERVICE": "checkout", "LLMMETRICS_SAMPLE_SUCCESS_RATIO": "0.1"}).service
'checkout'
>>> Config.from_env({"LLMMETRICS_SAMPLE_SUCCESS_RATIO": "abc"})
Traceback (most recent call last):
...
llmmetrics.config.ConfigError: invalid configuration: LLMMETRICS_SAMPLE_SUCCESS_RATIO='abc' (field sample_success_ratio): expected a number between 0 and 1
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .pii import KINDS as PII_KINDS
from .pricing import PriceTable, PriceTableError
from .private_files import PRIVATE_FILE_MODE

__all__ = ["Config", "ConfigError", "ConfigProblem", "DEFAULT_SECRET_PATTERNS", "ENV_PREFIX", "UnknownOption",
           "closest_field", "default_of", "env_var", "from_env_or_defaults", "resource_problems", "unknown_variables"]

ENV_PREFIX = "LLMMETRICS_"
#: ``LLMMETRICS_*`` variables that other parts of the project read (not configuration fields), so they are
#: not reported as typos.
OTHER_VARIABLES = frozenset({"LLMMETRICS_BENCH_VENVS"})
REFERENCE = "docs/configuration.md"

#: Patterns scrubbed from every rendered record: OpenAI-style keys, bearer tokens, AWS access key ids.
#: A pattern with a group named ``secret`` has only that group replaced. Each starts with a literal, which the
#: regex engine finds with a fast substring search (about 1 µs per KB); one that does not costs ~15 µs per KB.
#: Patterns must not match a quote or a backslash, so scrubbing rendered JSON cannot break its syntax.
DEFAULT_SECRET_PATTERNS: tuple[str, ...] = (
    r"sk-[A-Za-z0-9_\-]{16,}",
    r"earer\s+(?P<secret>[A-Za-z0-9._~+/=\-]{16,})",
    r"AKIA[0-9A-Z]{16}",
)


def env_var(field: str) -> str:
    """The environment variable of a field: ``sample_success_ratio`` → ``LLMMETRICS_SAMPLE_SUCCESS_RATIO``."""
    return ENV_PREFIX + field.upper()


# -- problems and the error ------------------------------------------------------------------------------

_MAX_SHOWN_CHARS = 120


@dataclasses.dataclass(frozen=True)
class ConfigProblem:
    """One bad setting: the field, where its value came from, the value, and what is accepted."""

    field: str
    value: Any
    expected: str
    from_env: bool = False
    detail: str = ""
    secret: bool = False
    argument_only: bool = False

    @property
    def variable(self) -> str:
        return env_var(self.field)

    def __str__(self) -> str:
        shown = "<hidden>" if self.secret else _shown(self.value)
        if self.from_env:
            text = f"{self.variable}={shown} (field {self.field})"
        elif self.argument_only:
            text = f"{self.field}={shown} (an argument only, no environment variable)"
        else:
            text = f"{self.field}={shown} (environment variable {self.variable})"
        text += f": expected {self.expected}"
        return text + (f"; {self.detail}" if self.detail else "")


@dataclasses.dataclass(frozen=True)
class UnknownOption:
    """An argument that is no configuration field (a typo), with the closest field's name."""

    name: str

    def __str__(self) -> str:
        close = closest_field(self.name)
        hint = f"did you mean {close}?" if close else f"the fields are listed in {REFERENCE}"
        return f"{self.name} is not a configuration field: {hint}"


class ConfigError(ValueError):
    """The configuration is invalid: every problem names the field, its variable, the value and what is accepted.

    ``problems`` holds them one by one (:class:`ConfigProblem`); the message lists them all.
    """

    def __init__(self, problems: str | Sequence[ConfigProblem | UnknownOption]) -> None:
        if isinstance(problems, str):
            self.problems: tuple[ConfigProblem | UnknownOption, ...] = ()
            super().__init__(problems)
            return
        self.problems = tuple(problems)
        if len(self.problems) == 1:
            message = f"invalid configuration: {self.problems[0]}"
        else:
            message = f"invalid configuration, {len(self.problems)} problems:\n" + "\n".join(
                f"  - {p}" for p in self.problems)
        super().__init__(message)


def _shown(value: Any) -> str:
    if isinstance(value, str) and "://" in value:
        value = _without_credentials(value)
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN_CHARS else text[: _MAX_SHOWN_CHARS - 1] + "…"


def _without_credentials(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


# -- what each field accepts ---------------------------------------------------------------------------


class _Invalid(Exception):
    """A value a kind refuses; ``detail`` says what was wrong beyond the accepted form."""

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail)
        self.detail = detail


class _Kind:
    """What one field accepts: ``parse`` reads an environment variable's text, ``check`` validates a value
    (an argument as given, or what ``parse`` made of the text) and returns it normalised.

    Arguments are checked by type, never parsed: only the environment speaks in text.
    """

    #: False for what only code can give (a function, a dict of prices).
    from_env = True

    def parse(self, text: str) -> Any:
        return text

    def check(self, value: Any) -> Any:
        raise NotImplementedError

    def expected(self, from_env: bool) -> str:
        raise NotImplementedError


class _Text(_Kind):
    def __init__(self, *, optional: bool, expected: str = "a text") -> None:
        self.optional = optional
        self._expected = expected

    def check(self, value: Any) -> Any:
        if value is None and self.optional:
            return None
        if not isinstance(value, str):
            raise _Invalid()
        if not value.strip():
            if self.optional:
                return None  # LLMMETRICS_TRACE_FILE= (empty) turns the file off
            raise _Invalid()
        return value

    def expected(self, from_env: bool) -> str:
        return self._expected


class _Url(_Text):
    def __init__(self) -> None:
        super().__init__(optional=True, expected="an http:// or https:// URL such as http://localhost:3100 (or empty for none)")

    def check(self, value: Any) -> Any:
        value = super().check(value)
        if value is not None:
            parts = urllib.parse.urlsplit(value.strip())
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise _Invalid()
            value = value.strip()
        return value


class _Bool(_Kind):
    TRUE = ("true", "1", "yes", "on")
    FALSE = ("false", "0", "no", "off")

    def parse(self, text: str) -> Any:
        lowered = text.strip().lower()
        if lowered in self.TRUE:
            return True
        if lowered in self.FALSE:
            return False
        raise _Invalid()

    def check(self, value: Any) -> Any:
        if isinstance(value, bool):
            return value
        raise _Invalid()

    def expected(self, from_env: bool) -> str:
        return "one of true/false/1/0/yes/no/on/off" if from_env else "True or False"


class _Number(_Kind):
    def __init__(self, expected: str, *, integer: bool = False, minimum: float | None = None,
                 maximum: float | None = None, above: float | None = None) -> None:
        self._expected = expected
        self.integer = integer
        self.minimum = minimum
        self.maximum = maximum
        self.above = above

    def parse(self, text: str) -> Any:
        try:
            return int(text.strip()) if self.integer else float(text.strip())
        except ValueError:
            raise _Invalid() from None

    def check(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int if self.integer else (int, float)):
            raise _Invalid()
        if not self.integer:
            value = float(value)
            if not math.isfinite(value):
                raise _Invalid()
        if ((self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum)
                or (self.above is not None and value <= self.above)):
            raise _Invalid()
        return value

    def expected(self, from_env: bool) -> str:
        return self._expected


class _FileMode(_Kind):
    """A file mode the owner can read and write (the sink reopens its file), without exec or special bits."""

    def parse(self, text: str) -> Any:
        try:
            return int(text.strip(), 8)  # as chmod takes it: 0640, 640 or 0o640
        except ValueError:
            raise _Invalid() from None

    def check(self, value: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Invalid()
        if value & ~0o666 or value & 0o600 != 0o600:
            raise _Invalid(f"that is {oct(value)}")
        return value

    def expected(self, from_env: bool) -> str:
        if from_env:
            return "an octal file mode from 0600 to 0666 that lets the owner read and write, e.g. 0640"
        return "a file mode from 0o600 to 0o666 that lets the owner read and write, e.g. 0o640"


class _Choices(_Kind):
    """Some of a fixed set of names: comma-separated in the environment, a tuple in code."""

    def __init__(self, what: str, names: tuple[str, ...]) -> None:
        self.what = what
        self.names = names

    def parse(self, text: str) -> Any:
        return tuple(part.strip().lower() for part in text.split(",") if part.strip())

    def check(self, value: Any) -> Any:
        if not isinstance(value, (tuple, list)) or not all(isinstance(v, str) and v in self.names for v in value):
            raise _Invalid()
        return tuple(value)

    def expected(self, from_env: bool) -> str:
        listed = f"{self.what} among {', '.join(self.names)}"
        return listed + (", separated by commas" if from_env else ", as a tuple")


class _Patterns(_Kind):
    def parse(self, text: str) -> Any:
        # patterns may contain commas, so the separator is a newline
        return tuple(part.strip() for part in text.splitlines() if part.strip())

    def check(self, value: Any) -> Any:
        if not isinstance(value, (list, tuple)) or not all(isinstance(p, str) for p in value):
            raise _Invalid()
        for pattern in value:
            try:
                re.compile(pattern.encode())
            except re.error as error:
                raise _Invalid(f"{pattern!r} does not compile: {error}") from None
        return tuple(value)

    def expected(self, from_env: bool) -> str:
        return "regular expressions (one per line in the environment variable)"


class _Labels(_Kind):
    def parse(self, text: str) -> Any:
        pairs = [p.split("=", 1) for p in text.split(",") if p.strip()]
        if any(len(p) != 2 or not p[0].strip() for p in pairs):
            raise _Invalid()
        return {k.strip(): v.strip() for k, v in pairs}

    def check(self, value: Any) -> Any:
        if not isinstance(value, Mapping) or not all(isinstance(k, str) and isinstance(v, str)
                                                     for k, v in value.items()):
            raise _Invalid()
        return value

    def expected(self, from_env: bool) -> str:
        if from_env:
            return "name=value pairs separated by commas, e.g. team=search,region=eu"
        return "a mapping of label names to texts, e.g. {'team': 'search'}"


class _Hook(_Kind):
    from_env = False

    def check(self, value: Any) -> Any:
        if value is None or callable(value):
            return value
        raise _Invalid()

    def expected(self, from_env: bool) -> str:
        return "a function that takes the record dict and returns it (or None to drop it), as an argument"


class _Prices(_Kind):
    from_env = False

    def check(self, value: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, Mapping):
            raise _Invalid()
        try:
            PriceTable(value)
        except (PriceTableError, AttributeError) as error:
            raise _Invalid(str(error) if isinstance(error, PriceTableError) else "") from None
        return value

    def expected(self, from_env: bool) -> str:
        return ('a mapping of model names to {"input": ..., "output": ...} in US dollars per 1M tokens, as an '
                f"argument (from the environment: a JSON file in {env_var('price_file')})")


def _setting(kind: _Kind, default: Any = dataclasses.MISSING, *, factory: Any = dataclasses.MISSING,
             secret: bool = False) -> Any:
    return dataclasses.field(default=default, default_factory=factory, repr=not secret, metadata={"kind": kind})


_SECONDS = "a number of seconds greater than 0"
_BYTES = "a whole number of bytes greater than 0"
_NAME = "a non-empty name"
_PATH = "a file path (or empty for none)"


@dataclasses.dataclass(frozen=True, kw_only=True)
class Config:
    """Everything llmmetrics can be told. Immutable: ``configure()`` builds a new one and rewires."""

    service: str = _setting(_Text(optional=False, expected=_NAME), "llm-app")
    env: str = _setting(_Text(optional=False, expected=_NAME), "dev")
    provider: str | None = _setting(_Text(optional=True), None)

    trace_file: str | None = _setting(_Text(optional=True, expected=_PATH), "llmmetrics-traces.jsonl")
    trace_file_max_bytes: int = _setting(_Number(_BYTES, integer=True, above=0), 50_000_000)
    trace_file_backups: int = _setting(_Number("a whole number, 0 or more", integer=True, minimum=0), 5)
    log_records: bool = _setting(_Bool(), False)

    sample_success_ratio: float = _setting(_Number("a number between 0 and 1", minimum=0, maximum=1), 1.0)
    slow_call_seconds: float = _setting(_Number(_SECONDS, above=0), 3.0)
    latency_slo_seconds: float = _setting(_Number(_SECONDS, above=0), 2.0)
    capture_content: bool = _setting(_Bool(), True)
    max_record_bytes: int = _setting(_Number(
        "a whole number of bytes, at least 4096 (a record needs room for its fields)", integer=True, minimum=4096),
        250_000)
    secret_patterns: tuple[str, ...] = _setting(_Patterns(), DEFAULT_SECRET_PATTERNS)
    redact: Callable[[dict[str, Any]], dict[str, Any] | None] | None = _setting(_Hook(), None)
    max_models: int = _setting(_Number("a whole number greater than 0", integer=True, above=0), 50)
    price_file: str | None = _setting(_Text(optional=True, expected=_PATH), None)
    prices: Mapping[str, Mapping[str, Any]] | None = _setting(_Prices(), None)

    # privacy: who may read the trace files (octal in LLMMETRICS_TRACE_FILE_MODE=0640), and which kinds of
    # personal data are replaced in every record (LLMMETRICS_REDACT_PII=email,card)
    trace_file_mode: int = _setting(_FileMode(), PRIVATE_FILE_MODE)
    redact_pii: tuple[str, ...] = _setting(_Choices("kinds of personal data", PII_KINDS), ())

    loki_url: str | None = _setting(_Url(), None)
    loki_tenant: str | None = _setting(_Text(optional=True), None)
    loki_username: str | None = _setting(_Text(optional=True), None, secret=True)
    loki_password: str | None = _setting(_Text(optional=True), None, secret=True)
    loki_bearer_token: str | None = _setting(_Text(optional=True), None, secret=True)
    # PEM bundle for Loki's TLS certificate (else REQUESTS_CA_BUNDLE, else the system's)
    loki_ca_file: str | None = _setting(_Text(optional=True, expected=_PATH), None)
    loki_labels: Mapping[str, str] = _setting(_Labels(), factory=dict)
    loki_structured_metadata: bool = _setting(_Bool(), True)
    loki_spool_dir: str | None = _setting(_Text(optional=True, expected="a directory path (or empty for none)"), None)
    loki_spool_max_bytes: int = _setting(_Number(_BYTES, integer=True, above=0), 1_000_000_000)
    loki_queue_max_bytes: int = _setting(_Number(_BYTES, integer=True, above=0), 64_000_000)
    loki_batch_max_bytes: int = _setting(_Number(_BYTES, integer=True, above=0), 1_000_000)
    loki_batch_max_entries: int = _setting(_Number("a whole number greater than 0", integer=True, above=0), 5000)
    loki_batch_wait_seconds: float = _setting(_Number(_SECONDS, above=0), 1.0)
    loki_timeout_seconds: float = _setting(_Number(_SECONDS, above=0), 10.0)
    loki_max_backoff_seconds: float = _setting(_Number(_SECONDS, above=0), 30.0)
    loki_replay_max_age_seconds: float = _setting(_Number(_SECONDS, above=0), 6 * 86400)

    def __post_init__(self) -> None:
        problems = []
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            kind: _Kind = field.metadata["kind"]
            try:
                normal = kind.check(value)
            except _Invalid as bad:
                problems.append(_problem(field, value, False, bad.detail))
            else:
                if normal is not value:
                    object.__setattr__(self, field.name, normal)
        if problems:
            raise ConfigError(problems)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Config:
        """Build from ``LLMMETRICS_*`` variables, then apply explicit ``overrides`` (which win).

        Raises one :class:`ConfigError` listing every bad value and every unknown override.
        """
        values, problems, from_env = _gather(os.environ if environ is None else environ, overrides)
        if problems:
            raise ConfigError(problems)
        return _with_sources(cls(**values), from_env)

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied (validated like any Config)."""
        unknown = [UnknownOption(name) for name in changes if name not in _FIELDS]
        if unknown:
            raise ConfigError(unknown)
        return _with_sources(dataclasses.replace(self, **changes), _sources(self) - set(changes))

    def check(self) -> None:
        """Raise :class:`ConfigError` unless this machine can do what the config asks: the trace file's
        directory exists or can be created and is writable, the spool directory likewise, the price file
        exists and parses. Changes nothing on disk."""
        problems = resource_problems(self)
        if problems:
            raise ConfigError(problems)


_FIELDS: dict[str, dataclasses.Field[Any]] = {f.name: f for f in dataclasses.fields(Config)}


def _gather(environ: Mapping[str, str], overrides: Mapping[str, Any]
            ) -> tuple[dict[str, Any], list[ConfigProblem | UnknownOption], set[str]]:
    """Values by field from ``overrides`` and ``environ`` (overrides win; an overridden variable is not read),
    every problem found, and which fields came from the environment."""
    problems: list[ConfigProblem | UnknownOption] = [UnknownOption(n) for n in overrides if n not in _FIELDS]
    values: dict[str, Any] = {}
    from_env: set[str] = set()
    for name, field in _FIELDS.items():
        kind: _Kind = field.metadata["kind"]
        if name in overrides:
            raw, is_env = overrides[name], False
        elif env_var(name) in environ:
            raw, is_env = environ[env_var(name)], True
            if not kind.from_env:
                problems.append(_problem(field, raw, True, "it cannot be set from the environment"))
                continue
        else:
            continue
        try:
            values[name] = kind.check(kind.parse(raw) if is_env else raw)
        except _Invalid as bad:
            problems.append(_problem(field, raw, is_env, bad.detail))
        else:
            if is_env:
                from_env.add(name)
    return values, problems, from_env


def _problem(field: dataclasses.Field[Any], value: Any, from_env: bool, detail: str) -> ConfigProblem:
    kind: _Kind = field.metadata["kind"]
    return ConfigProblem(field.name, value, kind.expected(from_env), from_env, detail, secret=not field.repr,
                         argument_only=not kind.from_env)


def _sources(config: Config) -> frozenset[str]:
    return getattr(config, "_from_env", frozenset())


def _with_sources(config: Config, from_env: set[str] | frozenset[str]) -> Config:
    # remembered so that a later check() names the variable when the value came from it
    object.__setattr__(config, "_from_env", frozenset(from_env))
    return config


def from_env_or_defaults(environ: Mapping[str, str] | None = None) -> tuple[Config, list[ConfigProblem]]:
    """The configuration the environment asks for, each bad value replaced by its field's default, and the
    problems found. Never raises: this is what the first instrumented call runs on without ``configure()``."""
    values, problems, from_env = _gather(os.environ if environ is None else environ, {})
    return _with_sources(Config(**values), from_env), [p for p in problems if isinstance(p, ConfigProblem)]


def default_of(field: str) -> Any:
    """A field's default value."""
    spec = _FIELDS[field]
    return spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default


def resource_problems(config: Config) -> list[ConfigProblem]:
    """What this machine cannot provide for ``config`` (see :meth:`Config.check`), without touching the disk."""
    from_env = _sources(config)
    problems = []

    def problem(field: str, expected: str, detail: str) -> None:
        problems.append(ConfigProblem(field, getattr(config, field), expected, field in from_env, detail))

    if config.trace_file:
        detail = _unwritable_file(config.trace_file.replace("{pid}", str(os.getpid())))
        if detail:
            problem("trace_file", "a file path in a directory that exists or can be created, and is writable", detail)
    if config.loki_spool_dir:
        detail = _unwritable_directory(Path(config.loki_spool_dir))
        if detail:
            problem("loki_spool_dir", "a directory that exists or can be created, and is writable", detail)
    if config.loki_ca_file and not os.access(config.loki_ca_file, os.R_OK):
        problem("loki_ca_file", "a readable PEM file of CA certificates",
                "it does not exist" if not os.path.exists(config.loki_ca_file) else "it is not readable")
    if config.price_file:
        try:
            PriceTable.load(config.price_file)
        except OSError as error:
            problem("price_file", "a readable JSON price file", error.strerror or str(error))
        except PriceTableError as error:
            problem("price_file", "a readable JSON price file", str(error))
    return problems


def _unwritable_file(path: str) -> str:
    target = Path(path)
    if target.is_dir():
        return f"{path} is a directory"
    if target.exists():
        return "" if os.access(target, os.W_OK) else f"{path} is not writable"
    return _unwritable_directory(target.parent)


def _unwritable_directory(directory: Path) -> str:
    """Why files cannot be created in ``directory`` (created with its parents if missing), or ''."""
    existing = directory
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a directory"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return ""


# -- unknown variables ---------------------------------------------------------------------------------


def closest_field(name: str) -> str | None:
    """The field whose name is closest to ``name`` (a typo), if any is close."""
    match = difflib.get_close_matches(name.lower(), list(_FIELDS), n=1, cutoff=0.6)
    return match[0] if match else None


def unknown_variables(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """Each ``LLMMETRICS_*`` variable that is no setting (a typo), with a message naming the closest one."""
    environ = os.environ if environ is None else environ
    known = {env_var(name) for name in _FIELDS} | OTHER_VARIABLES
    messages = {}
    for variable in sorted(v for v in environ if v.startswith(ENV_PREFIX) and v not in known):
        close = closest_field(variable[len(ENV_PREFIX):])
        hint = f"did you mean {env_var(close)}?" if close else f"the settings are listed in {REFERENCE}"
        messages[variable] = f"{variable} is not an llmmetrics setting and is ignored: {hint}"
    return messages
