"""Requests and clients the fake server's tests share."""

from __future__ import annotations

import time
from typing import Any

import anthropic
import openai

from llmmetrics.fake import FakeLLMServer

USER = [{"role": "user", "content": "Say something."}]
WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"},
                           "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["city"],
        },
    },
}

CLAUDE = "claude-haiku-4-5"
CLAUDE_WEATHER_TOOL = {"name": WEATHER_TOOL["function"]["name"], "description": WEATHER_TOOL["function"]["description"],
                       "input_schema": WEATHER_TOOL["function"]["parameters"]}


def async_client(server: FakeLLMServer) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=server.base_url, api_key="sk-test-secret", max_retries=0, timeout=10)


def wait_for(condition: Any, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def claude_client(server: FakeLLMServer, *, is_async: bool = False, timeout: float = 10.0) -> Any:
    """The real Anthropic client (sync or async) pointed at the fake server."""
    cls = anthropic.AsyncAnthropic if is_async else anthropic.Anthropic
    return cls(base_url=server.url, api_key="sk-ant-test-secret", max_retries=0, timeout=timeout)
