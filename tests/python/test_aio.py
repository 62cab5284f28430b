"""cymongoose.aio.AsyncManager: the seed page's behaviour, the shutdown sequence,
and the helpers (schedule's Future, connect_ready, events). Real sockets on
127.0.0.1; asyncio tests run under pytest-asyncio (strict mode: marked)."""

import asyncio
import concurrent.futures
import socket
import threading
import urllib.request
import warnings

import pytest

import cymongoose
from cymongoose import (
    MG_EV_ACCEPT,
    MG_EV_CLOSE,
    MG_EV_CONNECT,
    MG_EV_HTTP_MSG,
    MG_EV_READ,
    MG_EV_WAKEUP,
    AsyncManager,
)
from conftest import free_port

pytestmark = pytest.mark.asyncio

HANG = 20  # seconds: hang guard only


async def in_executor(fn, *args):
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.run_in_executor(None, fn, *args), HANG)


def fetch(url):
    with urllib.request.urlopen(url, timeout=HANG) as r:
        return r.status, r.read()


def http_hello(conn, ev, data):
    if ev == MG_EV_HTTP_MSG:
        conn.reply(200, b"hello " + data.uri.encode())


async def test_root_reexport():
    from cymongoose.aio import AsyncManager as A

    assert A is cymongoose.AsyncManager
    assert "AsyncManager" in cymongoose.__all__


async def test_not_started_raises():
    am = AsyncManager()
    calls = [
        lambda: am.listen("http://127.0.0.1:0"),
        lambda: am.connect("tcp://127.0.0.1:1"),
        lambda: am.mqtt_connect("mqtt://127.0.0.1:1883"),
        lambda: am.mqtt_listen("mqtt://127.0.0.1:0"),
        lambda: am.sntp_connect("udp://127.0.0.1:123"),
        lambda: am.timer_add(10, lambda: None),
        lambda: am.wakeup(1, b"x"),
        lambda: am.schedule(lambda: None),
        lambda: am.manager,
        lambda: am.events("tcp://127.0.0.1:1"),
    ]
    for call in calls:
        with pytest.raises(RuntimeError, match="not started"):
            call()
    with pytest.raises(RuntimeError, match="not started"):
        await am.connect_ready("tcp://127.0.0.1:1")
    assert am.running is False
    assert am._manager is None and am._thread is None and am._loop is None and am._wake_id == 0


async def test_serves_http_and_cleans_up():
    am = AsyncManager(http_hello, poll_interval=50)
    async with am as entered:
        assert entered is am
        assert am.running
        assert isinstance(am.manager, cymongoose.Manager)
        assert am._thread.daemon and am._thread.is_alive()
        assert am._loop is asyncio.get_running_loop()
        assert am._wake_id == am.manager.wakeup_id > 0
        lsn = am.listen("http://127.0.0.1:0")
        port = lsn.local_addr[1]
        assert await in_executor(fetch, "http://127.0.0.1:%d/x" % port) == (200, b"hello /x")
    assert not am.running
    assert am._manager is None and am._thread is None and am._loop is None
    with pytest.raises(RuntimeError, match="not started"):
        am.manager


async def test_enter_exit_three_times():
    am = AsyncManager(http_hello)
    for i in range(3):
        async with am:
            port = am.listen("http://127.0.0.1:0").local_addr[1]
            assert await in_executor(fetch, "http://127.0.0.1:%d/%d" % (port, i)) == (
                200, b"hello /%d" % i)
        assert am._manager is None
    for _ in range(3):  # and fresh instances
        async with AsyncManager() as other:
            assert other.running


async def test_double_enter_refused():
    async with AsyncManager() as am:
        with pytest.raises(RuntimeError, match="already started"):
            await am.__aenter__()


