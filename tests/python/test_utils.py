"""The module-level utilities, against known vectors and the standard library."""

import base64
import hashlib
import hmac
import time
import zlib

import pytest

import cymongoose as cm

DOC = '{"a": {"b": [10, 2.5, "x\\u00e9\\n"], "t": true, "f": false, "n": null}, "big": 123456789012345678901234567890, "neg": -7, "e": 1e3, "s": "plain"}'


# ---- JSON ----


def test_json_get_raw_text():
    assert cm.json_get(DOC, "$.a.b") == '[10, 2.5, "x\\u00e9\\n"]'
    assert cm.json_get(DOC, "$.a.b[0]") == "10"
    assert cm.json_get(DOC, "$.a.b[2]") == '"x\\u00e9\\n"'
    assert cm.json_get(DOC, "$.a.n") == "null"
    assert cm.json_get(DOC, "$") == DOC
    assert cm.json_get(DOC.encode(), "$.s") == '"plain"'  # bytes in, str out
    assert cm.json_get(bytearray(DOC.encode()), "$.neg") == "-7"


def test_json_get_missing_and_invalid():
    assert cm.json_get(DOC, "$.nope") is None
    assert cm.json_get(DOC, "$.a.b[7]") is None
    assert cm.json_get(DOC, "$.s.x") is None  # into a string
    for bad in ('{"a": 1,}', "{'a': 1}", '{"a": 1', "", "nul", '{"a": NaN}', b"\xff"):
        assert cm.json_get(bad, "$.a") is None
        assert cm.json_get_num(bad, "$.a") is None
        assert cm.json_get_long(bad, "$.a") == 0
        assert cm.json_get_bool(bad, "$.a", default=True) is True
        assert cm.json_get_str(bad, "$.a") is None


def test_json_path_errors():
    with pytest.raises(ValueError):
        cm.json_get(DOC, "a.b")  # no leading $
    with pytest.raises(ValueError):
        cm.json_get_num(DOC, "$.a[x]")
    with pytest.raises(TypeError):
        cm.json_get(DOC, b"$.a")
    with pytest.raises(TypeError):
        cm.json_get(3, "$.a")
    with pytest.raises(ValueError):
        cm.json_get(DOC, "$.a\0")


def test_json_get_num():
    assert cm.json_get_num(DOC, "$.a.b[1]") == 2.5
    assert cm.json_get_num(DOC, "$.a.b[0]") == 10.0
    assert isinstance(cm.json_get_num(DOC, "$.a.b[0]"), float)
    assert cm.json_get_num(DOC, "$.e") == 1000.0
    assert cm.json_get_num(DOC, "$.s") is None
    assert cm.json_get_num(DOC, "$.s", 7) == 7
    assert cm.json_get_num(DOC, "$.nope", default=-1.5) == -1.5
    assert cm.json_get_num('{"x": 1e999}', "$.x", "big") == "big"  # out of range


def test_json_get_bool():
    assert cm.json_get_bool(DOC, "$.a.t") is True
    assert cm.json_get_bool(DOC, "$.a.f") is False
    assert cm.json_get_bool(DOC, "$.a.n") is None
    assert cm.json_get_bool(DOC, "$.a.b[0]", default=False) is False


def test_json_get_long():
    assert cm.json_get_long(DOC, "$.a.b[0]") == 10
    assert cm.json_get_long(DOC, "$.neg") == -7
    assert cm.json_get_long(DOC, "$.a.b[1]") == 2  # truncated
    assert cm.json_get_long('{"x": -2.9}', "$.x") == -2
    assert cm.json_get_long(DOC, "$.e") == 1000
    assert cm.json_get_long(DOC, "$.big") == 123456789012345678901234567890  # exact
    assert cm.json_get_long(DOC, "$.s") == 0
    assert cm.json_get_long(DOC, "$.s", 42) == 42
    assert cm.json_get_long(DOC, "$.s", default=None) is None
    assert cm.json_get_long('{"x": 1e999}', "$.x", 5) == 5


