"""MQTT client (Manager.mqtt_connect) against a real mosquitto on loopback, with
paho-mqtt as the other party."""

import socket
import threading

import pytest

import cymongoose
from cymongoose import (MG_EV_CLOSE, MG_EV_ERROR, MG_EV_MQTT_CMD, MG_EV_MQTT_MSG,
                        MG_EV_MQTT_OPEN)

from conftest import mqtt_read, paho_client, poll_until

PUBLISH, PINGRESP, SUBACK = 3, 13, 9


class Mqtt:
    """Handler recording MQTT events per kind; subscribes on OPEN if asked."""

    def __init__(self, sub=None, qos=0):
        self.opened, self.msgs, self.cmds, self.errors = [], [], [], []
        self.closed = False
        self.sub, self.qos = sub, qos

    def __call__(self, conn, ev, data):
        if ev == MG_EV_MQTT_OPEN:
            self.opened.append(data)
            if self.sub:
                conn.mqtt_sub(self.sub, qos=self.qos)
        elif ev == MG_EV_MQTT_MSG:
            self.msgs.append((data.topic, data.data, data.text, data.qos, data.id))
        elif ev == MG_EV_MQTT_CMD:
            self.cmds.append((data.cmd, data.id, data.ack))
        elif ev == MG_EV_ERROR:
            self.errors.append(data)
        elif ev == MG_EV_CLOSE:
            self.closed = True


class PahoPeer:
    """A paho client on its own network thread, collecting what it receives."""

    def __init__(self, broker, topic=None, qos=0, version=4, client_id="", **kw):
        self.got = []
        self.ready = threading.Event()
        self.cli = paho_client(version, client_id, **kw)
        self.cli.on_message = lambda c, u, m: self.got.append(m)
        self.cli.on_subscribe = lambda *a: self.ready.set()
        self.cli.connect("127.0.0.1", broker.port)
        self.cli.loop_start()
        if topic:
            self.cli.subscribe(topic, qos)
            assert self.ready.wait(10), "paho: no SUBACK"

    def stop(self):
        self.cli.disconnect()
        self.cli.loop_stop()


def open_client(mgr, url, h, **kw):
    c = mgr.mqtt_connect(url, handler=h, **kw)
    poll_until(mgr, lambda: h.opened or h.closed)
    assert h.opened == [0], h.errors
    return c


def test_seed_mqtt_client_example(mgr, mosquitto, capsys):
    # The user guide's handler, unchanged; only the broker's address is ours.
    from cymongoose import MG_EV_MQTT_MSG, MG_EV_MQTT_OPEN  # noqa: F811

    def mqtt_handler(conn, ev, data):
        if ev == MG_EV_MQTT_OPEN:
            print("Connected to broker")
            conn.mqtt_sub("sensors/#", qos=1)
        elif ev == MG_EV_MQTT_MSG:
            print(f"{data.topic}: {data.text}")

    subacked = []
    conn = mgr.mqtt_connect(
        mosquitto.url,
        handler=lambda c, ev, d: (mqtt_handler(c, ev, d),
                                  ev == MG_EV_MQTT_CMD and d.cmd == SUBACK and subacked.append(1)),
        client_id='my-client',
        clean_session=True,
        keepalive=60,
    )
    poll_until(mgr, lambda: subacked)
    peer = PahoPeer(mosquitto)
    peer.cli.publish("sensors/kitchen/temp", "21.5", qos=1)
    out = []
    poll_until(mgr, lambda: out.append(capsys.readouterr().out) or "21.5" in "".join(out))
    peer.stop()
    text = "".join(out)
    assert "Connected to broker\n" in text
    assert "sensors/kitchen/temp: 21.5\n" in text
    conn.close()


