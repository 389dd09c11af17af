"""The record pipeline: small processors a trace record passes before any sink sees it.

Structured like structlog's chain: dict processors (``record -> record | None``), one renderer (orjson), then
processors on the rendered line. The chain is assembled once from the Config, and a processor that cannot
matter (no redaction hook, 100% sampling, no ``redact_pii``) is simply not in it. Order: context merge →
sampling → user redaction → render → inline media → secret scrubbing → personal data (``redact_pii``, see
:mod:`llmmetrics.pii`) → size bound.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from .config import Config
from .metrics import SelfMetrics
from .pii import PIIRedactor

__all__ = ["Pipeline", "render", "CONTENT_FIELDS"]

DictProcessor = Callable[[dict[str, Any]], "dict[str, Any] | None"]

#: Fields that hold prompt/response content: removed when a record is sampled out, cut when too large.
CONTENT_FIELDS = ("messages", "output", "kwargs", "tool_calls")
_CONTEXT_FIELDS = ("user_id", "request_id", "feature_flags")
_MEDIA_KEYS = frozenset({"data", "file_data"})
_MEDIA_MIN_CHARS = 256
_OPTIONS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY


def _describe(obj: Any) -> Any:
    """orjson's fallback: encode what can be encoded, describe the rest; never raise."""
    dump = getattr(obj, "model_dump", None)
    if dump is not None:
        try:
            return dump(mode="json", exclude_unset=True)
        except Exception:
            pass
    if isinstance(obj, (bytes, bytearray, memoryview)):
        return f"<{len(obj)} bytes>"
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    if callable(obj):
        return f"<callable {getattr(obj, '__qualname__', type(obj).__name__)}>"
    if isinstance(obj, Mapping):
        return dict(obj)
    try:
        text = repr(obj)
    except Exception:
        text = f"<unrepresentable {type(obj).__name__}>"
    return text[:500]


def render(record: Mapping[str, Any]) -> bytes:
    """JSON bytes for a record. A value orjson still refuses (e.g. a huge int) is stringified, not raised."""
    try:
        return orjson.dumps(record, default=_describe, option=_OPTIONS)
    except (TypeError, orjson.JSONEncodeError):
        return orjson.dumps({k: _safe(v) for k, v in record.items()}, default=_describe, option=_OPTIONS)


def _safe(value: Any) -> Any:
    """Keep what encodes; descend into containers so one bad leaf does not hide its siblings."""
    try:
        orjson.dumps(value, default=_describe, option=_OPTIONS)
        return value
    except (TypeError, orjson.JSONEncodeError):
        pass
    if isinstance(value, Mapping):
        return {str(k): _safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_safe(v) for v in value]
    return f"<unencodable {type(value).__name__}: {str(value)[:200]}>"


def merge_context(record: dict[str, Any]) -> dict[str, Any]:
    """Promote the bound context (captured when the call started) into record fields."""
    ctx = record.pop("_context", None)
    if ctx:
        extra = {k: v for k, v in ctx.items() if k not in _CONTEXT_FIELDS}
        record["user_id"] = ctx.get("user_id")
        record["request_id"] = ctx.get("request_id")
        record["feature_flags"] = ctx.get("feature_flags") or {}
        record["context"] = extra
    return record


def _drop_content(record: dict[str, Any]) -> dict[str, Any]:
    for field in CONTENT_FIELDS:
        if record.get(field) is not None:
            record[field] = None
    return record


class Sampler:
    """Keep every error and every slow call in full, and a share of the rest decided per trace.

    The decision hashes the trace id, so all calls of one agent run are kept or thinned together (and the
    same in every process). A thinned record still goes out, in compact form: no content, all numbers.
    ``sampled`` says why a record was kept — ``error``, then ``slow``, then ``ratio`` — at every ratio,
    1.0 included, so ``sampled="slow"`` finds the slow calls whatever the sampling.
    """

    def __init__(self, success_ratio: float, slow_call_seconds: float, self_metrics: SelfMetrics) -> None:
        self._threshold = int(success_ratio * 16**13)
        self._slow_ms = slow_call_seconds * 1000.0
        self._sampled_out = self_metrics.records_sampled_out

    def __call__(self, record: dict[str, Any]) -> dict[str, Any]:
        if record.get("kind") != "call":
            return record
        if record["status"] == "error":
            record["sampled"] = "error"
        elif (record["latency_ms"] or 0.0) > self._slow_ms:
            record["sampled"] = "slow"
        elif int(record["trace_id"][:13], 16) < self._threshold:
            record["sampled"] = "ratio"
        else:
            record["sampled"] = "out"
            _drop_content(record)
            self._sampled_out.inc()
        return record


