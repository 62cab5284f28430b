"""Manager.mqtt_broker(): our MQTT broker against paho-mqtt (Debian
python3-paho-mqtt 1.6) and our own client, on loopback. The broker's manager is
polled on the test thread; each paho client runs its own network thread."""

import socket

import pytest

import cymongoose
from cymongoose import MG_EV_CLOSE, MG_EV_MQTT_CMD, MG_EV_MQTT_MSG, MG_EV_MQTT_OPEN

from conftest import (PahoPeer, mqtt_connect_pkt, mqtt_pkt, mqtt_read, mqtt_s, poll_until)
from conftest import broker_on as start, paho_ready as peer, settle

paho = pytest.importorskip("paho.mqtt.client")
from paho.mqtt.packettypes import PacketTypes  # noqa: E402
from paho.mqtt.properties import Properties  # noqa: E402
from paho.mqtt.subscribeoptions import SubscribeOptions  # noqa: E402

CONNACK, PUBLISH, SUBACK = 2, 3, 9


@pytest.fixture
def mgr(both_backends):
    return both_backends


# ---- the API ----------------------------------------------------------------


def test_options_are_checked(mgr):
    with pytest.raises(ValueError):
        mgr.mqtt_broker(max_qos=3)
    with pytest.raises(ValueError):
        mgr.mqtt_broker(receive_max=70000)
    with pytest.raises(ValueError):
        mgr.mqtt_broker(max_connections=-1)
    with pytest.raises(TypeError):
        mgr.mqtt_broker(max_packet="big")
    with pytest.raises(TypeError):
        mgr.mqtt_broker(auth=42)
    with pytest.raises(TypeError):
        mgr.mqtt_broker("mqtt://127.0.0.1:0", tls="not TlsOpts")
    with pytest.raises(ValueError, match="tls"):
        mgr.mqtt_broker("mqtts://127.0.0.1:0")
    with pytest.raises(RuntimeError, match="Failed to listen on 'bogus://x'"):
        mgr.mqtt_broker("bogus://x")
    b = mgr.mqtt_broker()
    with pytest.raises(ValueError):
        b.publish("a/+", b"x")
    with pytest.raises(ValueError):
        b.publish("a", b"x", qos=3)
    with pytest.raises(ValueError):
        b.watch("a/#/b", print)
    with pytest.raises(TypeError):
        b.watch("a", None)
    with pytest.raises(KeyError):
        b.unwatch(12345)
    with pytest.raises(ValueError):
        b.bridge("mqtt://127.0.0.1:1", [("a/#", "sideways", 0)])
    with pytest.raises(ValueError):
        b.bridge("mqtt://127.0.0.1:1", [])
    b.close()


def test_listen_close_stats_and_lifetime(mgr):
    b = mgr.mqtt_broker()
    assert b.listeners == () and not b.closed
    lsn = b.listen("mqtt://127.0.0.1:0")
    ws = b.listen("ws://127.0.0.1:0")
    assert lsn.is_listening and lsn.local_addr[1] > 0 and ws.local_addr[1] > 0
    assert b.listeners == (lsn, ws)
    st = b.stats()
    assert set(st) >= {"clients", "sessions", "subscriptions", "retained", "queued", "msgs_in",
                       "msgs_out", "bytes_in", "bytes_out", "dropped"}
    assert st["clients"] == 0
    extra = b.listen("ws://127.0.0.1:0")
    extra.close()  # by the program: its CLOSE takes it out, the wrapper goes stale
    poll_until(mgr, lambda: extra not in b.listeners)
    assert extra.local_addr is None and b.listeners == (lsn, ws)
    port = lsn.local_addr[1]
    with pytest.raises(RuntimeError, match="Failed to listen"):
        b.listen(f"mqtt://127.0.0.1:{port}")  # in use
    b.close()
    b.close()  # idempotent
    assert b.closed and b.listeners == ()
    assert lsn.local_addr is None  # the wrapper went stale, it does not crash
    with pytest.raises(RuntimeError, match="closed"):
        b.publish("a", b"x")
    with pytest.raises(RuntimeError, match="closed"):
        b.stats()
    # the port is free again once the loop has run (closing happens there)
    mgr.poll(10)
    mgr.poll(10)
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))