@pytest.mark.parametrize("qos", [0, 1, 2])
def test_pub_sub_roundtrip_each_qos(mgr, mosquitto, qos):
    h = Mqtt(sub="t/rt/%d" % qos, qos=qos)
    c = open_client(mgr, mosquitto.url, h)
    poll_until(mgr, lambda: any(cmd == SUBACK for cmd, _, _ in h.cmds))
    mid = c.mqtt_pub("t/rt/%d" % qos, b"\x00payload\xff", qos=qos)
    if qos == 0:
        assert mid == 0
    else:
        assert 1 <= mid <= 65535
    poll_until(mgr, lambda: h.msgs)
    topic, data, _text, got_qos, got_id = h.msgs[0]
    assert (topic, data, got_qos) == ("t/rt/%d" % qos, b"\x00payload\xff", qos)
    assert (got_id != 0) == (qos > 0)
    # MQTT_CMD comes for the PUBLISH too, after its MSG
    poll_until(mgr, lambda: any(cmd == PUBLISH for cmd, _, _ in h.cmds))
    if qos:  # our own PUBLISH acknowledged: PUBACK (4) or PUBCOMP (7) with our id
        poll_until(mgr, lambda: (4 if qos == 1 else 7, mid, 0) in [x for x in h.cmds])
    c.close()


def test_packet_ids_distinct_while_in_flight(mgr, mosquitto):
    h = Mqtt()
    c = open_client(mgr, mosquitto.url, h)
    ids = [c.mqtt_pub("t/ids", "x", qos=1) for _ in range(50)]
    assert len(set(ids)) == 50 and all(1 <= i <= 65535 for i in ids)
    poll_until(mgr, lambda: sum(1 for cmd, _, _ in h.cmds if cmd == 4) == 50)
    c.close()


def test_message_str_and_bytes_like(mgr, mosquitto):
    h = Mqtt(sub="t/types")
    c = open_client(mgr, mosquitto.url, h)
    poll_until(mgr, lambda: any(cmd == SUBACK for cmd, _, _ in h.cmds))
    c.mqtt_pub("t/types", "héllo")
    c.mqtt_pub("t/types", bytearray(b"ba"))
    c.mqtt_pub("t/types", memoryview(b"mv"))
    poll_until(mgr, lambda: len(h.msgs) == 3)
    assert [m[1] for m in h.msgs] == ["héllo".encode(), b"ba", b"mv"]
    assert h.msgs[0][2] == "héllo"
    c.close()


def test_paho_to_us_and_us_to_paho(mgr, mosquitto):
    h = Mqtt(sub="t/paho/in", qos=1)
    c = open_client(mgr, mosquitto.url, h)
    poll_until(mgr, lambda: any(cmd == SUBACK for cmd, _, _ in h.cmds))
    peer = PahoPeer(mosquitto, "t/paho/out", qos=2)
    peer.cli.publish("t/paho/in", b"from paho", qos=1)
    poll_until(mgr, lambda: h.msgs)
    assert h.msgs[0][:2] == ("t/paho/in", b"from paho")
    c.mqtt_pub("t/paho/out", "from us", qos=2)
    poll_until(mgr, lambda: peer.got)
    assert (peer.got[0].topic, peer.got[0].payload, peer.got[0].qos) == ("t/paho/out", b"from us", 2)
    peer.stop()
    c.close()


def test_retained_message_reaches_later_subscriber(mgr, mosquitto):
    peer = PahoPeer(mosquitto)
    info = peer.cli.publish("t/retained", b"kept", qos=1, retain=True)
    info.wait_for_publish()
    peer.stop()
    h = Mqtt(sub="t/retained")
    c = open_client(mgr, mosquitto.url, h)
    poll_until(mgr, lambda: h.msgs)
    assert h.msgs[0][:2] == ("t/retained", b"kept")
    c.mqtt_pub("t/retained", b"", retain=True)  # clears it for other tests
    c.close()


def test_our_retain_flag(mgr, mosquitto):
    h = Mqtt()
    c = open_client(mgr, mosquitto.url, h)
    c.mqtt_pub("t/ours/retained", "r", qos=1, retain=True)
    poll_until(mgr, lambda: any(cmd == 4 for cmd, _, _ in h.cmds))
    peer = PahoPeer(mosquitto, "t/ours/retained")
    deadline_ok = peer.ready.wait(10)
    assert deadline_ok
    import time
    end = time.monotonic() + 10
    while not peer.got and time.monotonic() < end:
        mgr.poll(10)
    assert peer.got and peer.got[0].retain and peer.got[0].payload == b"r"
    peer.stop()
    c.mqtt_pub("t/ours/retained", b"", retain=True)
    c.close()


