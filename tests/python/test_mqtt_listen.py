"""The parser-level MQTT listener (Manager.mqtt_listen, listen("mqtt://")):
it parses and reports, answers only the QoS flow (PUBACK/PUBREC/PUBCOMP) and
leaves CONNACK, SUBACK, UNSUBACK and PINGRESP to the program. Peers: raw
sockets, paho-mqtt, and Node's mqtt package when installed."""

import os
import shutil
import socket
import subprocess
import threading

import pytest

import cymongoose
from cymongoose import MG_EV_CLOSE, MG_EV_ERROR, MG_EV_MQTT_CMD, MG_EV_MQTT_MSG

from conftest import in_thread, paho_client, peer_env, poll_until

CONNECT, PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, DISCONNECT = 1, 3, 8, 10, 12, 14

# CONNECT 3.1.1: client id "raw", keep-alive 30, clean session
RAW_CONNECT = b"\x10\x0f\x00\x04MQTT\x04\x02\x00\x1e\x00\x03raw"
RAW_PINGREQ = b"\xc0\x00"
RAW_SUBSCRIBE = b"\x82\x08\x00\x07\x00\x03a/b\x01"  # id 7, "a/b" QoS 1


class MiniBroker:
    """What a program written for the package does on top of mqtt_listen: a
    tiny broker in Python (CONNACK, SUBACK, routing with mqtt_pub, PINGRESP)."""

    def __init__(self):
        self.subs = {}  # conn -> list of filters
        self.seen = []
        self.connects = []
        self.errors = []

    def __call__(self, conn, ev, data):
        if ev == MG_EV_ERROR:
            self.errors.append(data)
        elif ev == MG_EV_CLOSE:
            self.subs.pop(conn, None)
        elif ev == MG_EV_MQTT_MSG:
            for other, filters in list(self.subs.items()):
                if any(cymongoose.match(data.topic, f.replace("+", "*"))[0] for f in filters):
                    other.mqtt_pub(data.topic, data.data, qos=min(data.qos, 1))
        elif ev == MG_EV_MQTT_CMD:
            self.seen.append(data.cmd)
            if data.cmd == CONNECT:
                self.connects.append((data.client_id, data.username, data.password,
                                      data.keepalive, data.version, data.will_topic,
                                      data.will_message, data.will_qos, data.will_retain))
                conn.mqtt_connack(0)
            elif data.cmd == SUBSCRIBE:
                topics = data.topics()
                self.subs.setdefault(conn, []).extend(t for t, _ in topics)
                conn.mqtt_suback(data.id, [q for _, q in topics])
            elif data.cmd == UNSUBSCRIBE:
                for t in data.topics():
                    self.subs.get(conn, []).remove(t[0])
                conn.mqtt_unsuback(data.id)
            elif data.cmd == PINGREQ:
                conn.mqtt_pong()


def test_seed_mqtt_broker_example():
    # The user guide's line, with a loopback address and a free port.
    manager = cymongoose.Manager()
    mqtt_listener = manager.mqtt_listen('mqtt://127.0.0.1:0')
    assert mqtt_listener.is_listening and mqtt_listener.local_addr[1] > 0
    manager.close()


def test_sends_nothing_by_itself(mgr):
    got = []

    def h(conn, ev, data):
        if ev == MG_EV_MQTT_CMD:
            got.append((data.cmd, data.id, data.topics() if data.cmd == SUBSCRIBE else None))
            if len(got) == 3:
                conn.send(b"MARK")  # the first bytes the peer sees, if none went before

    lsn = mgr.mqtt_listen("mqtt://127.0.0.1:0", handler=h)
    port = lsn.local_addr[1]

    def peer():
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(RAW_CONNECT + RAW_PINGREQ + RAW_SUBSCRIBE)
            buf = b""
            while len(buf) < 4:
                chunk = s.recv(100)
                if not chunk:
                    break
                buf += chunk
            return buf

    assert in_thread(mgr, peer) == b"MARK"
    assert got == [(CONNECT, 0, None), (PINGREQ, 0, None), (SUBSCRIBE, 7, [("a/b", 1)])]


def test_listen_mqtt_scheme_is_the_same(mgr):
    got = []
    lsn = mgr.listen("mqtt://127.0.0.1:0",
                     handler=lambda c, ev, d: ev == MG_EV_MQTT_CMD and got.append(d.cmd))
    port = lsn.local_addr[1]
    in_thread(mgr, lambda: socket.create_connection(("127.0.0.1", port)).sendall(RAW_CONNECT))
    poll_until(mgr, lambda: got)
    assert got == [CONNECT]