def test_manager_close_frees_brokers():
    m = cymongoose.Manager()
    b, port = start(m)
    with m.mqtt_broker("mqtt://127.0.0.1:0") as b2:
        assert not b2.closed
    assert b2.closed
    p = peer(m, port)
    m.close()
    assert b.closed
    p.cli.loop_stop()


def test_closed_and_dropped_broker_leaves_the_loop_sound(mgr):
    events = []
    b, port = start(mgr, handler=lambda c, ev, d: events.append(ev))
    b.listen("ws://127.0.0.1:0")
    p = peer(mgr, port, reconnect_on_failure=False)
    b.close()
    del b
    import gc

    gc.collect()
    poll_until(mgr, lambda: p.disconnects)  # the CLOSEs come now, after the broker is gone
    for _ in range(3):
        mgr.poll(10)
    assert all(isinstance(c, cymongoose.Connection) for c in mgr.connections)
    p.cli.loop_stop()


def test_broker_without_reference_keeps_running(mgr):
    port = mgr.mqtt_broker("mqtt://127.0.0.1:0").listeners[0].local_addr[1]
    import gc

    gc.collect()
    p = peer(mgr, port, sub="t")
    p.cli.publish("t", b"still here")
    poll_until(mgr, lambda: p.msgs)
    p.stop()


# ---- routing ------------------------------------------------------------------


def test_wildcards_and_dollar_topics(mgr):
    b, port = start(mgr)
    plus = peer(mgr, port, sub="home/+/temp")
    hash_ = peer(mgr, port, sub="home/#")
    root = peer(mgr, port, sub="#")
    sys_ = peer(mgr, port, sub="$SYS/#")
    pub = peer(mgr, port)
    for t in ("home/kitchen/temp", "home/kitchen/hum", "home", "office/temp", "$SYS/x"):
        pub.cli.publish(t, t.encode())
    poll_until(mgr, lambda: len(root.msgs) >= 4 and sys_.msgs and len(hash_.msgs) >= 3)
    settle(mgr)
    assert plus.texts() == [("home/kitchen/temp", b"home/kitchen/temp")]
    assert sorted(t for t, _ in hash_.texts()) == ["home", "home/kitchen/hum", "home/kitchen/temp"]
    assert "$SYS/x" not in [t for t, _ in root.texts()]  # MQTT-4.7.2-1
    assert len(root.msgs) == 4
    assert sys_.texts() == [("$SYS/x", b"$SYS/x")]
    for p in (plus, hash_, root, sys_, pub):
        p.stop()


def test_retained_set_replay_clear(mgr):
    b, port = start(mgr)
    pub = peer(mgr, port)
    pub.cli.publish("r/a", b"one", qos=1, retain=True)
    pub.cli.publish("r/b", b"two", qos=1, retain=True)
    poll_until(mgr, lambda: len(pub.acked) == 2)
    poll_until(mgr, lambda: b.stats()["retained"] == 2)
    late = peer(mgr, port, sub="r/#")
    poll_until(mgr, lambda: len(late.msgs) == 2)
    assert sorted(late.texts()) == [("r/a", b"one"), ("r/b", b"two")]
    assert all(m.retain for m in late.msgs)  # replayed ones carry RETAIN
    pub.cli.publish("r/a", b"", qos=1, retain=True)  # an empty payload clears
    poll_until(mgr, lambda: b.stats()["retained"] == 1)
    poll_until(mgr, lambda: len(late.msgs) == 3)
    later = peer(mgr, port, sub="r/#")
    poll_until(mgr, lambda: later.msgs)
    settle(mgr)
    assert later.texts() == [("r/b", b"two")]
    for p in (pub, late, later):
        p.stop()


@pytest.mark.parametrize("version", [4, 5])
def test_qos_end_to_end_and_downgrade(mgr, version):
    b, port = start(mgr)
    subs = {q: peer(mgr, port, sub="q/#", qos=q, version=version) for q in (0, 1, 2)}
    pub = peer(mgr, port, version=version)
    for q in (0, 1, 2):
        pub.cli.publish(f"q/{q}", f"m{q}".encode(), qos=q)
    poll_until(mgr, lambda: all(len(s.msgs) == 3 for s in subs.values()))
    settle(mgr)
    for granted, s in subs.items():
        got = {m.topic: m.qos for m in s.msgs}
        assert got == {f"q/{q}": min(q, granted) for q in (0, 1, 2)}
        assert s.subacks[-1] == [granted]
    assert len(pub.acked) == 3
    for p in list(subs.values()) + [pub]:
        p.stop()