def test_will_on_abrupt_close_not_after_disconnect(mgr, mosquitto):
    peer = PahoPeer(mosquitto, "t/will/+", qos=1)
    h1 = Mqtt()
    c1 = open_client(mgr, mosquitto.url, h1, will_topic="t/will/a", will_message=b"gone",
                     will_qos=1)
    c1.close()  # no DISCONNECT: the broker publishes the will
    h2 = Mqtt()
    c2 = open_client(mgr, mosquitto.url, h2, will_topic="t/will/b", will_message=b"no")
    c2.mqtt_disconnect()
    c2.drain()
    poll_until(mgr, lambda: h2.closed)
    poll_until(mgr, lambda: peer.got)
    # a marker after both: the will of b, had it been sent, would come before it
    peer.cli.publish("t/will/z", b"marker", qos=1)
    poll_until(mgr, lambda: len(peer.got) >= 2)
    assert [(m.topic, m.payload) for m in peer.got] == [("t/will/a", b"gone"),
                                                        ("t/will/z", b"marker")]
    peer.stop()


def test_mqtt_disconnect_sends_only_disconnect(mgr, mosquitto):
    h = Mqtt()
    c = open_client(mgr, mosquitto.url, h)
    c.mqtt_disconnect()
    assert c.send_data() == b"\xe0\x00"
    poll_until(mgr, lambda: h.closed)  # the broker closes after DISCONNECT


def test_keepalive_pings(mgr, mosquitto):
    h = Mqtt()
    c = open_client(mgr, mosquitto.url, h, keepalive=1)
    poll_until(mgr, lambda: sum(1 for cmd, _, _ in h.cmds if cmd == PINGRESP) >= 2, timeout=15)
    assert not h.closed and not h.errors
    c.close()


def test_mqtt_ping_by_hand(mgr, mosquitto):
    h = Mqtt()
    c = open_client(mgr, mosquitto.url, h, keepalive=0)
    assert c.mqtt_ping() is None
    assert c.send_data() == b"\xc0\x00"
    poll_until(mgr, lambda: any(cmd == PINGRESP for cmd, _, _ in h.cmds))
    c.close()


def test_persistent_session_gets_missed_messages(mgr, mosquitto):
    h = Mqtt(sub="t/persist", qos=1)
    c = open_client(mgr, mosquitto.url, h, client_id="cymg-persist", clean_session=False)
    poll_until(mgr, lambda: any(cmd == SUBACK for cmd, _, _ in h.cmds))
    c.mqtt_disconnect()
    poll_until(mgr, lambda: h.closed)
    peer = PahoPeer(mosquitto)
    peer.cli.publish("t/persist", b"while away", qos=1).wait_for_publish()
    peer.stop()
    h2 = Mqtt()
    c2 = open_client(mgr, mosquitto.url, h2, client_id="cymg-persist", clean_session=False)
    poll_until(mgr, lambda: h2.msgs)
    assert h2.msgs[0][:2] == ("t/persist", b"while away")
    c2.mqtt_unsub("t/persist")
    c2.close()