def _strip_media(value: Any, key: str | None = None) -> Any:
    """Replace inline base64 payloads (images, audio, files) with a short placeholder; copy, never mutate."""
    if isinstance(value, str):
        if value.startswith("data:") and ";base64," in value[:100]:
            head = value[: value.index(";base64,")]
            return f"{head};base64,<{len(value) - len(head) - 8} base64 chars omitted>"
        if key in _MEDIA_KEYS and len(value) >= _MEDIA_MIN_CHARS:
            return f"<{len(value)} base64 chars omitted>"
        return value
    if isinstance(value, dict):
        return {k: _strip_media(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_strip_media(v) for v in value]
    return value


def _redact_match(match: re.Match[bytes]) -> bytes:
    """Replace the ``secret`` group if the pattern has one (keeping e.g. ``Bearer ``), else the whole match."""
    if "secret" in match.re.groupindex:
        start, end = match.span("secret")
        whole_start = match.start()
        text = match.group(0)
        return text[: start - whole_start] + b"[REDACTED]" + text[end - whole_start:]
    return b"[REDACTED]"


class Pipeline:
    """Runs the processors and renders a record to one JSON line (or None when a processor drops it)."""

    def __init__(self, config: Config, self_metrics: SelfMetrics) -> None:
        self._self = self_metrics
        chain: list[DictProcessor] = [merge_context]
        if not config.capture_content:
            chain.append(_drop_content)
        chain.append(Sampler(config.sample_success_ratio, config.slow_call_seconds, self_metrics))
        if config.redact is not None:
            chain.append(_UserRedaction(config.redact, self_metrics))
        self._chain = tuple(chain)
        self._secrets = tuple(re.compile(p.encode()) for p in config.secret_patterns)
        self._pii = _PersonalData(config.redact_pii, self_metrics) if config.redact_pii else None
        self._max_bytes = config.max_record_bytes

    def process(self, record: dict[str, Any]) -> bytes | None:
        for processor in self._chain:
            record = processor(record)  # type: ignore[assignment]
            if record is None:
                return None
        line = render(record)
        if b";base64," in line or b'data":"' in line:
            for field in ("messages", "kwargs", "output"):
                if record.get(field) is not None:
                    record[field] = _strip_media(record[field])
            line = render(record)
        line = self._scrub_secrets(line)
        if self._pii is not None:
            line = self._pii(line, record)
        if len(line) > self._max_bytes:
            line = self._bound(record, line)
        return line

    def _bound(self, record: dict[str, Any], line: bytes) -> bytes:
        """Cut content so the line fits, keeping every numeric field; say what was cut and how big it was."""
        self._self.records_truncated.inc()
        sizes = {f: len(render(record[f])) for f in CONTENT_FIELDS if record.get(f) is not None}
        record["truncated"] = True
        record["original_sizes"] = sizes
        fixed = len(line) - sum(sizes.values())
        budget = max(self._max_bytes - fixed - 2048, 0)
        total = sum(sizes.values()) or 1
        for field, size in sizes.items():
            share = budget * size // total
            # scrubbed before the cut, so that a cut cannot leave half a secret or card number behind
            text = self._scrub(render(record[field])).decode("utf-8", "ignore")
            record[field] = text[: max(share // 2, 0)] + "…[truncated]" if size > share else record[field]
        line = self._scrub(render(record))
        if len(line) > self._max_bytes:  # multi-byte text or a pathological field: fall back to no content
            line = self._scrub(render(_drop_content(record)))
        return line

    def _scrub_secrets(self, line: bytes) -> bytes:
        """Replace every match of the secret patterns in the rendered line."""
        for pattern in self._secrets:
            line = pattern.sub(_redact_match, line)
        return line

    def _scrub(self, line: bytes) -> bytes:
        """Secrets, then the enabled kinds of personal data (not counted again: ``process`` counted them)."""
        line = self._scrub_secrets(line)
        if self._pii is not None:
            line = self._pii.redactor.redact(line)[0]
        return line


class _PersonalData:
    """Replaces the kinds of personal data ``redact_pii`` names, and counts the records each was found in.

    ``user_id`` and ``request_id`` also travel beside the line (as Loki structured metadata): when the line
    held personal data, they are redacted there too.
    """

    def __init__(self, kinds: tuple[str, ...], self_metrics: SelfMetrics) -> None:
        self.redactor = PIIRedactor(kinds)
        self._redacted = {kind: self_metrics.records_redacted.labels(kind) for kind in self.redactor.kinds}

    def __call__(self, line: bytes, record: dict[str, Any]) -> bytes:
        line, kinds = self.redactor.redact(line)
        if kinds:
            for kind in kinds:
                self._redacted[kind].inc()
            for field in ("user_id", "request_id"):
                value = record.get(field)
                if isinstance(value, str):
                    record[field] = orjson.loads(self.redactor.redact(orjson.dumps(value))[0])
        return line


class _UserRedaction:
    """Calls the user's redaction hook; a hook that fails drops the content rather than leaking it."""

    def __init__(self, hook: Callable[[dict[str, Any]], dict[str, Any] | None], self_metrics: SelfMetrics) -> None:
        self._hook = hook
        self._self = self_metrics

    def __call__(self, record: dict[str, Any]) -> dict[str, Any] | None:
        try:
            result = self._hook(record)
        except Exception:
            self._self.instrumentation_errors.labels("redact").inc()
            return _drop_content(record)
        if result is None:
            self._self.records_dropped.labels("all", "redacted").inc()
        return result