def test_our_client_through_our_broker(mgr):
    b, port = start(mgr)
    got, opened = [], []

    def h(conn, ev, data):
        if ev == MG_EV_MQTT_OPEN:
            opened.append(data)
            conn.mqtt_sub("c/#", qos=2)
        elif ev == MG_EV_MQTT_CMD and data.cmd == SUBACK:
            conn.mqtt_pub("c/x", b"to myself", qos=2)
        elif ev == MG_EV_MQTT_MSG:
            got.append((data.topic, data.data, data.qos))

    c = mgr.mqtt_connect(f"mqtt://127.0.0.1:{port}", h, client_id="ours")
    poll_until(mgr, lambda: got)
    assert opened == [0] and got == [("c/x", b"to myself", 2)]
    c.close()


def test_max_qos_caps_grants(mgr):
    b, port = start(mgr, max_qos=1)
    s = peer(mgr, port, sub="m", qos=2)
    assert s.subacks[-1] == [1]
    s.stop()


# ---- watch / publish from Python ------------------------------------------------


def test_watch_publish_unwatch(mgr):
    errors = []
    mgr2 = cymongoose.Manager(error_handler=errors.append)
    try:
        b, port = start(mgr2)
        seen, seen_all = [], []
        wid = b.watch("w/+", lambda m: seen.append((m.topic, m.data, m.qos)))
        b.watch("#", lambda m: seen_all.append(m))
        bad = b.watch("w/#", lambda m: 1 / 0)  # raises: reported, nothing else breaks
        s = peer(mgr2, port, sub="w/#", qos=1)
        p = peer(mgr2, port)
        p.cli.publish("w/1", b"from paho", qos=1)
        poll_until(mgr2, lambda: seen and s.msgs)
        b.publish("w/2", "from python", qos=1, retain=True)
        poll_until(mgr2, lambda: len(s.msgs) == 2)
        assert seen == [("w/1", b"from paho", 1), ("w/2", b"from python", 1)]
        assert s.texts() == [("w/1", b"from paho"), ("w/2", b"from python")]
        assert not seen_all[0]  # the view is stale after the callback
        assert len(errors) == 2 and all(isinstance(e, ZeroDivisionError) for e in errors)
        assert b.stats()["retained"] == 1
        b.unwatch(wid)
        b.unwatch(bad)
        with pytest.raises(KeyError):
            b.unwatch(wid)
        b.publish("w/3", b"unwatched")
        poll_until(mgr2, lambda: len(s.msgs) == 3)
        assert len(seen) == 2 and len(errors) == 2
        s.stop()
        p.stop()
    finally:
        mgr2.close()


def test_publish_and_stats_from_another_thread(mgr):
    import threading

    b, port = start(mgr)
    s = peer(mgr, port, sub="thr/#", qos=1)
    done = []

    def worker():
        for i in range(50):
            b.publish(f"thr/{i}", str(i).encode(), qos=1)
            b.stats()
        done.append(True)

    t = threading.Thread(target=worker)
    t.start()
    poll_until(mgr, lambda: done and len(s.msgs) == 50, timeout=30)
    t.join(10)
    assert sorted(int(m.payload) for m in s.msgs) == list(range(50))
    s.stop()


def test_publish_properties_reach_v5_subscriber(mgr):
    b, port = start(mgr)
    s = peer(mgr, port, sub="p", version=5)
    b.publish("p", b"x", qos=1, properties=[{"id": 0x26, "key": "k", "val": "v"},
                                             {"id": 0x08, "val": "reply/here"}])
    poll_until(mgr, lambda: s.msgs)
    props = s.msgs[0].properties
    assert props.UserProperty == [("k", "v")] and props.ResponseTopic == "reply/here"
    with pytest.raises(ValueError):
        b.publish("p", b"x", properties=[{"id": 0x11, "iv": 5}])  # session expiry: not PUBLISH
    s.stop()


# ---- hooks ---------------------------------------------------------------------


