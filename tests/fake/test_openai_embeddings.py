"""``POST /v1/embeddings`` through the real ``openai`` client."""

from __future__ import annotations

import base64
import struct

import openai
import pytest

from llmmetrics.fake import FakeLLMServer
from tests.support.fake import async_client


class TestEmbeddings:
    def test_default_call_goes_base64_on_the_wire_and_decodes_to_floats(
            self, server: FakeLLMServer, client: openai.OpenAI) -> None:
        """The client asks for base64 unasked and decodes it; equal inputs give equal unit vectors."""
        result = client.embeddings.create(model="text-embedding-3-small", input=["alpha", "beta", "alpha"])
        assert server.requests[-1].json["encoding_format"] == "base64"
        vectors = [item.embedding for item in result.data]
        assert [len(v) for v in vectors] == [64, 64, 64]
        assert vectors[0] == vectors[2] != vectors[1]
        assert abs(sum(x * x for x in vectors[0]) - 1) < 1e-4
        assert result.usage.prompt_tokens == 2 + 1 + 2 and result.model == "text-embedding-3-small"

    def test_float_and_explicit_base64_carry_the_same_numbers(self, client: openai.OpenAI) -> None:
        """encoding_format='float' returns floats; explicit 'base64' returns little-endian float32 text."""
        floats = client.embeddings.create(model="text-embedding-3-small", input="same", encoding_format="float")
        packed = client.embeddings.create(model="text-embedding-3-small", input="same", encoding_format="base64")
        raw = base64.b64decode(packed.data[0].embedding)
        assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == floats.data[0].embedding

    def test_token_arrays_and_dimensions(self, client: openai.OpenAI) -> None:
        """Token-array input counts one token per id, and 'dimensions' sets the vector length."""
        result = client.embeddings.create(model="text-embedding-3-large", input=[[1, 2, 3], [4, 5]], dimensions=8)
        assert result.usage.prompt_tokens == 5 and [len(d.embedding) for d in result.data] == [8, 8]

    @pytest.mark.asyncio
    async def test_async_embeddings(self, server: FakeLLMServer) -> None:
        """AsyncOpenAI decodes the default base64 embeddings too."""
        async with async_client(server) as aclient:
            result = await aclient.embeddings.create(model="text-embedding-3-small", input="x")
        assert len(result.data[0].embedding) == 64
