"""JSON-RPC 2.0 through Rpc/RpcReq."""

import json

import pytest

import cymongoose as cm
from cymongoose import Rpc


def call(rpc, method, params=None, id=1):
    req = {"jsonrpc": "2.0", "method": method, "id": id}
    if params is not None:
        req["params"] = params
    out = rpc.process(json.dumps(req))
    return json.loads(out) if out else None


@pytest.fixture
def rpc():
    r = Rpc()

    def sum_(req):
        params = json.loads(req.params)
        req.ok(json.dumps(sum(params)))

    def echo(req):
        req.ok(req.frame)

    r.add("sum", sum_)
    r.add("echo", echo)
    r.add("fail", lambda req: req.err(-32000, "custom failure"))
    r.add("silent", lambda req: None)
    r.add("math.*", lambda req: req.ok('"%s"' % req.method))
    return r


def test_ok_and_methods(rpc):
    assert call(rpc, "sum", [1, 2, 3]) == {"jsonrpc": "2.0", "id": 1, "result": 6}
    assert rpc.methods == ["sum", "echo", "fail", "silent", "math.*"]
    r = call(rpc, "echo", {"k": "v"}, id="abc")
    assert r["id"] == "abc" and r["result"]["params"] == {"k": "v"}
    assert call(rpc, "math.add")["result"] == "math.add"


def test_error_codes(rpc):
    assert call(rpc, "fail")["error"] == {"code": -32000, "message": "custom failure"}
    assert call(rpc, "nosuch")["error"]["code"] == -32601
    assert call(rpc, "silent")["error"]["code"] == -32603  # no answer
    parse = json.loads(rpc.process("{bad json"))
    assert parse["error"]["code"] == -32700 and parse["id"] is None
    invalid = json.loads(rpc.process('{"jsonrpc": "1.0", "method": "sum", "id": 3}'))
    assert invalid["error"]["code"] == -32600
    assert json.loads(rpc.process("[]"))["error"]["code"] == -32600


def test_notifications_and_batches(rpc):
    assert rpc.process('{"jsonrpc": "2.0", "method": "sum", "params": [1]}') == ""
    batch = ('[{"jsonrpc": "2.0", "method": "sum", "params": [1, 1], "id": 1},'
             ' {"jsonrpc": "2.0", "method": "sum", "params": [5]},'
             ' {"jsonrpc": "2.0", "method": "nosuch", "id": 2}]')
    out = json.loads(rpc.process(batch.encode()))  # bytes frames too
    assert out[0] == {"jsonrpc": "2.0", "id": 1, "result": 2}
    assert out[1]["id"] == 2 and out[1]["error"]["code"] == -32601
    assert len(out) == 2


def test_handler_exception_gives_internal_error_and_is_reported():
    errors = []
    r = Rpc(error_handler=errors.append)

    def boom(req):
        raise ZeroDivisionError("secret detail")

    r.add("boom", boom)
    r.add("ok", lambda req: req.ok("true"))
    out = call(r, "boom")
    assert out["error"]["code"] == -32603
    assert out["error"]["message"] == "secret detail"  # str(exc), as the package sends it
    assert len(errors) == 1 and isinstance(errors[0], ZeroDivisionError)
    assert call(r, "ok")["result"] is True  # still working


def test_handler_exception_default_prints(capsys):
    r = Rpc()
    r.add("boom", lambda req: 1 / 0)
    assert call(r, "boom")["error"]["code"] == -32603
    assert "ZeroDivisionError" in capsys.readouterr().err


def test_answer_then_raise_keeps_answer():
    errors = []
    r = Rpc(error_handler=errors.append)

    def h(req):
        req.ok("1")
        raise ValueError("late")

    r.add("h", h)
    assert call(r, "h")["result"] == 1 and len(errors) == 1


def test_keyboard_interrupt_propagates_after_answer():
    r = Rpc()

    def h(req):
        raise KeyboardInterrupt

    r.add("h", h)
    with pytest.raises(KeyboardInterrupt):
        r.process('{"jsonrpc": "2.0", "method": "h", "id": 1}')
    r.add("ok", lambda req: req.ok("2"))
    assert call(r, "ok")["result"] == 2


def test_req_answer_errors_and_staleness():
    kept = []
    r = Rpc()

    def h(req):
        kept.append(req)
        with pytest.raises(ValueError):
            req.ok("{not json")
        with pytest.raises(TypeError):
            req.ok(5)
        req.ok('{"a": 1}')
        with pytest.raises(RuntimeError, match="already"):
            req.err(1, "x")
        with pytest.raises(RuntimeError, match="already"):
            req.ok("2")

    r.add("h", h)
    assert call(r, "h")["result"] == {"a": 1}
    req = kept[0]
    assert not req
    for access in (lambda: req.frame, lambda: req.ok("1"), lambda: req.err(1, "m"),
                   lambda: req.method, lambda: req.params, lambda: req.id):
        with pytest.raises(RuntimeError, match="after its handler"):
            access()


def test_err_message_is_escaped():
    r = Rpc()
    r.add("h", lambda req: req.err(-1, 'quote " and\nnewline é'))
    assert call(r, "h")["error"]["message"] == 'quote " and\nnewline é'


def test_add_replaces_and_validates():
    r = Rpc()
    r.add("m", lambda req: req.ok("1"))
    r.add("m", lambda req: req.ok("2"))
    assert r.methods == ["m"] and call(r, "m")["result"] == 2
    with pytest.raises(TypeError):
        r.add("x", 3)
    with pytest.raises(ValueError):
        r.add("", lambda req: None)
    with pytest.raises(TypeError):
        r.add(b"x", lambda req: None)

    def adder(req):
        with pytest.raises(RuntimeError, match="process"):
            r.add("other", lambda q: None)
        req.ok("null")

    r.add("adder", adder)
    assert call(r, "adder")["result"] is None


def test_nested_process_from_a_handler():
    r = Rpc()
    r.add("inner", lambda req: req.ok("7"))

    def outer(req):
        inner = json.loads(r.process('{"jsonrpc": "2.0", "method": "inner", "id": 9}'))
        req.ok(json.dumps(inner["result"] * 2))

    r.add("outer", outer)
    assert call(r, "outer")["result"] == 14


def test_rpc_cycle_is_collected():
    import gc
    import weakref

    r = Rpc()
    r.add("self", lambda req, r=r: req.ok("1"))  # handler references the Rpc
    ref = weakref.ref(r)
    del r
    gc.collect()
    assert ref() is None


def test_rpc_req_not_constructible():
    with pytest.raises(TypeError):
        cm.RpcReq()
    with pytest.raises(TypeError):
        Rpc().process(None)