def test_auth_hook_codes(mgr):
    seen = []

    def auth(info):
        seen.append(info)
        if info.username == "raise":
            raise RuntimeError("hook failure")
        if info.username == "banned":
            return 0x8A
        return info.username == "alice" and info.password == b"secret"

    errors = []
    m = cymongoose.Manager(error_handler=errors.append)
    try:
        b, port = start(m, auth=auth)

        def attempt(user, pw, version):
            p = PahoPeer(port, version=version, connect=False)
            p.cli.username_pw_set(user, pw)
            p.start()
            poll_until(m, lambda: p.connacks or p.disconnects, timeout=10)
            p.cli.loop_stop()
            return p.connacks[0][0] if p.connacks else None

        assert attempt("alice", "secret", 4) == 0
        assert attempt("alice", "wrong", 4) == 4  # bad user name or password
        assert attempt("alice", "wrong", 5) == 0x86
        assert attempt("banned", "x", 5) == 0x8A
        assert attempt("banned", "x", 4) == 5  # other refusals: not authorized
        assert attempt("raise", "x", 5) == 0x87
        assert len(errors) == 1 and "hook failure" in str(errors[0])
        info = seen[0]
        assert info.client_id and info.username == "alice" and info.password == b"secret"
        assert info.version == 4 and info.remote_addr[0] == "127.0.0.1" and info.cert_subject == ""
        assert attempt("alice", "secret", 5) == 0  # the loop is fine after all that
    finally:
        m.close()


def test_acl_hook_subscribe_and_publish(mgr):
    calls = []

    def acl(info, action, topic, qos, retain):
        calls.append((info.client_id, action, topic, qos, retain))
        if topic.startswith("secret"):
            return False
        if topic == "boom":
            raise ValueError("acl failure")
        return True

    errors = []
    m = cymongoose.Manager(error_handler=errors.append)
    try:
        b, port = start(m, acl=acl)
        for version, refused in ((4, 0x80), (5, 0x87)):
            s = peer(m, port, version=version, client_id=f"s{version}")
            s.cli.subscribe([("open/#", 1), ("secret/#", 1)])
            poll_until(m, lambda: s.subacks)
            assert s.subacks[0] == [1, refused]
            s.stop()
        watcher = peer(m, port, sub="#", qos=1)
        v5 = peer(m, port, version=5, client_id="pub5")
        v5.cli.publish("secret/x", b"no", qos=1)
        v5.cli.publish("boom", b"no", qos=1)
        v5.cli.publish("open/x", b"yes", qos=1, retain=True)
        poll_until(m, lambda: len(v5.acked) == 3 and watcher.msgs)
        settle(m)
        assert watcher.texts() == [("open/x", b"yes")]
        assert ("pub5", "publish", "open/x", 1, True) in calls
        assert any(isinstance(e, ValueError) for e in errors)
        watcher.stop()
        v5.stop()
    finally:
        m.close()


def test_handler_sees_broker_connections(mgr):
    events = []

    def handler(conn, ev, data):
        if ev == MG_EV_MQTT_CMD:
            events.append((conn.id, "cmd", data.cmd, data.client_id if data.cmd == 1 else None))
        elif ev == MG_EV_CLOSE:
            events.append((conn.id, "close", None, None))

    b, port = start(mgr, handler=handler)
    p = peer(mgr, port, client_id="logged")
    p.stop()
    poll_until(mgr, lambda: any(e[1] == "close" for e in events))
    connect = [e for e in events if e[1] == "cmd" and e[2] == 1]
    assert connect and connect[0][3] == "logged"
    assert connect[0][0] == [e for e in events if e[1] == "close"][0][0]


# ---- sessions, wills, takeover ------------------------------------------------------


def test_session_resume_with_queued_messages(mgr):
    b, port = start(mgr)
    s = peer(mgr, port, sub="sess/#", qos=1, client_id="keeper", clean_session=False)
    s.stop()
    poll_until(mgr, lambda: b.stats()["clients"] == 0)
    p = peer(mgr, port)
    for i in range(5):
        p.cli.publish(f"sess/{i}", str(i).encode(), qos=1)
    p.cli.publish("sess/q0", b"dropped for offline", qos=0)
    poll_until(mgr, lambda: len(p.acked) == 6)
    poll_until(mgr, lambda: b.stats()["queued"] >= 5)
    again = peer(mgr, port, client_id="keeper", clean_session=False)
    assert again.connacks[0] == (0, 1)  # session present
    poll_until(mgr, lambda: len(again.msgs) == 5)
    settle(mgr)
    assert [m.payload for m in again.msgs] == [b"0", b"1", b"2", b"3", b"4"]  # in order
    # a clean session throws it away
    clean = peer(mgr, port, client_id="keeper", clean_session=True)
    assert clean.connacks[0] == (0, 0)
    for x in (p, again, clean):
        x.stop()