async def test_prompt_exit_with_long_poll_interval():
    # A lost wakeup would leave the thread in its 5 s wait; the join would then
    # time out and warn. No warning means the wakeup ended the wait.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            am = AsyncManager(poll_interval=5000)
            am._MAX_POLL_MS = 5000
            am._JOIN_INTERVAL = 2.0  # shorter than one wait: a lost wakeup would warn
            async with am:
                am.listen("tcp://127.0.0.1:0")
            assert am._thread is None and am._manager is None
    assert [w for w in caught if issubclass(w.category, RuntimeWarning)] == []


async def test_calls_do_not_wait_for_the_poll():
    # The poll thread waits up to 60 s; listen() and the request it serves must
    # not wait for that wait to end (the hang guard would fire).
    am = AsyncManager(http_hello, poll_interval=60000)
    am._MAX_POLL_MS = 60000
    async with am:
        await asyncio.sleep(0.05)  # the poll thread is in its wait now
        port = am.listen("http://127.0.0.1:0").local_addr[1]
        assert await in_executor(fetch, "http://127.0.0.1:%d/" % port) == (200, b"hello /")


async def test_wakeup_reaches_listener():
    loop = asyncio.get_running_loop()
    got = loop.create_future()

    def handler(conn, ev, data):
        if ev == MG_EV_WAKEUP:
            loop.call_soon_threadsafe(got.set_result, (conn.id, data))

    async with AsyncManager(handler) as am:
        lsn = am.listen("tcp://127.0.0.1:0")
        assert am.wakeup(lsn.id, b"ping") is True
        assert await asyncio.wait_for(got, HANG) == (lsn.id, b"ping")


async def test_wakeup_from_another_thread():
    loop = asyncio.get_running_loop()
    got = loop.create_future()

    def handler(conn, ev, data):
        if ev == MG_EV_WAKEUP:
            loop.call_soon_threadsafe(got.set_result, data)

    async with AsyncManager(handler) as am:
        lsn = am.listen("tcp://127.0.0.1:0")
        t = threading.Thread(target=am.wakeup, args=(lsn.id, b"from thread"))
        t.start()
        assert await asyncio.wait_for(got, HANG) == b"from thread"
        t.join()


async def test_timer_add_inside_handler():
    loop = asyncio.get_running_loop()
    fired = loop.create_future()
    holder = {}

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            # on the poll thread, inside a dispatch: must not deadlock
            holder["timer"] = holder["am"].timer_add(
                1, lambda: loop.call_soon_threadsafe(fired.set_result, "fired"))
            conn.reply(200, b"ok")

    async with AsyncManager(handler) as am:
        holder["am"] = am
        port = am.listen("http://127.0.0.1:0").local_addr[1]
        assert await in_executor(fetch, "http://127.0.0.1:%d/" % port) == (200, b"ok")
        assert await asyncio.wait_for(fired, HANG) == "fired"
        assert isinstance(holder["timer"], cymongoose.Timer)


async def test_timer_add_from_asyncio_repeat_and_cancel():
    loop = asyncio.get_running_loop()
    count = [0]
    three = loop.create_future()

    def tick():
        count[0] += 1
        if count[0] == 3:
            loop.call_soon_threadsafe(three.set_result, None)

    async with AsyncManager() as am:
        t = am.timer_add(5, tick, repeat=True, run_now=True)
        await asyncio.wait_for(three, HANG)
        t.cancel()
        assert t.active is False


async def test_schedule_coroutine_returns_future():
    async def work(x):
        await asyncio.sleep(0)
        return x * 2

    async with AsyncManager() as am:
        fut = am.schedule(work(21))
        assert isinstance(fut, concurrent.futures.Future)
        assert await asyncio.wrap_future(fut) == 42
        fut = am.schedule(lambda: "called")
        assert isinstance(fut, concurrent.futures.Future)
        assert await asyncio.wrap_future(fut) == "called"
        with pytest.raises(TypeError):
            am.schedule(42)


