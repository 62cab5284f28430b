"""`cymg mqtt pub` / `cymg mqtt sub` against a private mosquitto, with
mosquitto_sub / mosquitto_pub as the other side; exit codes 0/1/2."""

import subprocess
import threading

import pytest

from conftest import Mosquitto, cymg_tool, free_port, peer_env

TIMEOUT = 20


@pytest.fixture(scope="module")
def mosquitto(tmp_path_factory):
    """A private mosquitto with its plain TCP listener only: these tests need
    no other, and a failure says how the broker was doing."""
    b = Mosquitto(str(tmp_path_factory.mktemp("mosquitto")), tcp_only=True)
    yield b
    b.stop()


def run(*args):
    return subprocess.run([cymg_tool(), "mqtt", *args], capture_output=True, text=True,
                          timeout=TIMEOUT)


def guarded(p):
    """Kills p after TIMEOUT seconds, a hang guard for the blocking reads."""
    t = threading.Timer(TIMEOUT, p.kill)
    t.daemon = True
    t.start()
    return p


def mosquitto_sub(broker, topic, count, *extra):
    """mosquitto_sub started and subscribed: returns the Popen once its SUBACK
    came (-d prints "Client ... received SUBACK")."""
    p = subprocess.Popen(["stdbuf", "-oL", "mosquitto_sub", "-h", "127.0.0.1", "-p", str(broker.port), "-t",
                          topic, "-C", str(count), "-d", *extra], stdout=subprocess.PIPE,
                         text=True, env=peer_env())
    guarded(p)
    for line in p.stdout:
        if "received SUBACK" in line:
            return p
    pytest.fail("mosquitto_sub ended before subscribing (status %s); %s" % (p.wait(TIMEOUT),
                                                                           broker.state()))


@pytest.mark.parametrize("qos", ["0", "1", "2"])
def test_pub_reaches_mosquitto_sub(mosquitto, qos):
    sub = mosquitto_sub(mosquitto, "tool/pub/" + qos, 1, "-q", "2", "-v")
    out = run("pub", mosquitto.url, "tool/pub/" + qos, "hello " + qos, "-q", qos)
    assert out.returncode == 0, (out.stderr, mosquitto.state())
    lines = [ln for ln in sub.stdout.read().splitlines() if ln.startswith("tool/")]
    assert sub.wait(TIMEOUT) == 0
    assert lines == ["tool/pub/%s hello %s" % (qos, qos)]


def test_pub_retained_then_sub_gets_it(mosquitto):
    out = run("pub", mosquitto.url, "tool/ret", "kept", "-r", "-q", "1")
    assert out.returncode == 0, (out.stderr, mosquitto.state())
    got = run("sub", mosquitto.url, "tool/ret", "-C", "1", "-v")
    assert got.returncode == 0, got.stderr
    assert got.stdout == "tool/ret kept\n"
    assert run("pub", mosquitto.url, "tool/ret", "", "-r").returncode == 0  # clear it


def test_sub_several_topics_live_messages(mosquitto):
    # a retained message first tells us the subscriptions are in place
    out = run("pub", mosquitto.url, "tool/multi/a", "ready", "-r", "-q", "1")
    assert out.returncode == 0, (out.stderr, mosquitto.state())
    p = subprocess.Popen([cymg_tool(), "mqtt", "sub", mosquitto.url, "tool/multi/a",
                          "tool/other/#", "-C", "3", "-q", "1"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    guarded(p)
    assert p.stdout.readline() == "ready\n"
    for topic, msg in (("tool/other/x/y", "two"), ("tool/multi/a", "three")):
        subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(mosquitto.port), "-t",
                        topic, "-m", msg, "-q", "1"], check=True, timeout=TIMEOUT,
                       env=peer_env())
    rest, err = p.communicate(timeout=TIMEOUT)
    assert p.returncode == 0, err
    assert rest == "two\nthree\n"
    assert run("pub", mosquitto.url, "tool/multi/a", "", "-r").returncode == 0


def test_usage_errors_exit_2(mosquitto):
    for args in ([], ["pub"], ["pub", mosquitto.url, "t"], ["pub", mosquitto.url, "a/+", "m"],
                 ["pub", mosquitto.url, "t", "m", "-q", "3"], ["sub", mosquitto.url],
                 ["sub", mosquitto.url, "a/#/b"], ["sub", mosquitto.url, "t", "-x"],
                 ["sub", mosquitto.url, "t", "-C", "0"], ["nope"]):
        out = run(*args)
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert out.stderr


def test_failures_exit_1(mosquitto):
    out = run("pub", "mqtt://127.0.0.1:%d" % free_port(), "t", "m")
    assert out.returncode == 1 and "refused" in out.stderr.lower()
    out = run("sub", "bogus://127.0.0.1:1", "t")
    assert out.returncode == 1 and out.stderr


def test_help_exit_0():
    out = run("--help")
    assert out.returncode == 0 and "cymg mqtt pub URL TOPIC MESSAGE" in out.stdout