def test_will_on_abrupt_disconnect_not_on_clean_one(mgr):
    b, port = start(mgr)
    w = peer(mgr, port, sub="will/#", qos=1)
    dying = PahoPeer(port, client_id="dying", connect=False)
    dying.cli.will_set("will/dying", b"gone", qos=1, retain=False)
    dying.start()
    polite = PahoPeer(port, client_id="polite", connect=False)
    polite.cli.will_set("will/polite", b"gone", qos=1)
    polite.start()
    poll_until(mgr, lambda: dying.connacks and polite.connacks)
    polite.stop()
    dying.kill()
    poll_until(mgr, lambda: w.msgs)
    settle(mgr)
    assert w.texts() == [("will/dying", b"gone")]
    w.stop()


def test_takeover_disconnects_the_older_client(mgr):
    b, port = start(mgr)
    first = peer(mgr, port, client_id="same", reconnect_on_failure=False)
    second = peer(mgr, port, client_id="same")
    poll_until(mgr, lambda: first.disconnects)
    assert b.stats()["clients"] == 1
    s = peer(mgr, port, sub="t")
    second.cli.publish("t", b"second lives")
    poll_until(mgr, lambda: s.msgs)
    first.cli.loop_stop()
    second.stop()
    s.stop()


def test_shared_subscription_delivers_each_message_once(mgr):
    b, port = start(mgr)
    g1 = peer(mgr, port, sub="$share/grp/job/#", qos=1)
    g2 = peer(mgr, port, sub="$share/grp/job/#", qos=1)
    plain = peer(mgr, port, sub="job/#", qos=1)
    p = peer(mgr, port)
    for i in range(20):
        p.cli.publish(f"job/{i}", str(i).encode(), qos=1)
    poll_until(mgr, lambda: len(plain.msgs) == 20 and len(g1.msgs) + len(g2.msgs) == 20)
    settle(mgr)
    got = sorted(int(m.payload) for m in g1.msgs + g2.msgs)
    assert got == list(range(20)) and len(plain.msgs) == 20
    assert g1.msgs and g2.msgs  # both members served
    for x in (g1, g2, plain, p):
        x.stop()


def test_shared_off_refuses(mgr):
    b, port = start(mgr, shared=False, wildcard=False)
    s = peer(mgr, port, version=5)
    s.cli.subscribe([("$share/g/t", 0), ("a/+", 0), ("plain", 0)])
    poll_until(mgr, lambda: s.subacks)
    assert s.subacks[0] == [0x9E, 0xA2, 0]
    s.stop()


# ---- v5 properties ------------------------------------------------------------------


def test_v5_properties_end_to_end(mgr):
    b, port = start(mgr)
    s = PahoPeer(port, version=5, client_id="v5sub")
    poll_until(mgr, lambda: s.connacks)
    sp = Properties(PacketTypes.SUBSCRIBE)
    sp.SubscriptionIdentifier = 42
    s.cli.subscribe("v5/#", options=SubscribeOptions(qos=1), properties=sp)
    poll_until(mgr, lambda: s.subacks)
    p = peer(mgr, port, version=5)
    pp = Properties(PacketTypes.PUBLISH)
    pp.UserProperty = [("a", "1"), ("b", "2")]
    pp.ResponseTopic = "v5/reply"
    pp.CorrelationData = b"\x00\x01corr"
    pp.MessageExpiryInterval = 3600
    pp.ContentType = "text/plain"
    p.cli.publish("v5/x", b"props", qos=1, properties=pp)
    poll_until(mgr, lambda: s.msgs)
    got = s.msgs[0].properties
    assert got.UserProperty == [("a", "1"), ("b", "2")]
    assert got.ResponseTopic == "v5/reply" and got.CorrelationData == b"\x00\x01corr"
    assert got.ContentType == "text/plain"
    assert 3590 <= got.MessageExpiryInterval <= 3600
    assert got.SubscriptionIdentifier == [42]
    s.stop()
    p.stop()


