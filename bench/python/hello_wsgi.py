"""Hello world as a raw WSGI application (no framework), for gunicorn:
    gunicorn --chdir bench/python hello_wsgi:app ..."""

HEADERS = [("Content-Type", "text/plain"), ("Content-Length", "5")]
BODY = [b"hello"]


def app(environ, start_response):
    start_response("200 OK", HEADERS)
    return BODY
