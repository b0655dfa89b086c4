"""An ASGI app under uvicorn on a loopback port, in a background thread: the real HTTP stack for tests
that talk to a server (the OpenAI API, fake upstream servers, the trajectory viewer)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator


@contextlib.contextmanager
def serve_in_thread(app, *, timeout: float = 20) -> Iterator[str]:
    """Serve ``app`` until the block ends; yield ``http://127.0.0.1:PORT``. Fails if it is not up within
    ``timeout`` seconds."""
    import uvicorn

    sock = socket.create_server(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])), daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