def test_v5_message_expiry_drops_queued_messages(mgr):
    b, port = start(mgr)
    s = PahoPeer(port, version=5, client_id="expiring", connect=False)
    cp = Properties(PacketTypes.CONNECT)
    cp.SessionExpiryInterval = 600
    s.start(clean_start=False, properties=cp)
    poll_until(mgr, lambda: s.connacks)
    s.cli.subscribe("exp", 1)
    poll_until(mgr, lambda: s.subacks)
    s.stop()
    poll_until(mgr, lambda: b.stats()["clients"] == 0)
    p = peer(mgr, port, version=5)
    short = Properties(PacketTypes.PUBLISH)
    short.MessageExpiryInterval = 1
    p.cli.publish("exp", b"short-lived", qos=1, properties=short)
    p.cli.publish("exp", b"lasting", qos=1)
    poll_until(mgr, lambda: len(p.acked) == 2)
    settle(mgr, 2200)  # past the one second expiry
    again = PahoPeer(port, version=5, client_id="expiring", connect=False)
    again.start(clean_start=False, properties=cp)
    poll_until(mgr, lambda: again.msgs)
    settle(mgr)
    assert [m.payload for m in again.msgs] == [b"lasting"]
    p.stop()
    again.stop()


def test_v5_no_local(mgr):
    b, port = start(mgr)
    s = peer(mgr, port, version=5)
    s.cli.subscribe("nl", options=SubscribeOptions(qos=0, noLocal=True))
    poll_until(mgr, lambda: len(s.subacks) == 1)
    other = peer(mgr, port)
    s.cli.publish("nl", b"mine")
    other.cli.publish("nl", b"theirs")
    poll_until(mgr, lambda: s.msgs)
    settle(mgr)
    assert s.texts() == [("nl", b"theirs")]
    s.stop()
    other.stop()


def test_v5_retain_handling_and_retain_as_published(mgr):
    b, port = start(mgr)
    b.publish("rh/x", b"kept", retain=True)
    never = peer(mgr, port, version=5)
    never.cli.subscribe("rh/#", options=SubscribeOptions(qos=0, retainHandling=2))
    rap = peer(mgr, port, version=5)
    rap.cli.subscribe("rh/#", options=SubscribeOptions(qos=0, retainAsPublished=True))
    plain = peer(mgr, port, version=5, sub="rh/#")
    poll_until(mgr, lambda: never.subacks and rap.subacks and plain.msgs and rap.msgs)
    plain.msgs.clear()
    rap.msgs.clear()
    b.publish("rh/y", b"live", retain=True)
    poll_until(mgr, lambda: plain.msgs and rap.msgs and never.msgs)
    settle(mgr)
    assert never.texts() == [("rh/y", b"live")]  # retainHandling 2: no replay at SUBSCRIBE
    assert rap.msgs[0].retain and not plain.msgs[0].retain  # live ones: RETAIN only if kept
    for p in (never, rap, plain):
        p.stop()


def test_sub_ids_off_refuses(mgr):
    b, port = start(mgr, sub_ids=False)
    s = PahoPeer(port, version=5)
    poll_until(mgr, lambda: s.connacks)
    sp = Properties(PacketTypes.SUBSCRIBE)
    sp.SubscriptionIdentifier = 7
    s.cli.subscribe("x", options=SubscribeOptions(qos=0), properties=sp)
    poll_until(mgr, lambda: s.subacks or s.disconnects)
    assert s.subacks == [[0xA1]]
    s.stop()


def test_max_queued_drops_and_counts(mgr):
    b, port = start(mgr, max_queued=3)
    s = peer(mgr, port, sub="mq/#", qos=1, client_id="small", clean_session=False)
    s.stop()
    poll_until(mgr, lambda: b.stats()["clients"] == 0)
    p = peer(mgr, port)
    for i in range(6):
        p.cli.publish(f"mq/{i}", str(i).encode(), qos=1)
    poll_until(mgr, lambda: len(p.acked) == 6)
    poll_until(mgr, lambda: b.stats()["dropped"] >= 3)
    again = peer(mgr, port, client_id="small", clean_session=False)
    poll_until(mgr, lambda: len(again.msgs) >= 3)
    settle(mgr)
    assert len(again.msgs) == 3
    p.stop()
    again.stop()


