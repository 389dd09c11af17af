"""``GET /v1/models`` and ``GET /v1/models/{id}`` through the real ``openai`` client."""

from __future__ import annotations

import openai
import pytest


class TestModels:
    def test_models_list_and_retrieve(self, client: openai.OpenAI) -> None:
        """GET /v1/models lists models; an unknown model id is OpenAI's 404."""
        assert "gpt-4o-mini" in {model.id for model in client.models.list()}
        assert client.models.retrieve("o4-mini").id == "o4-mini"
        with pytest.raises(openai.NotFoundError):
            client.models.retrieve("no-such-model")
