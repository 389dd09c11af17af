"""Config: one typed object from arguments or LLMMETRICS_* variables, with clear errors."""

from __future__ import annotations

import pytest

from llmmetrics import Config, ConfigError


def test_defaults_need_no_environment() -> None:
    """Config() works as is: local trace file, full sampling, 3 s slow calls."""
    config = Config.from_env({})
    assert config.trace_file == "llmmetrics-traces.jsonl" and config.sample_success_ratio == 1.0
    assert config.slow_call_seconds == 3.0 and config.loki_url is None


def test_environment_is_parsed_by_type_and_arguments_win() -> None:
    """Each variable is parsed to its field's type; explicit arguments override the environment."""
    env = {"LLMMETRICS_SERVICE": "checkout", "LLMMETRICS_SAMPLE_SUCCESS_RATIO": "0.1",
           "LLMMETRICS_MAX_MODELS": "1_000", "LLMMETRICS_CAPTURE_CONTENT": "off", "LLMMETRICS_TRACE_FILE": "",
           "LLMMETRICS_LOKI_LABELS": "team=search, region=eu", "LLMMETRICS_SECRET_PATTERNS": "tok-[0-9]{8}\nx,y"}
    config = Config.from_env(env, service="billing")
    assert config.service == "billing" and config.sample_success_ratio == 0.1 and config.max_models == 1000
    assert config.capture_content is False and config.trace_file is None
    assert config.loki_labels == {"team": "search", "region": "eu"}
    assert config.secret_patterns == ("tok-[0-9]{8}", "x,y")


@pytest.mark.parametrize("env,message", [
    ({"LLMMETRICS_SAMPLE_SUCCESS_RATIO": "lots"}, "LLMMETRICS_SAMPLE_SUCCESS_RATIO='lots'"),
    ({"LLMMETRICS_SAMPLE_SUCCESS_RATIO": "1.5"}, "sample_success_ratio must be within [0, 1]"),
    ({"LLMMETRICS_CAPTURE_CONTENT": "maybe"}, "LLMMETRICS_CAPTURE_CONTENT='maybe'"),
    ({"LLMMETRICS_LOKI_LABELS": "novalue"}, "LLMMETRICS_LOKI_LABELS"),
    ({"LLMMETRICS_MAX_RECORD_BYTES": "100"}, "max_record_bytes must be >= 4096"),
])
def test_bad_values_fail_with_a_message_naming_the_variable(env: dict[str, str], message: str) -> None:
    """A bad value raises ConfigError that says which setting and which variable."""
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        Config.from_env(env)


def test_unknown_argument_is_an_error() -> None:
    """A misspelt option is refused, not ignored."""
    with pytest.raises(ConfigError, match="unknown configuration option"):
        Config.from_env({}, sevrice="x")


def test_secrets_stay_out_of_repr() -> None:
    """Loki credentials never appear when a Config is printed or logged."""
    config = Config(loki_password="hunter2-secret", loki_bearer_token="tok-secret")
    assert "hunter2-secret" not in repr(config) and "tok-secret" not in repr(config)
