"""The Python examples run and do what they say."""

import pathlib
import re
import signal
import socket
import subprocess
import sys

EXAMPLES = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python"


def test_tcp_echo_example():
    proc = subprocess.Popen([sys.executable, str(EXAMPLES / "tcp_echo.py"), "tcp://127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r":(\d+);", line).group(1))
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(b"echo me")
            assert s.recv(100) == b"echo me"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "bye" in out


def test_tcp_echo_example_help():
    out = subprocess.run([sys.executable, str(EXAMPLES / "tcp_echo.py"), "--help"],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and "tcp://127.0.0.1:8000" in out.stdout
