"""listen()/connect()/ws_connect() failures all raise RuntimeError("Failed to
listen on '<url>': <reason>") / ("Failed to connect to '<url>': <reason>"), and
schemes without a protocol layer are plain TCP."""

import re

import pytest

from cymongoose import MG_EV_CLOSE, MG_EV_CONNECT, MG_EV_READ, Manager

from conftest import free_port, poll_until


def failure(call, url):
    with pytest.raises(RuntimeError) as ei:
        call(url)
    assert type(ei.value) is RuntimeError  # not a subclass such as NotImplementedError
    return str(ei.value)


def expect(msg, verb, url):
    prefix = ("Failed to listen on '%s'" if verb == "listen" else "Failed to connect to '%s'") % url
    assert msg.startswith(prefix + ": "), msg
    reason = msg[len(prefix) + 2:]
    # The reason follows once; the URL (or libcymg's tcp:// form of it) is not repeated.
    assert reason and url not in reason and not reason.startswith("'"), reason
    return reason


@pytest.mark.parametrize("url", ["invalid://127.0.0.1:0", "invalid://x", "gopher://h:70",
                                 "bogus", "127.0.0.1:80", "tcp://[::1:0", "tcp://h:99999",
                                 "tcp://no-such-host.invalid:0"])
def test_listen_failures(mgr, url):
    expect(failure(mgr.listen, url), "listen", url)
    assert mgr.connections == ()


@pytest.mark.parametrize("url", ["invalid://127.0.0.1:1", "bogus", "tcp://127.0.0.1",
                                 "tcp://:1", "http2://x:1"])
def test_connect_failures(mgr, url):
    expect(failure(mgr.connect, url), "connect", url)
    assert mgr.connections == ()


def test_reasons_say_what_was_wrong(mgr):
    assert "scheme" in expect(failure(mgr.listen, "invalid://h:1"), "listen", "invalid://h:1")
    assert "port" in expect(failure(mgr.connect, "tcp://127.0.0.1"), "connect",
                            "tcp://127.0.0.1")
    busy = mgr.listen("tcp://127.0.0.1:0")
    url = "tcp://127.0.0.1:%d" % busy.local_addr[1]
    assert re.search("in use|bind", expect(failure(mgr.listen, url), "listen", url))


@pytest.mark.parametrize("url", ["http://no-such-host.invalid:0", "ws://no-such-host.invalid:0"])
def test_http_false_failures_name_the_url_as_written(mgr, url):
    reason = expect(failure(lambda u: mgr.listen(u, http=False), url), "listen", url)
    assert "no-such-host.invalid" in reason and "tcp://" not in reason


@pytest.mark.parametrize("url", ["https://127.0.0.1:0", "wss://127.0.0.1:0", "tls://127.0.0.1:0"])
def test_tls_schemes_open_tls_connections(mgr, url):
    lsn = mgr.listen(url)
    raw = mgr.listen(url, http=False)
    assert lsn.is_tls and raw.is_tls and lsn.is_listening and raw.is_listening
    c = mgr.connect(url.replace(":0", ":%d" % free_port()))
    assert c.is_client  # the refusal comes later, as MG_EV_ERROR then MG_EV_CLOSE


def test_listen_mqtt_schemes_are_mqtt_listeners(mgr):
    # listen("mqtt://") and listen("mqtts://") are the parser-level MQTT
    # listener (tests/python/test_mqtt_listen.py), the second one over TLS.
    plain = mgr.listen("mqtt://127.0.0.1:0")
    tls = mgr.listen("mqtts://127.0.0.1:0")
    assert plain.is_listening and tls.is_listening
    assert not plain.is_tls and tls.is_tls
    assert plain.mqtt_pub("t", "m", qos=1) == 0  # an MQTT listener: the call does nothing


def test_ws_connect_failures(mgr):
    for url in ("http://127.0.0.1:1/", "tcp://127.0.0.1:1", "invalid://x:1", "127.0.0.1:1"):
        assert "ws://" in expect(failure(mgr.ws_connect, url), "connect", url)
    for url in ("ws://[::1", "ws://h:99999/"):
        expect(failure(mgr.ws_connect, url), "connect", url)
    assert mgr.connections == ()
    assert mgr.ws_connect("wss://127.0.0.1:%d/" % free_port()).is_client  # fails later


def test_http_specific_misuse_and_closed_manager():
    m = Manager()
    url = "udp://127.0.0.1:0"
    expect(failure(lambda u: m.listen(u, http=True), url), "listen", url)
    m.close()
    for call, verb in ((m.listen, "listen"), (m.connect, "connect"), (m.ws_connect, "connect")):
        u = "ws://127.0.0.1:1" if call == m.ws_connect else "tcp://127.0.0.1:1"
        expect(failure(call, u), verb, u)


def test_mqtt_scheme_connects_as_plain_tcp(mgr):
    # connect("mqtt://") is raw TCP to the port (mqtt_connect() is the client);
    # listen("mqtt://") is the MQTT listener (above), so the server here is tcp://.
    got = {}

    def server(conn, ev, data):
        if ev == MG_EV_READ:
            got["server"] = got.get("server", b"") + conn.recv_data()
            conn.send(b"pong")

    def client(conn, ev, data):
        if ev == MG_EV_CONNECT:
            conn.send(b"\x10raw bytes, no MQTT layer")
        elif ev == MG_EV_READ:
            got["client"] = got.get("client", b"") + conn.recv_data()

    lsn = mgr.listen("tcp://127.0.0.1:0", server)
    assert lsn.is_listening and not lsn.is_udp
    port = lsn.local_addr[1]
    c = mgr.connect("mqtt://127.0.0.1:%d" % port, client)
    assert c.is_client and not c.is_udp
    poll_until(mgr, lambda: got.get("client") == b"pong")
    assert got["server"] == b"\x10raw bytes, no MQTT layer"


def test_mqtt_default_port_is_1883(mgr):
    """connect("mqtt://host") goes to port 1883: checked against a listener there
    when the port is free, else through the URL helper that shares the table."""
    import cymongoose

    assert cymongoose.url_port("mqtt://127.0.0.1") == 1883
    try:
        lsn = mgr.listen("mqtt://127.0.0.1")
    except RuntimeError as e:
        if "in use" not in str(e):
            raise
        pytest.skip("port 1883 is in use on this machine")
    assert lsn.local_addr[1] == 1883
    accepted = []
    lsn.set_handler(lambda conn, ev, data: accepted.append(conn) if ev == MG_EV_READ else None)
    c = mgr.connect("mqtt://127.0.0.1")
    c.send(b"x")
    poll_until(mgr, lambda: accepted)


def test_listen_from_a_handler_while_the_manager_closes():
    out = []

    def handler(conn, ev, data):
        if ev == MG_EV_CLOSE:
            try:
                m.listen("tcp://127.0.0.1:0")
            except RuntimeError as e:
                out.append(str(e))

    m = Manager(handler)
    m.listen("tcp://127.0.0.1:0")
    m.close()
    assert out == ["Failed to listen on 'tcp://127.0.0.1:0': the manager is closing"]