def test_json_get_str():
    assert cm.json_get_str(DOC, "$.a.b[2]") == "xé\n"
    assert cm.json_get_str(DOC, "$.s") == "plain"
    assert cm.json_get_str(DOC, "$.a.b[0]") is None
    assert cm.json_get_str('{"k": "\\ud83d\\ude00"}', "$.k") == "\U0001F600"


# ---- URLs and form variables ----


def test_url_parts():
    u = "http://user:secret@example.com:8080/a/b?x=1#frag"
    assert cm.url_host(u) == "example.com"
    assert cm.url_port(u) == 8080
    assert cm.url_user(u) == "user"
    assert cm.url_pass(u) == "secret"
    assert cm.url_uri(u) == "/a/b?x=1#frag"
    assert cm.url_is_ssl(u) is False
    assert cm.url_port("https://h/") == 443 and cm.url_is_ssl("https://h/") is True
    assert cm.url_port("http://h") == 80 and cm.url_uri("http://h") == "/"
    assert cm.url_port("mqtts://h") == 8883 and cm.url_is_ssl("wss://h:1") is True
    assert cm.url_port("tcp://h") == 0
    assert cm.url_host("tcp://[::1]:9") == "::1" and cm.url_port("tcp://[::1]:9") == 9
    assert cm.url_user("http://h/") == "" and cm.url_pass("http://u@h/") == ""
    assert cm.url_uri("http://h?q=1") == "/?q=1"


def test_url_errors():
    with pytest.raises(ValueError):
        cm.url_host("http://bad host/")
    with pytest.raises(ValueError):
        cm.url_port("http://h:99999/")
    with pytest.raises(TypeError):
        cm.url_host(b"http://h/")
    with pytest.raises(TypeError):
        cm.url_port(None)


def test_url_encode():
    assert cm.url_encode("a b&c=d/é~._-") == "a%20b%26c%3Dd%2F%C3%A9~._-"
    assert cm.url_encode(b"\x00\xff") == "%00%FF"
    assert cm.url_encode("") == ""
    with pytest.raises(TypeError):
        cm.url_encode(5)


def test_http_var():
    q = "a=1&b=hello+world&c=%C3%A9&empty=&bare&a=2&d=%zz"
    assert cm.http_var(q, "a") == "1"  # first wins
    assert cm.http_var(q, "b") == "hello world"
    assert cm.http_var(q.encode(), "c") == "é"
    assert cm.http_var(q, "empty") == "" and cm.http_var(q, "bare") == ""
    assert cm.http_var(q, "missing") is None
    assert cm.http_var(q, "d") is None  # bad escape
    assert cm.http_var("", "a") is None
    with pytest.raises(TypeError):
        cm.http_var(q, b"a")
    with pytest.raises(TypeError):
        cm.http_var(1, "a")


# ---- glob matching ----


def test_match():
    assert cm.match("/api/v1/users", "/api/*/users") == (True, ["v1"])
    assert cm.match("/api/v1/users", "/api/#") == (True, ["v1/users"])
    assert cm.match("/a/b", "/a/?") == (True, ["b"])
    assert cm.match("/a/b/c", "/a/*") == (False, [])
    assert cm.match("abc", "abc") == (True, [])
    assert cm.match("x.json", "*.json") == (True, ["x"])
    assert cm.match(b"/f/x", "/f/*") == (True, ["x"])
    with pytest.raises(TypeError):
        cm.match(None, "*")


# ---- hashes, base64, crc ----

VECTORS = [b"", b"abc", b"The quick brown fox jumps over the lazy dog", bytes(range(256)) * 10]