def test_v5_user_properties_both_ways(mgr, mosquitto):
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    seen = []

    def h(conn, ev, data):
        if ev == MG_EV_MQTT_OPEN:
            seen.append(("open", data))
        elif ev == MG_EV_MQTT_MSG:
            seen.append(("msg", data.topic, data.properties()))

    c = mgr.mqtt_connect(mosquitto.url, handler=h, version=5)
    poll_until(mgr, lambda: seen)
    assert seen[0] == ("open", 0)
    c.mqtt_sub("t/v5/in", qos=1)
    peer = PahoPeer(mosquitto, "t/v5/out", version=5)
    props = Properties(PacketTypes.PUBLISH)
    props.UserProperty = ("k", "v")
    import time
    for _ in range(50):  # our SUBACK is not observed here: publish until it arrives
        peer.cli.publish("t/v5/in", b"p", qos=1, properties=props)
        end = time.monotonic() + 0.2
        while time.monotonic() < end and len(seen) < 2:
            mgr.poll(10)
        if len(seen) >= 2:
            break
    assert seen[1][:2] == ("msg", "t/v5/in")
    assert {"id": 0x26, "key": "k", "val": "v"} in seen[1][2]
    c.mqtt_pub("t/v5/out", "x", qos=1, properties=[{"id": 0x26, "key": "a", "val": "b"}])
    poll_until(mgr, lambda: peer.got)
    assert ("a", "b") in peer.got[0].properties.UserProperty
    peer.stop()
    c.close()


def test_over_websocket(mgr, mosquitto):
    h = Mqtt(sub="t/ws")
    url = f"ws://127.0.0.1:{mosquitto.ws_port}/mqtt"
    c = open_client(mgr, url, h)
    poll_until(mgr, lambda: any(cmd == SUBACK for cmd, _, _ in h.cmds))
    c.mqtt_pub("t/ws", "over ws")
    poll_until(mgr, lambda: h.msgs)
    assert h.msgs[0][:2] == ("t/ws", b"over ws")
    c.close()


def test_over_tls(mgr, mosquitto):
    ca = open(mosquitto.ca, "rb").read()

    h = Mqtt(sub="t/tls")

    def handler(conn, ev, data):
        if ev == cymongoose.MG_EV_CONNECT:
            conn.tls_init(cymongoose.TlsOpts(ca=ca, name="localhost"))
        h(conn, ev, data)

    c = mgr.mqtt_connect(f"mqtts://127.0.0.1:{mosquitto.tls_port}", handler=handler)
    poll_until(mgr, lambda: any(cmd == SUBACK for cmd, _, _ in h.cmds) or h.closed)
    assert h.opened == [0], h.errors
    c.mqtt_pub("t/tls", "secret")
    poll_until(mgr, lambda: h.msgs)
    assert c.is_tls and h.msgs[0][:2] == ("t/tls", b"secret")
    c.close()


def test_stale_message_view(mgr, mosquitto):
    kept = []
    h = Mqtt(sub="t/stale")

    def handler(conn, ev, data):
        h(conn, ev, data)
        if ev == MG_EV_MQTT_MSG:
            assert bool(data)
            kept.append(data)

    c = mgr.mqtt_connect(mosquitto.url, handler=handler)
    poll_until(mgr, lambda: any(cmd == SUBACK for cmd, _, _ in h.cmds))
    c.mqtt_pub("t/stale", "v")
    poll_until(mgr, lambda: kept)
    m = kept[0]
    assert not bool(m)
    assert (m.topic, m.data, m.text, m.id, m.cmd, m.qos, m.ack, m.properties()) == \
        ("", b"", "", 0, 0, 0, 0, [])
    c.close()


def test_empty_client_id_gets_a_random_one(mgr, mosquitto):
    # mosquitto refuses an empty id with clean session off (CONNACK 2): ours
    # never sends one empty, so two such clients both get in
    h1, h2 = Mqtt(), Mqtt()
    c1 = open_client(mgr, mosquitto.url, h1, clean_session=False)
    c2 = open_client(mgr, mosquitto.url, h2, clean_session=False)
    assert not h1.closed and not h2.closed
    c1.close()
    c2.close()


def test_errors_on_closed_connection(mgr, mosquitto):
    h = Mqtt()
    c = open_client(mgr, mosquitto.url, h)
    c.close()
    poll_until(mgr, lambda: h.closed)
    for call in (lambda: c.mqtt_pub("t", "m"), lambda: c.mqtt_sub("t"),
                 lambda: c.mqtt_unsub("t"), c.mqtt_ping, c.mqtt_pong, c.mqtt_disconnect):
        with pytest.raises(RuntimeError, match="closed"):
            call()


