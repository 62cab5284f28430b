"""Hello world as a raw ASGI application (no framework), for uvicorn:
    python3 -m uvicorn --app-dir bench/python hello_asgi:app ..."""

START = {"type": "http.response.start", "status": 200,
         "headers": [(b"content-type", b"text/plain"),
                     (b"content-length", b"5")]}
BODY = {"type": "http.response.body", "body": b"hello"}


async def app(scope, receive, send):
    if scope["type"] != "http":  # lifespan: nothing to set up
        return
    await send(START)
    await send(BODY)
