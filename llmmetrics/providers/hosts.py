"""Which provider an endpoint belongs to, from its base URL: a small fixed set of label values.

Shared by the SDK adapters: an OpenAI-compatible client (and any SDK pointed at a gateway) says where it
talks only through its base URL.
"""

from __future__ import annotations

from urllib.parse import urlsplit

__all__ = ["provider_for_url"]

_HOST_SUFFIXES = (
    ("api.openai.com", "openai"),
    (".openai.azure.com", "azure_openai"),
    (".cognitiveservices.azure.com", "azure_openai"),
    (".services.ai.azure.com", "azure_ai"),
    ("openrouter.ai", "openrouter"),
    ("api.groq.com", "groq"),
    ("api.together.xyz", "together"),
    ("api.together.ai", "together"),
    ("api.fireworks.ai", "fireworks"),
    ("api.deepseek.com", "deepseek"),
    ("api.mistral.ai", "mistral"),
    ("generativelanguage.googleapis.com", "gemini"),
    ("api.x.ai", "xai"),
    ("api.perplexity.ai", "perplexity"),
)
_OLLAMA_PORT = 11434


def provider_for_url(base_url: object) -> str:
    """Map a client's base URL to a provider label.

    Hosted APIs are recognised by host; self-hosted servers by convention (Ollama's port 11434, a host or
    path naming vLLM or Ollama). Anything else is ``openai_compatible`` — never the host itself, which
    would make the label unbounded.

    >>> provider_for_url("https://my-res.openai.azure.com/openai/deployments/gpt4o")
    'azure_openai'
    >>> provider_for_url("http://gpu-box:8000/v1")
    'openai_compatible'
    """
    try:
        parts = urlsplit(str(base_url))
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return "openai_compatible"
    for suffix, provider in _HOST_SUFFIXES:
        if host == suffix.lstrip(".") or host.endswith(suffix):
            return provider
    where = host + parts.path.lower()
    if port == _OLLAMA_PORT or "ollama" in where:
        return "ollama"
    if "vllm" in where:
        return "vllm"
    return "openai_compatible"