def test_bad_arguments(mgr, mosquitto):
    h = Mqtt()
    c = open_client(mgr, mosquitto.url, h)
    with pytest.raises(TypeError):
        c.mqtt_pub(1, "m")
    with pytest.raises(TypeError):
        c.mqtt_pub("t", 5)
    with pytest.raises(ValueError):
        c.mqtt_pub("t", "m", qos=3)
    with pytest.raises(ValueError):
        c.mqtt_pub("a/+/b", "m")  # no wildcard in a topic name
    with pytest.raises(ValueError):
        c.mqtt_sub("a/#/b")
    with pytest.raises(ValueError):
        c.mqtt_pub("t", "m", properties=[{"id": 0x26, "key": "k", "val": "v"}])  # 3.1.1
    with pytest.raises(TypeError):
        mgr.mqtt_connect(mosquitto.url, keepalive="60")
    with pytest.raises(ValueError):
        mgr.mqtt_connect(mosquitto.url, keepalive=70000)
    with pytest.raises(ValueError):
        mgr.mqtt_connect(mosquitto.url, version=3)
    with pytest.raises(RuntimeError, match="Failed to connect to 'nope://x'"):
        mgr.mqtt_connect("nope://x")
    assert c.send_data() == b""  # nothing queued by the refused calls
    c.close()


def test_pub_from_another_thread_while_polling(mgr, mosquitto):
    # Connection methods are callable from any thread (they run while the poll
    # thread waits): every message published by a worker is acknowledged.
    h = Mqtt()
    c = open_client(mgr, mosquitto.url, h)
    ids = []
    t = threading.Thread(target=lambda: ids.extend(c.mqtt_pub("t/thr", "m", qos=1)
                                                   for _ in range(40)))
    t.start()
    poll_until(mgr, lambda: not t.is_alive() and
               sum(1 for cmd, _, _ in h.cmds if cmd == 4) == 40, timeout=20)
    t.join()
    assert sorted({i for cmd, i, _ in h.cmds if cmd == 4}) == sorted(ids)
    c.close()


