"""Hello world as a Starlette application (one route, PlainTextResponse), the
same for uvicorn and cymongoose.asgi:
    python3 -m uvicorn --app-dir bench/python hello_starlette:app ..."""
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route


async def hello(request):
    return PlainTextResponse("hello")


app = Starlette(routes=[Route("/", hello)])
