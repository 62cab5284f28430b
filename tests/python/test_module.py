"""Constants, module functions, package layout."""

import pathlib

import pytest

import cymongoose
from cymongoose import _cymg


def test_reexports_everything():
    for name in dir(_cymg):
        if not name.startswith("_"):
            assert getattr(cymongoose, name) is getattr(_cymg, name)
    assert cymongoose.Manager is _cymg.Manager
    assert isinstance(cymongoose.__version__, str)


def test_typing_files_shipped():
    pkg = pathlib.Path(cymongoose.__file__).parent
    assert (pkg / "py.typed").exists()
    assert (pkg / "_cymg.pyi").exists()


def test_stub_matches_the_extension():
    """_cymg.pyi names exactly what the extension has: module-level names and
    each class's public attributes."""
    import ast

    pkg = pathlib.Path(cymongoose.__file__).parent
    tree = ast.parse((pkg / "_cymg.pyi").read_text())
    stub_top, stub_classes = set(), {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            stub_top.add(node.name)
            stub_classes[node.name] = {
                n.name if isinstance(n, ast.FunctionDef) else n.target.id
                for n in node.body
                if isinstance(n, (ast.FunctionDef, ast.AnnAssign))
            }
        elif isinstance(node, ast.FunctionDef):
            stub_top.add(node.name)
        elif isinstance(node, ast.AnnAssign):
            stub_top.add(node.target.id)
    module = {n for n in dir(_cymg) if not n.startswith("_")}
    assert module == stub_top - {"__version__"}
    for cls, attrs in stub_classes.items():
        real = {n for n in dir(getattr(_cymg, cls)) if not n.startswith("_")}
        assert real == {a for a in attrs if not a.startswith("_")}, cls


EVENTS = [
    "ERROR", "OPEN", "POLL", "RESOLVE", "CONNECT", "ACCEPT", "TLS_HS", "READ", "WRITE",
    "CLOSE", "HTTP_HDRS", "HTTP_MSG", "WS_OPEN", "WS_MSG", "WS_CTL", "MQTT_CMD",
    "MQTT_MSG", "MQTT_OPEN", "SNTP_TIME", "WAKEUP",
]


def test_event_constants():
    for i, name in enumerate(EVENTS):
        assert getattr(cymongoose, "MG_EV_" + name) == i
    assert cymongoose.MG_EV_USER == 100


def test_other_constants():
    assert (cymongoose.WEBSOCKET_OP_TEXT, cymongoose.WEBSOCKET_OP_BINARY,
            cymongoose.WEBSOCKET_OP_PING, cymongoose.WEBSOCKET_OP_PONG) == (1, 2, 9, 10)
    levels = ["NONE", "ERROR", "INFO", "DEBUG", "VERBOSE"]
    assert [getattr(cymongoose, "MG_LL_" + n) for n in levels] == [0, 1, 2, 3, 4]
    props = ["BYTE", "STRING", "STRING_PAIR", "BINARY_DATA", "VARIABLE_INT", "INT", "SHORT"]
    assert [getattr(cymongoose, "MQTT_PROP_TYPE_" + p) for p in props] == list(range(7))


def test_event_name():
    for i, name in enumerate(EVENTS):
        assert cymongoose.event_name(i) == "MG_EV_" + name
    assert cymongoose.event_name(cymongoose.MG_EV_HTTP_MSG) == "MG_EV_HTTP_MSG"
    assert cymongoose.event_name(100) == "MG_EV_USER"
    assert cymongoose.event_name(103) == "MG_EV_USER+3"
    assert cymongoose.event_name(77) == "MG_EV_UNKNOWN(77)"
    assert cymongoose.event_name(-1) == "MG_EV_UNKNOWN(-1)"
    assert cymongoose.event_name(2**70) == "MG_EV_UNKNOWN(%d)" % 2**70
    with pytest.raises(TypeError):
        cymongoose.event_name("MG_EV_READ")


def test_log_level():
    old = cymongoose.log_get()
    try:
        cymongoose.log_set(cymongoose.MG_LL_DEBUG)
        assert cymongoose.log_get() == cymongoose.MG_LL_DEBUG
        cymongoose.log_set(cymongoose.MG_LL_NONE)
        assert cymongoose.log_get() == 0
    finally:
        cymongoose.log_set(old)
    with pytest.raises(ValueError, match="0..4"):
        cymongoose.log_set(9)
    with pytest.raises(ValueError):
        cymongoose.log_set(-1)
    with pytest.raises(TypeError):
        cymongoose.log_set("debug")


def test_types_not_instantiable():
    with pytest.raises(TypeError):
        cymongoose.Connection()
    with pytest.raises(TypeError):
        cymongoose.Timer()
