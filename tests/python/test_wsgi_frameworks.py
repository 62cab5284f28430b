"""Real WSGI frameworks (Flask, Bottle, a minimal Django project configured
here) through cymongoose.wsgi, with urllib, http.client and curl as clients."""

import http.client
import json
import os
import shutil
import subprocess
import urllib.parse
import urllib.request

import pytest

from conftest import wsgi_serving

flask = pytest.importorskip("flask")
bottle = pytest.importorskip("bottle")
django = pytest.importorskip("django")


def url(port, path):
    return "http://127.0.0.1:%d%s" % (port, path)


def curl(*args, data=None):
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    # Not with the sanitizer runtime the sanitized test pass preloads: curl
    # hangs at start under it.
    env = {k: v for k, v in os.environ.items() if k not in ("LD_PRELOAD", "ASAN_OPTIONS")}
    out = subprocess.run(["curl", "-sS", "--max-time", "30", *args], input=data,
                         capture_output=True, timeout=60, check=True, env=env)
    return out.stdout


# ---- Flask ----

def flask_app():
    app = flask.Flask("wsgi_test")

    @app.route("/hello/<name>")
    def hello(name):
        return "héllo %s" % name

    @app.route("/json", methods=["POST"])
    def echo_json():
        data = flask.request.get_json()
        return flask.jsonify(got=data, q=flask.request.args.get("q"))

    @app.route("/form", methods=["POST"])
    def form():
        return "%s+%s" % (flask.request.form["a"], flask.request.form["b"])

    @app.route("/cookies")
    def cookies():
        r = flask.make_response("set")
        r.set_cookie("one", "1")
        r.set_cookie("two", "2")
        return r

    @app.route("/stream")
    def stream():
        def gen():
            for i in range(300):
                yield ("line %d " % i) * 100 + "\n"
        return flask.Response(flask.stream_with_context(gen()), mimetype="text/plain")

    @app.route("/boom")
    def boom():
        raise RuntimeError("flask view failed")

    return app


def test_flask():
    with wsgi_serving(flask_app()) as (srv, port):
        r = urllib.request.urlopen(url(port, "/hello/w%C3%B6rld"), timeout=10)
        assert r.read().decode() == "héllo wörld"
        assert r.headers["Content-Type"].startswith("text/html")
        req = urllib.request.Request(url(port, "/json?q=z"), data=b'{"k": [1, 2]}',
                                     headers={"Content-Type": "application/json"})
        assert json.loads(urllib.request.urlopen(req, timeout=10).read()) == \
            {"got": {"k": [1, 2]}, "q": "z"}
        body = urllib.parse.urlencode({"a": "x y", "b": "é"}).encode()
        assert urllib.request.urlopen(url(port, "/form"), data=body, timeout=10).read() == \
            "x y+é".encode()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/cookies")
        r = c.getresponse()
        r.read()
        cookies = r.headers.get_all("Set-Cookie")
        assert [x.split(";")[0] for x in cookies] == ["one=1", "two=2"]
        c.request("GET", "/stream")  # same keep-alive connection
        r = c.getresponse()
        text = r.read().decode()
        assert r.headers["Transfer-Encoding"] == "chunked"
        assert text.count("\n") == 300 and text.startswith("line 0 line 0")
        c.request("GET", "/nothing-here")
        r = c.getresponse()
        assert r.status == 404 and r.read()
        c.request("GET", "/boom")
        r = c.getresponse()
        assert r.status == 500 and r.read()
        c.close()
        out = curl("-i", url(port, "/hello/curl"))
        assert out.startswith(b"HTTP/1.1 200") and out.endswith("héllo curl".encode())
        assert srv._streams == {} and srv._stash == {}


# ---- Bottle ----