def test_qos1_publish_acked_before_msg_event(mgr):
    order = []

    def h(conn, ev, data):
        if ev == MG_EV_MQTT_MSG:
            order.append(("msg", data.topic, data.data, data.qos, data.id, conn.send_data()))
        elif ev == MG_EV_MQTT_CMD:
            order.append(("cmd", data.cmd))

    lsn = mgr.mqtt_listen("mqtt://127.0.0.1:0", handler=h)
    port = lsn.local_addr[1]
    pub = b"\x32\x08\x00\x01t\x00\x2apay"  # QoS 1, "t", id 42, "pay"
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(RAW_CONNECT + pub)
    poll_until(mgr, lambda: len(order) == 3)
    assert order == [("cmd", CONNECT), ("msg", "t", b"pay", 1, 42, b"\x40\x02\x00\x2a"),
                     ("cmd", PUBLISH)]
    s.close()


def test_connect_fields_from_paho(mgr):
    b = MiniBroker()
    lsn = mgr.mqtt_listen("mqtt://127.0.0.1:0", handler=b)
    port = lsn.local_addr[1]
    cli = paho_client(4, "paho-1")
    cli.username_pw_set("user", "pw")
    cli.will_set("w/t", b"bye", qos=1, retain=True)
    connected = threading.Event()
    cli.on_connect = lambda *a: connected.set()

    def run():
        cli.connect("127.0.0.1", port, keepalive=17)
        cli.loop_start()
        ok = connected.wait(10)
        cli.disconnect()
        cli.loop_stop()
        return ok

    assert in_thread(mgr, run)
    assert b.connects == [("paho-1", "user", "pw", 17, 4, "w/t", b"bye", 1, True)]
    poll_until(mgr, lambda: DISCONNECT in b.seen)


@pytest.mark.parametrize("version", [4, 5])
def test_paho_through_our_mini_broker(mgr, version):
    b = MiniBroker()
    lsn = mgr.mqtt_listen("mqtt://127.0.0.1:0", handler=b)
    port = lsn.local_addr[1]
    got = []
    done = threading.Event()
    cli = paho_client(version, "paho-rt")

    def on_message(c, u, m):
        got.append((m.topic, m.payload, m.qos))
        done.set()

    cli.on_message = on_message
    subscribed = threading.Event()
    cli.on_subscribe = lambda *a: subscribed.set()

    def run():
        cli.connect("127.0.0.1", port)
        cli.loop_start()
        cli.subscribe("room/+", 1)
        assert subscribed.wait(10)
        cli.publish("room/1", b"hello", qos=1)
        ok = done.wait(10)
        cli.disconnect()
        cli.loop_stop()
        return ok

    assert in_thread(mgr, run)
    assert got == [("room/1", b"hello", 1)]
    assert not b.errors


def test_malformed_closes_only_that_connection(mgr):
    b = MiniBroker()
    closed = []

    def h(conn, ev, data):
        b(conn, ev, data)
        if ev == MG_EV_CLOSE:
            closed.append(conn.id)

    lsn = mgr.mqtt_listen("mqtt://127.0.0.1:0", handler=h)
    port = lsn.local_addr[1]
    good = socket.create_connection(("127.0.0.1", port), timeout=10)
    good.sendall(RAW_CONNECT)
    poll_until(mgr, lambda: b.seen == [CONNECT])
    bad = socket.create_connection(("127.0.0.1", port), timeout=10)
    bad.sendall(RAW_CONNECT + b"\x30\xff\xff\xff\xff\x01")  # 5-byte remaining length
    poll_until(mgr, lambda: b.errors and closed)
    good.sendall(RAW_PINGREQ)
    poll_until(mgr, lambda: b.seen.count(PINGREQ) == 1)
    good.settimeout(10)
    answers = b""
    while len(answers) < 6:
        answers += in_thread(mgr, lambda: good.recv(6 - len(answers)))
    assert answers == b"\x20\x02\x00\x00\xd0\x00"  # the program's CONNACK and PINGRESP
    good.close()
    bad.close()


def test_listener_mqtt_calls_do_nothing(mgr):
    lsn = mgr.mqtt_listen("mqtt://127.0.0.1:0")
    assert lsn.mqtt_pub("t", "m", qos=1) == 0
    assert lsn.mqtt_sub("t") == 0
    assert lsn.mqtt_unsub("t") == 0
    assert lsn.mqtt_ping() is None
    assert lsn.mqtt_pong() is None
    assert lsn.mqtt_disconnect() is None
    assert lsn.send_data() == b""


def test_listen_failure_message(mgr):
    lsn = mgr.mqtt_listen("mqtt://127.0.0.1:0")
    port = lsn.local_addr[1]
    with pytest.raises(RuntimeError, match="Failed to listen on 'mqtt://127.0.0.1:%d'" % port):
        mgr.mqtt_listen("mqtt://127.0.0.1:%d" % port)