def test_digests_match_hashlib():
    assert cm.md5(b"abc").hex() == "900150983cd24fb0d6963f7d28e17f72"
    assert cm.sha1(b"abc").hex() == "a9993e364706816aba3e25717850c26c9cd0d89d"
    assert cm.sha256(b"abc").hex() == (
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    assert cm.sha256(b"").hex() == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    for v in VECTORS:
        assert cm.md5(v) == hashlib.md5(v).digest()
        assert cm.sha1(v) == hashlib.sha1(v).digest()
        assert cm.sha256(v) == hashlib.sha256(v).digest()
    assert cm.sha256("é") == hashlib.sha256("é".encode()).digest()  # str as UTF-8
    assert cm.md5(memoryview(b"abc")) == cm.md5(b"abc")
    with pytest.raises(TypeError):
        cm.sha1(1)


def test_hmac_sha256():
    # RFC 4231 test case 2
    assert cm.hmac_sha256(b"Jefe", b"what do ya want for nothing?").hex() == (
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    for key in (b"", b"k", b"x" * 200):
        for v in VECTORS:
            assert cm.hmac_sha256(key, v) == hmac.new(key, v, hashlib.sha256).digest()
    assert cm.hmac_sha256(key="k", data="d") == hmac.new(b"k", b"d", hashlib.sha256).digest()
    with pytest.raises(TypeError):
        cm.hmac_sha256(None, b"x")


def test_base64():
    for v in VECTORS + [b"a", b"ab", b"\xff\xfe"]:
        enc = cm.base64_encode(v)
        assert isinstance(enc, str) and enc == base64.b64encode(v).decode()
        assert cm.base64_decode(enc) == v
        assert cm.base64_decode(enc.encode()) == v
    assert cm.base64_encode("hi") == "aGk="
    for bad in ("a", "a===", "aGk", "aG k=", "aGk=\n", "****", "aGl="):
        with pytest.raises(ValueError):
            cm.base64_decode(bad)
    with pytest.raises(TypeError):
        cm.base64_decode(None)
    with pytest.raises(TypeError):
        cm.base64_encode(12)


def test_crc32():
    assert cm.crc32(b"") == 0
    assert cm.crc32(b"123456789") == 0xCBF43926
    for v in VECTORS:
        assert cm.crc32(v) == zlib.crc32(v)
    a, b = b"hello ", b"world"
    assert cm.crc32(b, cm.crc32(a)) == cm.crc32(a + b)
    assert cm.crc32(b, initial=cm.crc32(a)) == zlib.crc32(a + b)
    assert cm.crc32("é") == zlib.crc32("é".encode())
    with pytest.raises(ValueError):
        cm.crc32(b"x", -1)
    with pytest.raises(ValueError):
        cm.crc32(b"x", 1 << 32)
    with pytest.raises(TypeError):
        cm.crc32(b"x", "0")


# ---- clock and randomness ----


def test_millis_is_monotonic_milliseconds():
    a = cm.millis()
    time.sleep(0.05)
    b = cm.millis()
    assert isinstance(a, int) and 40 <= b - a < 5000


def test_random_bytes_and_str():
    assert cm.random_bytes(0) == b""
    r = cm.random_bytes(64)
    assert isinstance(r, bytes) and len(r) == 64 and r != cm.random_bytes(64)
    s = cm.random_str(100)
    assert isinstance(s, str) and len(s) == 100 and s.isalnum() and s.isascii()
    assert cm.random_str(0) == ""
    assert len(set(cm.random_str(1000))) > 40  # all of [A-Za-z0-9] in use
    for fn in (cm.random_bytes, cm.random_str):
        with pytest.raises(ValueError):
            fn(-1)
        with pytest.raises(TypeError):
            fn(1.5)
        with pytest.raises(TypeError):
            fn("3")


def test_functions_are_exported_from_the_package():
    names = ["json_get", "json_get_num", "json_get_bool", "json_get_long", "json_get_str",
             "Rpc", "RpcReq", "url_port", "url_host", "url_user", "url_pass", "url_uri",
             "url_is_ssl", "url_encode", "http_var", "match", "md5", "sha1", "sha256",
             "hmac_sha256", "base64_encode", "base64_decode", "crc32", "millis",
             "random_bytes", "random_str", "HttpMessage"]
    for n in names:
        assert n in cm.__all__, n
    from cymongoose import json_get, Rpc  # noqa: F401