async def test_schedule_from_handler_and_errors_reported():
    errors = []
    loop = asyncio.get_running_loop()
    results = asyncio.Queue()

    async def process(body):
        await results.put(("ran on", threading.current_thread() is threading.main_thread(), body))

    async def boom():
        raise ValueError("scheduled work failed")

    holder = {}

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            conn.reply(200, b"Accepted")
            holder["am"].schedule(process(data.body_text))
            holder["fut"] = holder["am"].schedule(boom())
            holder["fut2"] = holder["am"].schedule(lambda: 1 / 0)

    async with AsyncManager(handler, error_handler=errors.append) as am:
        holder["am"] = am
        port = am.listen("http://127.0.0.1:0").local_addr[1]
        req = urllib.request.Request("http://127.0.0.1:%d/" % port, data=b"payload")
        assert await in_executor(fetch, req) == (200, b"Accepted")
        assert await asyncio.wait_for(results.get(), HANG) == ("ran on", True, "payload")
        with pytest.raises(ValueError):
            await asyncio.wrap_future(holder["fut"])
        with pytest.raises(ZeroDivisionError):
            await asyncio.wrap_future(holder["fut2"])
        for _ in range(100):
            if len(errors) >= 2:
                break
            await asyncio.sleep(0.01)
    kinds = sorted(type(e).__name__ for e in errors)
    assert kinds == ["ValueError", "ZeroDivisionError"]
    assert loop.is_running()


async def test_handler_exception_goes_to_error_handler():
    errors = []

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            raise KeyError("in handler")

    async with AsyncManager(handler, error_handler=errors.append) as am:
        port = am.listen("http://127.0.0.1:0").local_addr[1]
        with pytest.raises(urllib.error.HTTPError) as ei:
            await in_executor(fetch, "http://127.0.0.1:%d/" % port)
        assert ei.value.code == 500
        assert am.running  # the loop goes on
    assert [type(e) for e in errors] == [KeyError]


async def test_mqtt_connect_and_listen_delegate():
    # AsyncManager's MQTT calls are the Manager's: a client of ours against a
    # parser-level listener of ours, both on the poll thread.
    got = []
    done = threading.Event()

    def broker(conn, ev, data):
        if ev == cymongoose.MG_EV_MQTT_CMD and data.cmd == cymongoose.MQTT_CMD_CONNECT:
            conn.mqtt_connack(0)
        elif ev == cymongoose.MG_EV_MQTT_MSG:
            got.append((data.topic, data.data, data.qos))
            done.set()

    def client(conn, ev, data):
        if ev == cymongoose.MG_EV_MQTT_OPEN:
            got.append(("open", data))
            conn.mqtt_pub("a/b", b"hi", qos=1)

    async with AsyncManager() as am:
        lsn = am.mqtt_listen("mqtt://127.0.0.1:0", broker)
        am.mqtt_connect("mqtt://127.0.0.1:%d" % lsn.local_addr[1], handler=client,
                        client_id="aio", clean_session=True)
        assert await in_executor(done.wait, HANG)
    assert got == [("open", 0), ("a/b", b"hi", 1)]


async def test_sntp_connect_delegates():
    async with AsyncManager() as am:
        conn = am.sntp_connect("udp://127.0.0.1:%d" % free_port(socket.SOCK_DGRAM))
        assert conn.is_udp


async def test_shutdown_warns_retries_and_abandons_blocked_thread():
    release = threading.Event()
    entered = threading.Event()

    def handler(conn, ev, data):
        if ev == MG_EV_HTTP_MSG:
            entered.set()
            release.wait(HANG)  # a handler that blocks the poll thread
            conn.reply(200, b"late")

    am = AsyncManager(handler, shutdown_timeout=0.6)
    am._JOIN_INTERVAL = 0.2  # the documented 5 s steps, shortened for the test
    wakes = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        async with am:
            real_wake = am._wake_poll

            def counting_wake():
                wakes.append(1)
                real_wake()

            am._wake_poll = counting_wake
            port = am.listen("http://127.0.0.1:0").local_addr[1]
            client = threading.Thread(target=lambda: fetch("http://127.0.0.1:%d/" % port),
                                      daemon=True)
            client.start()
            assert await in_executor(entered.wait, HANG)
    texts = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert any("Retrying shutdown" in t for t in texts), texts
    assert "abandoning thread" in texts[-1]
    assert len(wakes) >= 2  # the first wakeup and at least one retry
    # Abandoned: the manager stays set (not closed under a running handler).
    assert am._manager is not None and am._thread is not None
    assert not am.running
    release.set()
    am._thread.join(HANG)
    client.join(HANG)
    assert not am._thread.is_alive()
    am._manager.close()


