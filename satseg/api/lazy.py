"""An ASGI app that builds the real one on its first request.

Airflow imports every plugin in every task process too (to integrate macros), so a plugin
that built satseg's FastAPI app at import would make each task pay for FastAPI and the
api-server's security module (about a second and 30 MB here) for nothing. Only the
api-server ever sends this a request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


class LazyApp:
    """ASGI callable standing for ``satseg.api.app.create_app()``, created on first use."""

    def __init__(self) -> None:
        self._app: Callable[[Scope, Receive, Send], Awaitable[None]] | None = None

    @property
    def app(self) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
        if self._app is None:
            from satseg.api.app import create_app  # FastAPI + Airflow's security: ~1 s

            self._app = create_app()
        return self._app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