NODE_DIR = os.path.join(os.path.dirname(__file__), "..", "node")


@pytest.mark.skipif(not os.path.exists(os.path.join(NODE_DIR, "node_modules", "mqtt")),
                    reason="Node's mqtt package not installed (scripts/deps-node.sh)")
def test_node_mqtt_through_our_mini_broker(mgr):
    b = MiniBroker()
    lsn = mgr.mqtt_listen("mqtt://127.0.0.1:0", handler=b)
    port = lsn.local_addr[1]
    script = (
        "const mqtt = require('mqtt');"
        f"const c = mqtt.connect('mqtt://127.0.0.1:{port}', {{clientId: 'node-1'}});"
        "c.on('connect', () => c.subscribe('n/#', {qos: 1}, () => c.publish('n/x', 'hi', {qos: 1})));"
        "c.on('message', (t, p) => { console.log(t + '=' + p); c.end(); });"
        "c.on('error', (e) => { console.error(String(e)); process.exit(1); });")
    out = in_thread(mgr, lambda: subprocess.run([shutil.which("node"), "-e", script],
                                                cwd=NODE_DIR, capture_output=True, text=True,
                                                timeout=30, env=peer_env()))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "n/x=hi"
    assert b.connects[0][0] == "node-1"


def test_client_keepalive_timeout_against_a_silent_listener(mgr):
    # Our listener answers CONNECT but never PINGREQ: the client's keep-alive
    # fails the connection with ERROR "keep-alive timeout", then CLOSE.
    pings, client = [], []

    def server(conn, ev, data):
        if ev == MG_EV_MQTT_CMD and data.cmd == CONNECT:
            conn.mqtt_connack(0)
        elif ev == MG_EV_MQTT_CMD and data.cmd == PINGREQ:
            pings.append(data.cmd)

    def cli(conn, ev, data):
        if ev in (cymongoose.MG_EV_MQTT_OPEN, MG_EV_ERROR, MG_EV_CLOSE):
            client.append((ev, data))

    lsn = mgr.mqtt_listen("mqtt://127.0.0.1:0", handler=server)
    mgr.mqtt_connect("mqtt://127.0.0.1:%d" % lsn.local_addr[1], handler=cli, keepalive=1)
    poll_until(mgr, lambda: client and client[-1][0] == MG_EV_CLOSE, timeout=15)
    assert client == [(cymongoose.MG_EV_MQTT_OPEN, 0), (MG_EV_ERROR, "keep-alive timeout"),
                      (MG_EV_CLOSE, None)]
    assert pings  # the PINGREQ went out and was seen unanswered


def test_v5_connect_and_subscribe_seen_by_listener(mgr):
    # Our client (v5, CONNECT and will properties, a user property on
    # SUBSCRIBE) against our listener: the program sees every field.
    seen = {}

    def server(conn, ev, data):
        if ev == MG_EV_MQTT_CMD and data.cmd == CONNECT:
            seen["connect"] = (data.version, data.client_id, data.keepalive, data.will_topic,
                               data.will_message, data.properties(), data.will_properties())
            conn.mqtt_connack(0, properties=[{"id": 0x21, "iv": 10}])  # receive maximum
        elif ev == MG_EV_MQTT_CMD and data.cmd == SUBSCRIBE:
            seen["sub"] = (data.subscriptions(), data.properties())
            conn.mqtt_suback(data.id, [1])

    def cli(conn, ev, data):
        if ev == cymongoose.MG_EV_MQTT_OPEN:
            seen["open"] = data
            conn.mqtt_sub("v5/#", qos=1, properties=[{"id": 0x26, "key": "k", "val": "v"}])
        elif ev == MG_EV_MQTT_CMD and data.cmd == 9:  # SUBACK
            seen["suback"] = (data.id, data.codes())

    lsn = mgr.mqtt_listen("mqtt://127.0.0.1:0", handler=server)
    mgr.mqtt_connect("mqtt://127.0.0.1:%d" % lsn.local_addr[1], handler=cli, client_id="v5c",
                     keepalive=33, version=5, will_topic="w", will_message="gone",
                     will_properties=[{"id": 0x18, "iv": 5}],
                     properties=[{"id": 0x27, "iv": 65536}])
    poll_until(mgr, lambda: "suback" in seen)
    version, cid, ka, wt, wm, props, wprops = seen["connect"]
    assert (version, cid, ka, wt, wm) == (5, "v5c", 33, "w", b"gone")
    assert {"id": 0x27, "iv": 65536} in props
    assert wprops == [{"id": 0x18, "iv": 5}]
    assert seen["open"] == 0
    assert seen["sub"][0] == [("v5/#", 1)]
    assert {"id": 0x26, "key": "k", "val": "v"} in seen["sub"][1]
    assert seen["suback"][1] == [1]