def test_keepalive_enforced_and_will_published(mgr):
    b, port = start(mgr)
    w = peer(mgr, port, sub="ka/#")
    s = socket.create_connection(("127.0.0.1", port))
    will = mqtt_s("ka/silent") + mqtt_s("timed out")
    body = (mqtt_s("MQTT") + bytes([4, 0x02 | 0x04]) + (1).to_bytes(2, "big") + mqtt_s("silent")
            + will)
    s.sendall(mqtt_pkt(0x10, body))  # keep-alive 1 s, a will, then nothing at all
    poll_until(mgr, lambda: w.msgs, timeout=15)  # closed after 1.5 s without a packet
    assert w.texts() == [("ka/silent", b"timed out")]
    s.close()
    w.stop()


# ---- transports ----------------------------------------------------------------------


def test_paho_over_websocket_and_tcp_at_once(mgr):
    b, port = start(mgr)
    ws_port = b.listen("ws://127.0.0.1:0").local_addr[1]
    s = peer(mgr, ws_port, sub="ws/#", qos=1, transport="websockets")
    p = peer(mgr, port)
    p.cli.publish("ws/a", b"tcp to ws", qos=1)
    poll_until(mgr, lambda: s.msgs)
    s.cli.publish("ws/b", b"ws to ws", qos=2)
    poll_until(mgr, lambda: len(s.msgs) == 2)
    assert s.texts() == [("ws/a", b"tcp to ws"), ("ws/b", b"ws to ws")]
    s.stop()
    p.stop()


def test_paho_over_mqtts_with_the_test_ca(mgr, certs):
    tls = certs.server_opts()
    b = mgr.mqtt_broker("mqtts://127.0.0.1:0", tls=tls)
    port = b.listeners[0].local_addr[1]
    assert b.listeners[0].is_tls
    wss_port = b.listen("wss://127.0.0.1:0", tls=tls).local_addr[1]
    s = peer(mgr, port, sub="tls/#", qos=1, ca=certs.path("ca.crt"), host="localhost")
    p = peer(mgr, wss_port, ca=certs.path("ca.crt"), host="localhost", transport="websockets")
    p.cli.publish("tls/x", b"secret", qos=1)
    poll_until(mgr, lambda: s.msgs)
    assert s.texts() == [("tls/x", b"secret")]
    s.stop()
    p.stop()


def test_client_certificate_subject_reaches_the_hooks(mgr, certs):
    seen = []

    def auth(info):
        seen.append(info.cert_subject)
        return "test-client" in info.cert_subject

    tls = certs.server_opts(ca=certs.pem("ca.crt"))  # a CA: client certificates asked for
    b = mgr.mqtt_broker("mqtts://127.0.0.1:0", tls=tls, auth=auth)
    port = b.listeners[0].local_addr[1]
    p = peer(mgr, port, ca=certs.path("ca.crt"), host="localhost",
             cert=(certs.path("client.crt"), certs.path("client.key")))
    assert p.connacks[0][0] == 0 and "test-client" in seen[0]
    p.stop()


# ---- limits and bad input ------------------------------------------------------------


def test_max_connections(mgr):
    b, port = start(mgr, max_connections=2)
    a1, a2 = peer(mgr, port), peer(mgr, port)
    third = PahoPeer(port, reconnect_on_failure=False)
    fourth = PahoPeer(port, version=5, reconnect_on_failure=False)
    poll_until(mgr, lambda: (third.connacks or third.disconnects)
               and (fourth.connacks or fourth.disconnects))
    assert not third.connacks or third.connacks[0][0] == 3  # server unavailable
    assert not fourth.connacks or fourth.connacks[0][0] == 0x97  # quota exceeded
    assert b.stats()["clients"] == 2
    a2.cli.subscribe("ok")
    poll_until(mgr, lambda: a2.subacks)
    a1.cli.publish("ok", b"others untouched")
    poll_until(mgr, lambda: a2.msgs)
    for p in (a1, a2):
        p.stop()
    third.cli.loop_stop()
    fourth.cli.loop_stop()


