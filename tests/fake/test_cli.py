"""``llmmetrics fake-server`` and ``python -m llmmetrics.fake``: options, the printed URL, a taken port, and
stopping on SIGINT/SIGTERM whatever dispositions, terminal and directory the child inherits."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import anthropic
import openai
import pytest

from llmmetrics.cli import build_parser
from tests.support.fake import CLAUDE, USER

REPO_ROOT = Path(__file__).resolve().parents[2]
ENTRY_POINTS = {"llmmetrics fake-server": ["-m", "llmmetrics", "fake-server"],
                "python -m llmmetrics.fake": ["-m", "llmmetrics.fake"]}

# Runs in the child before the command: sets the listed signals to SIG_IGN and execs Python with the rest of the
# arguments, as `nohup cmd &` leaves a CI job's children (ignored dispositions survive exec).
_LAUNCHER = ("import os, signal, sys; "
             "[signal.signal(int(n), signal.SIG_IGN) for n in sys.argv[1].split(',') if n]; "
             "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])")


def spawn(args: list[str], cwd: Path, ignored: tuple[int, ...] = (signal.SIGINT, signal.SIGTERM)) -> subprocess.Popen:
    """``python <args>`` with ``ignored`` signals ignored from the start, no terminal (own session, stdin from
    /dev/null) and ``cwd`` as its working directory."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    return subprocess.Popen([sys.executable, "-c", _LAUNCHER, ",".join(str(int(s)) for s in ignored), *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=env, cwd=cwd, start_new_session=True)


def first_line(process: subprocess.Popen, timeout: float = 30.0) -> str:
    """The child's first line of output, or a failure with its stderr when none comes within ``timeout``."""
    line: list[str] = []
    reader = threading.Thread(target=lambda: line.append(process.stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not line:
        process.kill()
        pytest.fail(f"no output within {timeout} s; stderr: {process.stderr.read()}")
    return line[0].strip()


def test_the_launcher_really_starts_children_with_the_signals_ignored(tmp_path: Path) -> None:
    """The control for the tests below: a child spawned this way sees SIGINT and SIGTERM as SIG_IGN."""
    probe = ["-c", "import signal; print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN, "
                   "signal.getsignal(signal.SIGTERM) is signal.SIG_IGN)"]
    with spawn(probe, tmp_path) as process:
        assert first_line(process) == "True True"
        assert process.wait(timeout=30) == 0


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serves_then_stops_on_a_signal_it_inherited_as_ignored(tmp_path: Path, entry: str, signum: int) -> None:
    """The command prints its base URL, serves both clients, and exits 0 on the signal, though it was started
    with SIGINT and SIGTERM ignored, without a terminal, in a foreign directory."""
    with spawn([*ENTRY_POINTS[entry], "--port", "0", "--no-latency", "--seed", "1"], tmp_path) as process:
        try:
            base_url = first_line(process)
            assert re.fullmatch(r"http://127\.0\.0\.1:\d+/v1", base_url)
            with openai.OpenAI(base_url=base_url, api_key="k", max_retries=0) as client:
                assert client.chat.completions.create(model="gpt-4o-mini", messages=USER).choices
            with anthropic.Anthropic(base_url=base_url.removesuffix("/v1"), api_key="k", max_retries=0) as claude:
                assert claude.messages.create(model=CLAUDE, max_tokens=32, messages=USER).content
            process.send_signal(signum)
            assert process.wait(timeout=30) == 0, process.stderr.read()
        finally:
            if process.poll() is None:
                process.kill()


def test_options_shape_the_server(tmp_path: Path) -> None:
    """--fault, --retry-after and --answer-tokens reach the server: every request is a 429 asking for 3 s,
    and an answer let through is 5 tokens."""
    args = [*ENTRY_POINTS["llmmetrics fake-server"], "--port", "0", "--no-latency", "--fault", "rate_limit=1",
            "--retry-after", "3", "--answer-tokens", "5"]
    with spawn(args, tmp_path) as process:
        try:
            with openai.OpenAI(base_url=first_line(process), api_key="k", max_retries=0) as client:
                with pytest.raises(openai.RateLimitError) as caught:
                    client.chat.completions.create(model="gpt-4o-mini", messages=USER)
                assert caught.value.response.headers["retry-after"] == "3"
                reply = client.chat.completions.create(model="gpt-4o-mini", messages=USER,
                                                       extra_headers={"x-fake-fault": "none"})
                assert reply.usage.completion_tokens == 5
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=30) == 0
        finally:
            if process.poll() is None:
                process.kill()


def test_a_taken_port_is_named_and_exits_2(tmp_path: Path) -> None:
    """On a port already in use the command names the port and --port, prints no traceback, and exits 2."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, "-m", "llmmetrics", "fake-server", "--port", str(port)],
                                capture_output=True, text=True, timeout=60, cwd=tmp_path, stdin=subprocess.DEVNULL,
                                env={**os.environ, "PYTHONPATH": str(REPO_ROOT)})
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == (f"llmmetrics fake-server: port {port} on 127.0.0.1 is already in use; "
                             "choose another with --port\n")


def test_help_lists_the_options_and_faults(capsys: pytest.CaptureFixture[str]) -> None:
    """`llmmetrics fake-server --help` shows its options and every fault name, and exits 0."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["fake-server", "--help"])
    out = capsys.readouterr().out
    assert exited.value.code == 0
    for option in ("--host", "--port", "--seed", "--error-rate", "--fault NAME=SHARE", "--no-latency", "--ttft",
                   "--per-token", "--timeout-seconds", "--retry-after", "--answer-tokens"):
        assert option in out
    assert "rate_limit, server_error, timeout" in out and "stall" in out


@pytest.mark.parametrize(("args", "complaint"), [
    (["--fault", "nope=0.1"], "NAME=SHARE with NAME one of rate_limit"),
    (["--fault", "reset=lots"], "the share of reset must be a number"),
    (["--ttft", "2:1"], "expected 0 <= LOW <= HIGH"),
])
def test_bad_options_are_refused(capsys: pytest.CaptureFixture[str], args: list[str], complaint: str) -> None:
    """Malformed knobs are usage errors (exit 2) that say what is expected."""
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["fake-server", *args])
    assert exited.value.code == 2 and complaint in capsys.readouterr().err
