"""Config: one typed object from arguments or LLMMETRICS_* variables, with errors that say what to fix."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from llmmetrics import Config, ConfigError
from llmmetrics.config import unknown_variables

ROOT = Path(__file__).resolve().parents[2]


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


def test_an_argument_wins_without_its_variable_being_read() -> None:
    """A bad variable that an explicit argument overrides is not an error: the argument is what counts."""
    config = Config.from_env({"LLMMETRICS_SAMPLE_SUCCESS_RATIO": "abc"}, sample_success_ratio=0.5)
    assert config.sample_success_ratio == 0.5


@pytest.mark.parametrize("env,message", [
    ({"LLMMETRICS_SAMPLE_SUCCESS_RATIO": "abc"},
     "LLMMETRICS_SAMPLE_SUCCESS_RATIO='abc' (field sample_success_ratio): expected a number between 0 and 1"),
    ({"LLMMETRICS_SAMPLE_SUCCESS_RATIO": "1.5"},
     "LLMMETRICS_SAMPLE_SUCCESS_RATIO='1.5' (field sample_success_ratio): expected a number between 0 and 1"),
    ({"LLMMETRICS_CAPTURE_CONTENT": "maybe"},
     "LLMMETRICS_CAPTURE_CONTENT='maybe' (field capture_content): expected one of true/false/1/0/yes/no"),
    ({"LLMMETRICS_LOKI_LABELS": "novalue"},
     "LLMMETRICS_LOKI_LABELS='novalue' (field loki_labels): expected name=value pairs separated by commas"),
    ({"LLMMETRICS_MAX_RECORD_BYTES": "100"},
     "LLMMETRICS_MAX_RECORD_BYTES='100' (field max_record_bytes): expected a whole number of bytes, at least 4096"),
    ({"LLMMETRICS_MAX_MODELS": "ten"},
     "LLMMETRICS_MAX_MODELS='ten' (field max_models): expected a whole number greater than 0"),
    ({"LLMMETRICS_SLOW_CALL_SECONDS": "-1"},
     "LLMMETRICS_SLOW_CALL_SECONDS='-1' (field slow_call_seconds): expected a number of seconds greater than 0"),
    ({"LLMMETRICS_LOKI_URL": "localhost:3100"},
     "LLMMETRICS_LOKI_URL='localhost:3100' (field loki_url): expected an http:// or https:// URL"),
    ({"LLMMETRICS_SECRET_PATTERNS": "sk-[a-z"},
     "LLMMETRICS_SECRET_PATTERNS='sk-[a-z' (field secret_patterns): expected regular expressions"),
    ({"LLMMETRICS_SERVICE": " "}, "LLMMETRICS_SERVICE=' ' (field service): expected a non-empty name"),
    ({"LLMMETRICS_REDACT": "mymodule.hide"},
     "LLMMETRICS_REDACT='mymodule.hide' (field redact): expected a function"),
    ({"LLMMETRICS_TRACE_FILE_MODE": "0986"},
     "LLMMETRICS_TRACE_FILE_MODE='0986' (field trace_file_mode): expected an octal file mode from 0600 to 0666"),
    ({"LLMMETRICS_REDACT_PII": "email,nmae"},
     "LLMMETRICS_REDACT_PII='email,nmae' (field redact_pii): expected kinds of personal data among email, phone, "
     "card, ipv4, ipv6, separated by commas"),
])
def test_a_bad_variable_names_itself_its_field_its_value_and_what_is_accepted(env: dict[str, str], message: str) -> None:
    """The message reads `VARIABLE='value' (field name): expected <what is accepted>`, never a Python type."""
    with pytest.raises(ConfigError) as caught:
        Config.from_env(env)
    text = str(caught.value)
    assert text.startswith("invalid configuration: " + message), text
    assert "<class" not in text and "| None" not in text and "Mapping[" not in text


@pytest.mark.parametrize("arguments,message", [
    ({"sample_success_ratio": 1.5},
     "sample_success_ratio=1.5 (environment variable LLMMETRICS_SAMPLE_SUCCESS_RATIO): expected a number between 0 and 1"),
    ({"capture_content": 2}, "capture_content=2 (environment variable LLMMETRICS_CAPTURE_CONTENT): expected True or False"),
    ({"max_models": [3]}, "max_models=[3] (environment variable LLMMETRICS_MAX_MODELS): expected a whole number"),
    ({"redact": "hide"}, "redact='hide' (an argument only, no environment variable): expected a function"),
    ({"trace_file_mode": 0o744}, "trace_file_mode=484 (environment variable LLMMETRICS_TRACE_FILE_MODE): expected a "
                                 "file mode from 0o600 to 0o666 that lets the owner read and write, e.g. 0o640; that "
                                 "is 0o744"),
    ({"sample_success_ratio": "0.5"}, "sample_success_ratio='0.5' (environment variable "
                                      "LLMMETRICS_SAMPLE_SUCCESS_RATIO): expected a number between 0 and 1"),
    ({"prices": {"my-model": {"output": 1}}},
     "prices={'my-model': {'output': 1}} (an argument only, no environment variable): expected a mapping of model "
     "names"),
])
def test_a_bad_argument_names_itself_its_variable_its_value_and_what_is_accepted(arguments: dict, message: str) -> None:
    """Arguments are checked by type (text is not parsed: only the environment speaks text), with the same kind
    of message as variables."""
    with pytest.raises(ConfigError) as caught:
        Config(**arguments)
    assert str(caught.value).startswith("invalid configuration: " + message), str(caught.value)


def test_every_bad_value_is_in_one_error() -> None:
    """Several mistakes give one ConfigError listing each, so one round of fixes is enough."""
    with pytest.raises(ConfigError) as caught:
        Config.from_env({"LLMMETRICS_SAMPLE_SUCCESS_RATIO": "abc", "LLMMETRICS_LOKI_URL": "localhost:3100"},
                        max_models=0)
    assert [p.field for p in caught.value.problems] == ["sample_success_ratio", "max_models", "loki_url"]
    assert str(caught.value).startswith("invalid configuration, 3 problems:\n  - ")


def test_an_unknown_argument_is_refused_with_the_closest_field() -> None:
    """A misspelt option is refused, not ignored, and the message suggests the field meant."""
    with pytest.raises(ConfigError, match="sevrice is not a configuration field: did you mean service?"):
        Config.from_env({}, sevrice="x")
    with pytest.raises(ConfigError, match="sample_rate is not a configuration field: did you mean sample_success_ratio"):
        Config().replace(sample_rate=0.1)


def test_secrets_stay_out_of_repr_and_errors() -> None:
    """Loki credentials never appear when a Config is printed, nor in the error about a bad value."""
    config = Config(loki_password="hunter2-secret", loki_bearer_token="tok-secret")
    assert "hunter2-secret" not in repr(config) and "tok-secret" not in repr(config)
    with pytest.raises(ConfigError) as caught:
        Config(loki_password=["hunter2-secret"])
    assert "hunter2-secret" not in str(caught.value) and "loki_password=<hidden>" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        Config(loki_url="ftp://user:hunter2@loki.internal:3100")
    assert "hunter2" not in str(caught.value) and "loki.internal:3100" in str(caught.value)


class TestCheck:
    def test_a_trace_file_under_an_existing_file_is_refused(self, tmp_path: Path) -> None:
        """check() names trace_file, its variable, the value and why the directory cannot hold it."""
        (tmp_path / "plain").write_text("")
        bad = str(tmp_path / "plain" / "traces.jsonl")
        with pytest.raises(ConfigError) as caught:
            Config(trace_file=bad).check()
        assert str(caught.value) == (
            f"invalid configuration: trace_file={bad!r} (environment variable LLMMETRICS_TRACE_FILE): expected a "
            f"file path in a directory that exists or can be created, and is writable; {tmp_path / 'plain'} is not "
            "a directory")

    def test_a_value_from_the_environment_is_named_by_its_variable(self, tmp_path: Path) -> None:
        """When the bad path came from LLMMETRICS_TRACE_FILE, the message leads with the variable."""
        (tmp_path / "plain").write_text("")
        config = Config.from_env({"LLMMETRICS_TRACE_FILE": str(tmp_path / "plain" / "t.jsonl")})
        with pytest.raises(ConfigError, match=r"^invalid configuration: LLMMETRICS_TRACE_FILE='.*' \(field trace_file\)"):
            config.check()

    def test_a_missing_or_broken_price_file_is_refused(self, tmp_path: Path) -> None:
        """A price file must exist and parse; the message says which and why."""
        missing = tmp_path / "prices.json"
        with pytest.raises(ConfigError, match="price_file=.*: expected a readable JSON price file; No such file"):
            Config(price_file=str(missing)).check()
        missing.write_text('{"models": {"m": {"output": 1}}}')
        with pytest.raises(ConfigError, match="price of 'm': needs a numeric 'input'"):
            Config(price_file=str(missing)).check()
        missing.write_text('{"models": {"m": {"input": 1, "output": 2}}}')
        Config(price_file=str(missing)).check()

    def test_a_missing_loki_ca_file_is_refused(self, tmp_path: Path) -> None:
        """The CA bundle for Loki's TLS must be there to read."""
        with pytest.raises(ConfigError, match="loki_ca_file=.*: expected a readable PEM file of CA certificates; it "
                                              "does not exist"):
            Config(loki_ca_file=str(tmp_path / "ca.pem")).check()

    def test_a_spool_directory_under_a_file_is_refused(self, tmp_path: Path) -> None:
        """The Loki spool directory must be creatable and writable."""
        (tmp_path / "plain").write_text("")
        with pytest.raises(ConfigError, match="loki_spool_dir=.*is not a directory"):
            Config(loki_spool_dir=str(tmp_path / "plain" / "spool")).check()

    def test_check_creates_nothing(self, tmp_path: Path) -> None:
        """A trace file in directories that do not exist yet passes, and checking does not create them."""
        Config(trace_file=str(tmp_path / "a" / "b" / "t.jsonl"), loki_spool_dir=str(tmp_path / "s")).check()
        assert list(tmp_path.iterdir()) == []