def bottle_app():
    app = bottle.Bottle()

    @app.route("/item/<n:int>")
    def item(n):
        return {"n": n, "path": bottle.request.path}

    @app.post("/upload")
    def upload():
        return "%d bytes" % len(bottle.request.body.read())

    @app.route("/big")
    def big():
        bottle.response.content_type = "application/octet-stream"
        return (bytes([i % 256]) * 65536 for i in range(64))

    @app.route("/redirect")
    def redirect():
        bottle.redirect("/item/7")

    return app


def test_bottle():
    with wsgi_serving(bottle_app()) as (srv, port):
        assert json.loads(urllib.request.urlopen(url(port, "/item/42"), timeout=10).read()) == \
            {"n": 42, "path": "/item/42"}
        # urllib follows the redirect to the JSON page.
        assert json.loads(urllib.request.urlopen(url(port, "/redirect"), timeout=10).read())[
            "n"] == 7
        payload = bytes(range(256)) * 4000
        out = curl("-X", "POST", "--data-binary", "@-", url(port, "/upload"), data=b"")
        assert out == b"0 bytes"
        out = curl("-H", "Content-Type: application/octet-stream", "--data-binary", "@-",
                   url(port, "/upload"), data=payload)
        assert out == b"%d bytes" % len(payload)
        data = curl(url(port, "/big"))
        assert len(data) == 64 * 65536
        assert all(data[i * 65536] == i % 256 for i in range(64))
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("HEAD", "/item/1")
        r = c.getresponse()
        assert r.status == 200 and r.read() == b""
        c.close()


# ---- Django ----

def django_app():
    from django.conf import settings

    if not settings.configured:
        settings.configure(
            DEBUG=False,
            SECRET_KEY="cymongoose-wsgi-test",
            ALLOWED_HOSTS=["127.0.0.1", "localhost"],
            ROOT_URLCONF=__name__,
            MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
            INSTALLED_APPS=[],
            DATABASES={},
            USE_TZ=True,
        )
        django.setup()
    from django.core.wsgi import get_wsgi_application

    return get_wsgi_application()


def _django_views():
    from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
    from django.urls import path

    def index(request):
        return HttpResponse("django says hi to %s" % request.path)

    def echo(request):
        return JsonResponse({"method": request.method, "body": request.body.decode(),
                             "q": request.GET.get("q"), "agent": request.META.get(
                                 "HTTP_USER_AGENT", "")[:4]})

    def stream(request):
        return StreamingHttpResponse(("chunk %04d\n" % i for i in range(20000)),
                                     content_type="text/plain")

    def cookies(request):
        r = HttpResponse("c")
        r.set_cookie("x", "1")
        r.set_cookie("y", "2")
        return r

    return [path("", index), path("echo", echo), path("stream", stream),
            path("cookies", cookies), path("påth/", index)]


urlpatterns = []


def test_django():
    app = django_app()
    urlpatterns[:] = _django_views()
    with wsgi_serving(app) as (srv, port):
        assert urllib.request.urlopen(url(port, "/"), timeout=10).read() == \
            b"django says hi to /"
        req = urllib.request.Request(url(port, "/echo?q=%C3%A9"), data=b"posted",
                                     method="PUT")
        assert json.loads(urllib.request.urlopen(req, timeout=10).read()) == \
            {"method": "PUT", "body": "posted", "q": "é", "agent": "Pyth"}
        # A non-ASCII path reaches Django's router as text.
        assert urllib.request.urlopen(url(port, "/p%C3%A5th/"), timeout=10).read() == \
            "django says hi to /påth/".encode()
        data = curl(url(port, "/stream"))
        assert data.count(b"\n") == 20000 and data.endswith(b"chunk 19999\n")
        out = curl("-i", url(port, "/cookies"))
        assert out.count(b"Set-Cookie: ") == 2
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/missing")
        r = c.getresponse()
        assert r.status == 404 and r.read()
        c.request("GET", "/", headers={"Host": "evil.example"})
        r = c.getresponse()
        assert r.status == 400 and r.read()  # ALLOWED_HOSTS, Django's own check
        c.close()
    assert srv._streams == {}
