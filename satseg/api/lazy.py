"""An ASGI app that builds the real one on its first request.

Airflow imports every plugin in every task process too (to integrate macros), so a plugin
that built satseg's FastAPI app at import would make each task pay for FastAPI and the
api-server's security module (about a second and 30 MB here) for nothing. Only the
api-server ever sends this a request.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyApp:
    """ASGI callable standing for ``module:factory()``, created on first use."""

    def __init__(self, target: str) -> None:
        self.target = target
        self._app: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    @property
    def app(self) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        if self._app is None:
            module, _, factory = self.target.partition(":")
            self._app = getattr(importlib.import_module(module), factory)()
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