async def test_connect_ready():
    seen = []

    def server(conn, ev, data):
        if ev == MG_EV_READ:
            conn.send(conn.recv_data())

    async with AsyncManager() as am:
        port = am.listen("tcp://127.0.0.1:0", server).local_addr[1]
        conn = await am.connect_ready("tcp://127.0.0.1:%d" % port,
                                      lambda c, ev, d: seen.append(ev))
        assert isinstance(conn, cymongoose.Connection)
        assert MG_EV_CONNECT in seen  # the user's handler saw it too
        conn.close()
        with pytest.raises(ConnectionError, match="failed"):
            await am.connect_ready("tcp://127.0.0.1:%d" % free_port())


async def test_events_stream_tcp():
    def echo(conn, ev, data):
        if ev == MG_EV_READ:
            conn.send(b"echo:" + conn.recv_data())
            conn.drain()

    async with AsyncManager() as am:
        port = am.listen("tcp://127.0.0.1:0", echo).local_addr[1]
        stream = am.events("tcp://127.0.0.1:%d" % port)
        stream.conn.send(b"hi")
        events = []
        got = b""
        async for ev, data in stream:
            events.append(ev)
            if ev == MG_EV_READ:
                got += data
        assert got == b"echo:hi"
        assert MG_EV_CONNECT in events and events[-1] == MG_EV_CLOSE
        with pytest.raises(StopAsyncIteration):
            await stream.__anext__()


async def test_events_stream_http_copies_messages():
    async with AsyncManager() as am:
        port = am.listen("http://127.0.0.1:0", http_hello).local_addr[1]
        stream = am.events("http://127.0.0.1:%d" % port)
        stream.conn.send(b"GET /copied HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        msgs = [d async for ev, d in stream if ev == MG_EV_HTTP_MSG]
        assert len(msgs) == 1
        assert msgs[0].status() == 200 and msgs[0].body_bytes == b"hello /copied"


async def test_events_overflow_closes_with_error():
    def flood(conn, ev, data):
        if ev == MG_EV_ACCEPT:
            conn.send(b"x" * 10)

    async with AsyncManager() as am:
        port = am.listen("tcp://127.0.0.1:0", flood).local_addr[1]
        # A consumer that reads nothing until the connection is over.
        stream = am.events("tcp://127.0.0.1:%d" % port, max_events=1)
        for _ in range(HANG * 100):
            if stream._closed:
                break
            await asyncio.sleep(0.01)
        evs = [(ev, data) async for ev, data in stream]
        # the first event (RESOLVE) fills the queue; the next one overflows it
        assert [ev for ev, _ in evs][1:] == [cymongoose.MG_EV_ERROR, MG_EV_CLOSE]
        assert "event stream overflow" in evs[1][1]
        with pytest.raises(ValueError):
            cymongoose.aio.EventStream(am, 0)


async def test_listen_reuse_port():
    async with AsyncManager(http_hello) as am, AsyncManager(http_hello) as bm:
        port = am.listen("http://127.0.0.1:0", reuse_port=True).local_addr[1]
        bm.listen("http://127.0.0.1:%d" % port, reuse_port=True)
        with pytest.raises(RuntimeError, match="Address already in use"):
            bm.listen("http://127.0.0.1:%d" % port)
        assert await in_executor(fetch, "http://127.0.0.1:%d/r" % port) == (200, b"hello /r")