def test_max_packet_disconnects_only_the_offender(mgr):
    b, port = start(mgr, max_packet=1024)
    good = peer(mgr, port, sub="big/#")
    big = peer(mgr, port, reconnect_on_failure=False)
    big.cli.publish("big/x", b"x" * 4000)
    poll_until(mgr, lambda: big.disconnects)
    good.cli.publish("big/y", b"small")
    poll_until(mgr, lambda: good.msgs)
    settle(mgr)
    assert good.texts() == [("big/y", b"small")]
    good.stop()
    big.cli.loop_stop()


BAD_INPUT = {
    "remaining length of five bytes": [b"\x30\xff\xff\xff\xff\x01"],
    "invalid UTF-8 topic": [mqtt_pkt(0x30, mqtt_s(b"a\xc3\x28") + b"x")],
    "wildcard in PUBLISH topic": [mqtt_pkt(0x30, mqtt_s("a/+") + b"x")],
    "reserved packet type 15": [b"\xf0\x00"],
    "reserved packet type 0": [b"\x00\x00"],
    "CONNECT twice": [mqtt_connect_pkt("twice")],
    "oversize": [mqtt_pkt(0x30, mqtt_s("big") + b"x" * 5000)],
    "SUBSCRIBE with bad flags": [mqtt_pkt(0x80, b"\x00\x01" + mqtt_s("a") + b"\x00")],
    "QoS 3 PUBLISH": [mqtt_pkt(0x36, mqtt_s("a") + b"\x00\x01x")],
    "SUBACK from a client": [mqtt_pkt(0x90, b"\x00\x01\x00")],
}


@pytest.mark.parametrize("kind", sorted(BAD_INPUT))
def test_bad_input_closes_only_that_connection(mgr, kind):
    b, port = start(mgr, max_packet=2048)
    good = peer(mgr, port, sub="ok")
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(mqtt_connect_pkt(f"bad-{len(kind)}"))
    ack = []

    def read_connack():
        ack.append(mqtt_read(s))

    import threading

    t = threading.Thread(target=read_connack)
    t.start()
    poll_until(mgr, lambda: not t.is_alive(), timeout=10)
    assert ack[0][0] == 0x20 and ack[0][1][1] == 0
    for chunk in BAD_INPUT[kind]:
        s.sendall(chunk)
    closed = []

    def drain():
        while True:
            try:
                pkt = mqtt_read(s)
            except OSError:
                pkt = None
            if pkt is None:
                closed.append(True)
                return

    t = threading.Thread(target=drain)
    t.start()
    poll_until(mgr, lambda: closed, timeout=15)
    s.close()
    good.cli.publish("ok", b"still fine")
    poll_until(mgr, lambda: good.msgs)
    assert b.stats()["clients"] == 1
    good.stop()


def test_packet_before_connect_is_refused(mgr):
    b, port = start(mgr)
    good = peer(mgr, port, sub="ok")
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(mqtt_pkt(0x30, mqtt_s("ok") + b"sneaky"))
    s.settimeout(10)
    out = []
    import threading

    t = threading.Thread(target=lambda: out.append(mqtt_read(s)))
    t.start()
    poll_until(mgr, lambda: not t.is_alive(), timeout=15)
    assert out == [None]
    s.close()
    good.cli.publish("ok", b"real")
    poll_until(mgr, lambda: good.msgs)
    settle(mgr)
    assert good.texts() == [("ok", b"real")]
    good.stop()


# ---- AsyncManager ---------------------------------------------------------------------


def test_async_manager_runs_a_broker():
    import asyncio

    from cymongoose import AsyncManager

    async def main():
        got = asyncio.Queue()
        loop = asyncio.get_running_loop()
        async with AsyncManager(poll_interval=20) as am:
            b = am.mqtt_broker("mqtt://127.0.0.1:0")
            port = b.listeners[0].local_addr[1]
            b.watch("aio/#", lambda m: loop.call_soon_threadsafe(got.put_nowait, m.text))
            p = PahoPeer(port)
            for _ in range(200):  # the connect happens on the poll thread
                if p.connacks:
                    break
                await asyncio.sleep(0.05)
            p.cli.publish("aio/x", b"through asyncio", qos=1)
            assert await asyncio.wait_for(got.get(), 20) == "through asyncio"
            p.stop()
        assert b.closed  # stopping the AsyncManager closed its manager and the broker

    asyncio.run(main())
