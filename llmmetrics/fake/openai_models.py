"""``GET /v1/models`` and ``GET /v1/models/{model}``: the chat and embedding models the server knows.

A model the server has no entry for is OpenAI's ``model_not_found`` 404. These routes draw no fault.
"""

from __future__ import annotations

from typing import Any

from . import openai_api as api
from .http import Exchange
from .routes import Routes
from .workload import Workload

__all__ = ["register"]


def register(routes: Routes, workload: Workload) -> None:
    routes.add("GET", "/v1/models", _list_models, dialect=api.DIALECT)
    routes.add("GET", "/v1/models/{model}", _retrieve_model, dialect=api.DIALECT)


def _model_object(name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": 1700000000, "owned_by": "system"}


async def _list_models(exchange: Exchange) -> None:
    names = [*api.SNAPSHOTS, *api.EMBEDDING_MODELS]
    await exchange.respond_json(200, {"object": "list", "data": [_model_object(n) for n in names]})


async def _retrieve_model(exchange: Exchange) -> None:
    name = exchange.params["model"]
    if name in api.SNAPSHOTS or name in api.SNAPSHOTS.values() or name in api.EMBEDDING_MODELS:
        await exchange.respond_json(200, _model_object(name))
        return
    await api.send_error(exchange, 404, f"The model `{name}` does not exist or you do not have access to it.",
                         type="invalid_request_error", code="model_not_found")