class NoAckBroker:
    """A broker stand-in on a raw socket: answers CONNECT with a CONNACK whose
    session-present flag the test sets, then records every packet and
    acknowledges none, so QoS 1/2 messages stay in flight."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.url = "mqtt://127.0.0.1:%d" % self.port
        self.session_present = False
        self.v5 = False
        self.then = b""  # bytes sent after the CONNACK
        self.conns = []  # per connection: list of (first byte, body)
        self.done = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        self.sock.settimeout(0.2)
        while not self.done:
            try:
                s, _ = self.sock.accept()
            except OSError:
                continue
            got = []
            self.conns.append(got)
            try:
                pkt = mqtt_read(s)
                assert pkt and pkt[0] >> 4 == 1  # CONNECT
                flags = 1 if self.session_present else 0
                s.sendall(bytes([0x20, 3, flags, 0, 0] if self.v5 else [0x20, 2, flags, 0]))
                s.sendall(self.then)
                while (pkt := mqtt_read(s)) is not None:
                    got.append(pkt)
            except OSError:
                pass
            s.close()

    def close(self):
        self.done = True
        self.thread.join()
        self.sock.close()


@pytest.fixture
def noack():
    b = NoAckBroker()
    yield b
    b.close()


def publishes(got):
    """(dup, qos, packet id, topic, payload) of each PUBLISH recorded."""
    out = []
    for first, body in got:
        if first >> 4 != 3:
            continue
        tl = int.from_bytes(body[:2], "big")
        topic = body[2:2 + tl].decode()
        pid = int.from_bytes(body[2 + tl:4 + tl], "big")
        out.append((bool(first & 8), (first >> 1) & 3, pid, topic, body[4 + tl:]))
    return out


def test_unacknowledged_messages_resent_on_the_next_connection(mgr, noack):
    """clean_session=False: what the broker never acknowledged goes out again,
    with DUP and the same ids, when the same client id reconnects to the same
    URL and the broker says it kept the session."""
    h = Mqtt()
    c = open_client(mgr, noack.url, h, client_id="resume-me", clean_session=False)
    id1 = c.mqtt_pub("r/1", b"one", qos=1)
    id2 = c.mqtt_pub("r/2", b"two", qos=2)
    poll_until(mgr, lambda: len(publishes(noack.conns[0])) == 2)
    c.close()
    poll_until(mgr, lambda: h.closed)
    noack.session_present = True
    h2 = Mqtt()
    c2 = open_client(mgr, noack.url, h2, client_id="resume-me", clean_session=False)
    poll_until(mgr, lambda: len(noack.conns) == 2 and len(publishes(noack.conns[1])) == 2)
    assert publishes(noack.conns[1]) == [(True, 1, id1, "r/1", b"one"),
                                         (True, 2, id2, "r/2", b"two")]
    id3 = c2.mqtt_pub("r/3", b"three", qos=1)
    assert id3 not in (id1, id2)
    c2.close()
    poll_until(mgr, lambda: h2.closed)


def test_session_not_resumed_when_clean_or_another_id_or_not_present(mgr, noack):
    h = Mqtt()
    c = open_client(mgr, noack.url, h, client_id="keep", clean_session=False)
    c.mqtt_pub("k/1", b"x", qos=1)
    poll_until(mgr, lambda: publishes(noack.conns[0]))
    c.close()
    poll_until(mgr, lambda: h.closed)
    noack.session_present = True

    def nothing_resent(client_id, clean):
        n = len(noack.conns) + 1
        h = Mqtt()
        c = open_client(mgr, noack.url, h, client_id=client_id, clean_session=clean)
        c.mqtt_ping()
        poll_until(mgr, lambda: len(noack.conns) == n and noack.conns[n - 1])
        assert publishes(noack.conns[n - 1]) == []
        c.close()
        poll_until(mgr, lambda: h.closed)

    nothing_resent("other", False)  # another client id: nothing of "keep" goes to it
    nothing_resent("keep", True)  # a clean connect with the same id discards the kept session...
    nothing_resent("keep", False)  # ...so a later persistent one has nothing to resend either


def v5_publish(topic, payload, alias):
    """A QoS 0 v5 PUBLISH with a Topic Alias property."""
    t = topic.encode()
    body = len(t).to_bytes(2, "big") + t + bytes([3, 0x23]) + alias.to_bytes(2, "big") + payload
    return bytes([0x30, len(body)]) + body


def test_v5_topic_aliases_from_the_broker_are_resolved(mgr, noack):
    noack.v5 = True
    noack.then = (v5_publish("sensors/room1/temp", b"20", 1) + v5_publish("", b"21", 1) +
                  v5_publish("sensors/room2/temp", b"19", 1) + v5_publish("", b"18", 1))
    h = Mqtt()
    open_client(mgr, noack.url, h, version=5, properties=[{"id": 0x22, "iv": 4}])
    poll_until(mgr, lambda: len(h.msgs) == 4)
    assert [(t, d) for t, d, *_ in h.msgs] == [
        ("sensors/room1/temp", b"20"), ("sensors/room1/temp", b"21"),
        ("sensors/room2/temp", b"19"), ("sensors/room2/temp", b"18")]
    assert not h.errors


@pytest.mark.parametrize("then,why", [
    (v5_publish("a/b", b"x", 5), "above the maximum"),
    (v5_publish("", b"x", 2), "before it was set"),
])
def test_v5_bad_topic_alias_fails_the_connection(mgr, noack, then, why):
    noack.v5 = True
    noack.then = then
    h = Mqtt()
    open_client(mgr, noack.url, h, version=5, properties=[{"id": 0x22, "iv": 4}])
    poll_until(mgr, lambda: h.closed)
    assert h.msgs == []
    assert any(why in e for e in h.errors), h.errors


def test_v5_alias_not_allowed_when_we_advertised_none(mgr, noack):
    noack.v5 = True
    noack.then = v5_publish("a/b", b"x", 1)
    h = Mqtt()
    open_client(mgr, noack.url, h, version=5)
    poll_until(mgr, lambda: h.closed)
    assert h.msgs == [] and any("topic alias" in e for e in h.errors), h.errors
