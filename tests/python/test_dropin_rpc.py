"""Rpc as programs written for the package use it: requests without "jsonrpc",
ids echoed as written, str(exc) in the -32603 answer, "already sent"."""

import json

import pytest

from cymongoose import Rpc


@pytest.fixture
def rpc():
    r = Rpc(error_handler=lambda exc: None)  # keep test output quiet
    r.add("sum", lambda req: req.ok(json.dumps(sum(json.loads(req.params)))))
    r.add("silent", lambda req: None)
    return r


def test_request_without_jsonrpc_member_is_answered(rpc):
    out = json.loads(rpc.process('{"method": "sum", "params": [2, 3], "id": 7}'))
    assert out["id"] == 7 and out["result"] == 5
    assert out.get("jsonrpc", "2.0") == "2.0"
    assert "error" not in out


@pytest.mark.parametrize("raw_id", ['1', '-0', '1.50', '1e3', '"abc"', '"ü\\u00fc"', 'null',
                                    '12345678901234567890123'])
def test_id_is_echoed_verbatim(rpc, raw_id):
    out = rpc.process('{"method":"sum","params":[1],"id":%s}' % raw_id)
    assert ('"id":%s,' % raw_id) in out  # the JSON text as written, not re-encoded
    assert json.loads(out)["result"] == 1


def test_unknown_method_and_silent_handler(rpc):
    out = json.loads(rpc.process('{"method": "nosuch", "id": 1}'))
    assert out["error"]["code"] == -32601 and out["id"] == 1
    out = json.loads(rpc.process('{"method": "silent", "id": 2}'))
    assert out["error"]["code"] == -32603 and out["id"] == 2


def test_raising_handler_gives_internal_error_with_str_exc():
    reported = []
    r = Rpc(error_handler=reported.append)

    def boom(req):
        raise KeyError("missing thing")

    def plain(req):
        raise ValueError("bad value: ü")

    r.add("boom", boom)
    r.add("plain", plain)
    out = json.loads(r.process('{"method": "boom", "id": 1}'))
    assert out["error"] == {"code": -32603, "message": str(KeyError("missing thing"))}
    out = json.loads(r.process('{"method": "plain", "id": "x"}'))
    assert out["error"] == {"code": -32603, "message": "bad value: ü"} and out["id"] == "x"
    assert [type(e) for e in reported] == [KeyError, ValueError]


def test_second_answer_raises_already_sent_and_first_stands():
    seen = []
    r = Rpc()

    def ok_then_err(req):
        req.ok('"first"')
        with pytest.raises(RuntimeError, match="already sent"):
            req.err(-1, "second")
        with pytest.raises(RuntimeError, match="already sent"):
            req.ok('"second"')
        seen.append("ok_then_err")

    def err_then_ok(req):
        req.err(-5, "first")
        try:
            req.ok("2")
        except RuntimeError as e:
            seen.append(str(e))

    r.add("a", ok_then_err)
    r.add("b", err_then_ok)
    assert json.loads(r.process('{"method": "a", "id": 1}'))["result"] == "first"
    out = json.loads(r.process('{"method": "b", "id": 2}'))
    assert out["error"] == {"code": -5, "message": "first"}
    assert seen[0] == "ok_then_err" and "already sent" in seen[1]


def test_notification_answered_with_ok_gives_empty_string(rpc):
    r = Rpc()
    answered = []

    def h(req):
        req.ok("1")
        answered.append(req.id)

    r.add("note", h)
    assert r.process('{"method": "note", "params": []}') == ""
    assert r.process('{"jsonrpc": "2.0", "method": "note"}') == ""
    assert answered == [None, None]


def test_batches_keep_working_with_and_without_jsonrpc(rpc):
    batch = json.dumps([
        {"method": "sum", "params": [1, 1], "id": 1},
        {"jsonrpc": "2.0", "method": "sum", "params": [2, 2], "id": 2},
        {"method": "sum", "params": [9]},  # a notification
        {"method": "nosuch", "id": 3},
    ])
    out = json.loads(rpc.process(batch))
    assert [(o["id"], o.get("result"), o.get("error", {}).get("code")) for o in out] == [
        (1, 2, None), (2, 4, None), (3, None, -32601)]
    assert rpc.process('[{"method": "sum", "params": [1]}]') == ""  # only notifications


def test_a_wrong_version_is_still_invalid(rpc):
    out = json.loads(rpc.process('{"jsonrpc": "1.0", "method": "sum", "params": [1], "id": 4}'))
    assert out["error"]["code"] == -32600 and out["id"] == 4