class TestUnknownVariables:
    def test_a_typo_names_the_closest_setting(self) -> None:
        """LLMMETRICS_SAMPLE_RATE is reported as unknown, with LLMMETRICS_SAMPLE_SUCCESS_RATIO suggested."""
        assert unknown_variables({"LLMMETRICS_SAMPLE_RATE": "0.1", "LLMMETRICS_SERVICE": "x", "HOME": "/"}) == {
            "LLMMETRICS_SAMPLE_RATE": "LLMMETRICS_SAMPLE_RATE is not an llmmetrics setting and is ignored: did you mean "
                                      "LLMMETRICS_SAMPLE_SUCCESS_RATIO?"}

    def test_a_name_like_no_setting_points_at_the_reference(self) -> None:
        """With nothing close, the message points at the configuration reference."""
        (message,) = unknown_variables({"LLMMETRICS_XYZZY": "1"}).values()
        assert message.endswith("the settings are listed in docs/configuration.md")

    def test_no_variable_the_project_itself_sets_is_reported(self) -> None:
        """Every LLMMETRICS_* name in the repository (benchmarks, scripts, compose, docs, tests) is a setting
        or a variable the project reads elsewhere; the deliberate typos live only in the configuration tests and
        the configuration page."""
        tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
        typo_tests = {"tests/core/test_config.py", "tests/core/test_runtime.py", "tests/docs/test_reference_pages.py",
                      "docs/configuration.md"}
        names: dict[str, str] = {}
        for path in tracked.splitlines():
            if path in typo_tests or not (ROOT / path).is_file():
                continue
            try:
                text = (ROOT / path).read_text(encoding="utf-8")
            except UnicodeDecodeError:
                continue
            for name in re.findall(r"\bLLMMETRICS_[A-Z0-9_]*[A-Z0-9](?![A-Z0-9_*])", text):  # not LLMMETRICS_LOKI_*
                names.setdefault(name, path)
        assert len(names) >= 10
        flagged = unknown_variables(dict.fromkeys(names, "x"))
        assert flagged == {}, json.dumps({name: names[name] for name in flagged})
