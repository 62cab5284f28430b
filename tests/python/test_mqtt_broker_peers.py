"""Our MQTT broker against peers in other processes: mosquitto_pub/mosquitto_sub,
Node's `mqtt`, a publisher SIGKILLed in the middle of a QoS 2 flow, the `cymg mqtt
broker` tool; persistence across a restart; the bridge with mosquitto upstream."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

import cymongoose

from conftest import (cymg_tool, in_thread, mqtt_connect_pkt, mqtt_pkt, mqtt_read, mqtt_s,
                      peer_env, poll_until)
from conftest import broker_on as start, paho_ready as peer, settle

NODE_DIR = os.path.join(os.path.dirname(__file__), "..", "node")
HAVE_MOSQ_CLIENTS = shutil.which("mosquitto_pub") and shutil.which("mosquitto_sub")


@pytest.fixture
def mgr(both_backends):
    return both_backends


def run(mgr, argv, timeout=30):
    """Runs a peer program to its end while our loop is polled."""
    return in_thread(mgr, lambda: subprocess.run(argv, capture_output=True, text=True,
                                                 timeout=timeout, env=peer_env()),
                     timeout=timeout + 10)


# ---- mosquitto_pub / mosquitto_sub ----------------------------------------------


@pytest.mark.skipif(not HAVE_MOSQ_CLIENTS, reason="mosquitto-clients not installed")
@pytest.mark.parametrize("version", ["mqttv311", "mqttv5"])
def test_mosquitto_clients(mgr, version):
    b, port = start(mgr)
    seen = []
    b.watch("ms/#", lambda m: seen.append((m.topic, m.data, m.qos, m.properties())))
    sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-V", version,
                            "-t", "ms/#", "-q", "2", "-v", "-C", "3"],
                           stdout=subprocess.PIPE, text=True, env=peer_env())
    try:
        poll_until(mgr, lambda: b.stats()["subscriptions"] == 1, timeout=10)
        for q in (0, 1, 2):
            argv = ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-V", version,
                    "-t", f"ms/{q}", "-m", f"qos{q}", "-q", str(q)]
            if version == "mqttv5":
                argv += ["-D", "publish", "user-property", "from", "mosquitto_pub"]
            r = run(mgr, argv)
            assert r.returncode == 0, r.stderr
        out = in_thread(mgr, lambda: sub.communicate(timeout=20)[0])
        assert sub.returncode == 0
        assert out.splitlines() == ["ms/0 qos0", "ms/1 qos1", "ms/2 qos2"]
        assert [(t, d, q) for t, d, q, _ in seen] == [("ms/0", b"qos0", 0), ("ms/1", b"qos1", 1),
                                                      ("ms/2", b"qos2", 2)]
        if version == "mqttv5":
            assert {"id": 0x26, "key": "from", "val": "mosquitto_pub"} in seen[0][3]
        # a retained message for a late mosquitto_sub
        r = run(mgr, ["mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", "ms/kept",
                      "-m", "retained", "-r", "-q", "1"])
        assert r.returncode == 0
        r = run(mgr, ["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", "ms/kept",
                      "-C", "1", "-W", "10"])
        assert r.returncode == 0 and r.stdout == "retained\n"
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()


# ---- Node mqtt ---------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists(os.path.join(NODE_DIR, "node_modules", "mqtt")),
                    reason="Node's mqtt package not installed (scripts/deps-node.sh)")
@pytest.mark.parametrize("scheme,version", [("mqtt", 4), ("mqtt", 5), ("ws", 4), ("ws", 5)])
def test_node_mqtt(mgr, scheme, version):
    b, port = start(mgr, f"{scheme}://127.0.0.1:0")
    url = f"{scheme}://127.0.0.1:{port}" + ("/mqtt" if scheme == "ws" else "")
    r = run(mgr, [shutil.which("node"), os.path.join(NODE_DIR, "mqtt_client.js"), url,
                  str(version)], timeout=60)
    assert r.returncode == 0 and r.stdout.strip() == "OK", r.stdout + r.stderr
    poll_until(mgr, lambda: b.stats()["retained"] == 1)
    # what Node left retained reaches paho
    p = peer(mgr, port if scheme == "mqtt" else b.listen("mqtt://127.0.0.1:0").local_addr[1],
             sub="node/retained")
    poll_until(mgr, lambda: p.msgs)
    assert p.texts() == [("node/retained", b"kept")]
    p.stop()


# ---- QoS 2 exactly once with a publisher killed mid-flow ------------------------------

KILLED_PUBLISHER = r"""
import socket, sys, time
def s_(b): return len(b).to_bytes(2, "big") + b
def pkt(first, body): return bytes([first, len(body)]) + body  # bodies here are < 128 bytes
def read(sock):
    head = sock.recv(2)
    body = b""
    while len(body) < head[1]:
        body += sock.recv(head[1] - len(body))
    return head[0], body
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(pkt(0x10, s_(b"MQTT") + bytes([4, 0]) + (60).to_bytes(2, "big") + s_(b"q2-killed")))
assert read(s)[0] == 0x20
s.sendall(pkt(0x34, s_(b"q2/x") + (7).to_bytes(2, "big") + b"once"))
assert read(s) == (0x50, b"\x00\x07")
print("PUBREC", flush=True)
time.sleep(600)
"""


def test_qos2_exactly_once_with_publisher_killed_between_pubrec_and_pubrel(mgr):
    b, port = start(mgr)
    s = peer(mgr, port, sub="q2/#", qos=2)
    proc = subprocess.Popen([sys.executable, "-c", KILLED_PUBLISHER, str(port)],
                            stdout=subprocess.PIPE, text=True, env=peer_env())
    try:
        line = in_thread(mgr, proc.stdout.readline, timeout=20)
        assert line.strip() == "PUBREC"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    poll_until(mgr, lambda: b.stats()["clients"] == 1)  # the killed one is gone
    # It comes back with its session and, not knowing whether PUBREC was lost,
    # sends the PUBLISH again with DUP, then PUBREL.
    r = socket.create_connection(("127.0.0.1", port))
    out = {}

    def resume():
        r.sendall(mqtt_connect_pkt("q2-killed", clean=False))
        out["connack"] = mqtt_read(r)
        r.sendall(mqtt_pkt(0x3C, mqtt_s("q2/x") + (7).to_bytes(2, "big") + b"once"))
        out["pubrec"] = mqtt_read(r)
        r.sendall(mqtt_pkt(0x62, (7).to_bytes(2, "big")))
        out["pubcomp"] = mqtt_read(r)

    in_thread(mgr, resume, timeout=20)
    r.close()
    assert out["connack"] == (0x20, b"\x01\x00")  # session present
    assert out["pubrec"] == (0x50, b"\x00\x07") and out["pubcomp"] == (0x70, b"\x00\x07")
    poll_until(mgr, lambda: s.msgs)
    settle(mgr, 500)
    assert s.texts() == [("q2/x", b"once")]
    assert s.msgs[0].qos == 2
    s.stop()


# ---- persistence ------------------------------------------------------------------------


def test_persistence_across_restart(tmp_path):
    path = str(tmp_path / "broker.db")
    m = cymongoose.Manager()
    try:
        b, port = start(m, persist=path)
        s = peer(m, port, sub="keep/#", qos=1, client_id="durable", clean_session=False)
        s.stop()
        poll_until(m, lambda: b.stats()["clients"] == 0)
        p = peer(m, port)
        p.cli.publish("keep/retained", b"survives", qos=1, retain=True)
        p.cli.publish("keep/queued", b"waiting", qos=1)
        poll_until(m, lambda: len(p.acked) == 2)
        p.stop()
        poll_until(m, lambda: b.stats()["queued"] >= 2)
        b.close()
        b2, port2 = start(m, persist=path)
        st = b2.stats()
        assert st["retained"] == 1 and st["sessions"] >= 1
        again = peer(m, port2, client_id="durable", clean_session=False)
        assert again.connacks[0] == (0, 1)
        poll_until(m, lambda: len(again.msgs) == 2)
        assert sorted(again.texts()) == [("keep/queued", b"waiting"),
                                         ("keep/retained", b"survives")]
        again.stop()
        late = peer(m, port2, sub="keep/#")
        poll_until(m, lambda: late.msgs)
        assert late.texts() == [("keep/retained", b"survives")]
        late.stop()
    finally:
        m.close()


def test_unloadable_persistence_file_raises(mgr, tmp_path):
    bad = tmp_path / "not-ours.db"
    bad.write_bytes(b"this is not a broker store\n" * 10)
    with pytest.raises(RuntimeError) as e:
        mgr.mqtt_broker(persist=str(bad))
    assert str(e.value)
    with pytest.raises(RuntimeError):
        mgr.mqtt_broker(persist=str(tmp_path / "no" / "such" / "dir" / "x.db"))
    b = mgr.mqtt_broker("mqtt://127.0.0.1:0")  # the manager is fine
    b.close()


# ---- the bridge ----------------------------------------------------------------------------


def test_bridge_with_mosquitto_upstream(mgr, mosquitto):
    b, port = start(mgr)
    br = b.bridge(mosquitto.url, [("out/#", "out", 1), ("in/#", "in", 1), ("both/#", "both", 1)],
                  client_id="cymg-bridge", backoff_min_ms=100, backoff_max_ms=1000)
    poll_until(mgr, lambda: br.connected, timeout=15)
    up = peer(mgr, mosquitto.port, sub="#", qos=1)
    local = peer(mgr, port, sub="#", qos=1)
    settle(mgr, 200)
    local.cli.publish("out/a", b"to upstream", qos=1)
    local.cli.publish("in/x", b"stays local", qos=1)
    up.cli.publish("in/b", b"from upstream", qos=1)
    up.cli.publish("out/y", b"stays upstream", qos=1)
    up.cli.publish("both/c", b"both ways", qos=1)
    poll_until(mgr, lambda: ("out/a", b"to upstream") in up.texts()
               and ("in/b", b"from upstream") in local.texts()
               and ("both/c", b"both ways") in local.texts(), timeout=15)
    settle(mgr, 500)
    assert ("in/x", b"stays local") not in up.texts()
    assert ("out/y", b"stays upstream") not in local.texts()
    # no loop: each message once on each side
    assert local.texts().count(("both/c", b"both ways")) == 1
    assert up.texts().count(("both/c", b"both ways")) == 1
    assert up.texts().count(("out/a", b"to upstream")) == 1
    br.close()
    br.close()
    assert not br.connected
    up.stop()
    local.stop()


def test_bridge_over_tls_to_mosquitto(mgr, mosquitto):
    with open(mosquitto.ca, "rb") as f:
        ca = f.read()
    b, port = start(mgr)
    br = b.bridge(f"mqtts://localhost:{mosquitto.tls_port}", [("sec/#", "both", 1)],
                  tls=cymongoose.TlsOpts(ca=ca), backoff_min_ms=100, backoff_max_ms=1000)
    bad = b.bridge(f"mqtts://localhost:{mosquitto.tls_port}", [("never/#", "out", 0)],
                   tls=cymongoose.TlsOpts(ca=b""), backoff_min_ms=100, backoff_max_ms=500)
    poll_until(mgr, lambda: br.connected, timeout=15)
    up = peer(mgr, mosquitto.port, sub="sec/#", qos=1)
    local = peer(mgr, port, sub="sec/#", qos=1)
    local.cli.publish("sec/a", b"over tls", qos=1)
    poll_until(mgr, lambda: ("sec/a", b"over tls") in up.texts(), timeout=15)
    up.cli.publish("sec/b", b"back down", qos=1)
    poll_until(mgr, lambda: ("sec/b", b"back down") in local.texts(), timeout=15)
    assert not bad.connected  # the system store does not know the test CA
    b.close()
    assert not br.connected and not bad.connected
    up.stop()
    local.stop()


# ---- the cymg mqtt broker tool ---------------------------------------------------------------


class ToolBroker:
    """`cymg mqtt broker ARGS` in a process; port read from its 'listening' line."""

    def __init__(self, *args):
        self.proc = subprocess.Popen([cymg_tool(), "mqtt", "broker", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     env=peer_env())
        self.err = []
        line = self.proc.stderr.readline()
        self.err.append(line)
        assert "listening on" in line, line + self.proc.stderr.read()
        self.port = int(line.rsplit(":", 1)[1].rstrip(")\n"))
        self.reader = threading.Thread(target=lambda: self.err.extend(self.proc.stderr), daemon=True)
        self.reader.start()

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        out = self.proc.stdout.read()
        rc = self.proc.wait(20)
        self.reader.join(10)
        return rc, out


def mosq(*args, timeout=20):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                          env=peer_env())


@pytest.mark.skipif(not HAVE_MOSQ_CLIENTS, reason="mosquitto-clients not installed")
def test_tool_broker_with_mosquitto_clients(tmp_path):
    db = str(tmp_path / "tool.db")
    t = ToolBroker("--listen", "mqtt://127.0.0.1:0", "--persist", db, "-v")
    try:
        sub = subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(t.port), "-t",
                                "tool/#", "-C", "1", "-v", "-i", "toolsub"],
                               stdout=subprocess.PIPE, text=True, env=peer_env())
        time.sleep(0.5)  # not an assertion: give the subscription a moment
        deadline = time.monotonic() + 20
        while sub.poll() is None and time.monotonic() < deadline:
            r = mosq("mosquitto_pub", "-h", "127.0.0.1", "-p", str(t.port), "-t", "tool/x", "-m",
                     "via the tool", "-q", "1")
            assert r.returncode == 0, r.stderr
            try:
                sub.wait(1)
            except subprocess.TimeoutExpired:
                pass
        assert sub.stdout.read() == "tool/x via the tool\n"
        r = mosq("mosquitto_pub", "-h", "127.0.0.1", "-p", str(t.port), "-t", "tool/kept", "-m",
                 "persisted", "-r", "-q", "1")
        assert r.returncode == 0
    finally:
        rc, out = t.stop()
    assert rc == 0
    assert "New client connected from 127.0.0.1:" in out and "as toolsub" in out
    assert "disconnected." in out
    # a restart on the same file keeps the retained message
    t2 = ToolBroker("--listen", "mqtt://127.0.0.1:0", "--persist", db)
    try:
        r = mosq("mosquitto_sub", "-h", "127.0.0.1", "-p", str(t2.port), "-t", "tool/kept", "-C",
                 "1", "-W", "10")
        assert r.returncode == 0 and r.stdout == "persisted\n", r.stderr
    finally:
        rc, _ = t2.stop(signal.SIGINT)
    assert rc == 0


def test_tool_broker_exit_codes():
    tool = cymg_tool()
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen(1)
        port = held.getsockname()[1]
        r = mosq(tool, "mqtt", "broker", "--listen", f"mqtt://127.0.0.1:{port}")
        assert r.returncode == 1 and "cannot listen on" in r.stderr and "in use" in r.stderr
    for args in (["--bogus"], ["--topic", "a/#"], ["--listen"], ["--max-connections", "x"],
                 ["--listen", "mqtts://127.0.0.1:0"], ["--tls-cert", "a.crt"],
                 ["--bridge", "mqtt://127.0.0.1:1"],
                 ["--bridge", "mqtt://127.0.0.1:1", "--topic", "a/#:sideways"],
                 ["--bridge", "mqtt://127.0.0.1:1", "--topic", "a/#/b"]):
        r = mosq(tool, "mqtt", "broker", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr
    r = mosq(tool, "mqtt", "broker", "--help")
    assert r.returncode == 0 and "--persist" in r.stdout
    r = mosq(tool, "--help")
    assert "mqtt broker" in r.stdout


def test_tool_broker_max_connections_and_tls(certs):
    t = ToolBroker("--listen", "mqtts://127.0.0.1:0", "--tls-cert", certs.path("server-ec.crt"),
                   "--tls-key", certs.path("server-ec.key"), "--max-connections", "1")
    try:
        import ssl

        ctx = ssl.create_default_context(cafile=certs.path("ca.crt"))
        socks = []
        for i in range(2):
            raw = socket.create_connection(("127.0.0.1", t.port), timeout=10)
            s = ctx.wrap_socket(raw, server_hostname="localhost")
            s.sendall(mqtt_connect_pkt(f"tls{i}"))
            socks.append((s, mqtt_read(s)))
        assert socks[0][1] == (0x20, b"\x00\x00")
        assert socks[1][1] in (None, (0x20, b"\x00\x03"))  # refused: server unavailable
        for s, _ in socks:
            s.close()
    finally:
        rc, _ = t.stop()
    assert rc == 0
