#!/usr/bin/env python3
"""A WebSocket chat: a page with a browser client at /, WebSocket at /ws.

    python3 examples/python/websocket_server.py [URL]

URL defaults to ws://127.0.0.1:8000 (http://... works the same: WebSocket
starts as HTTP; port 0 picks a free port). Open http://127.0.0.1:8000/ in a
few browser tabs: each text message is sent to every WebSocket connection,
its sender included (that is the echo); binary messages are echoed to their
sender only. Joins and departures are announced. Stop it with Ctrl+C or
SIGTERM. Without a browser:

    python3 -c 'import websocket; ws = websocket.create_connection("ws://127.0.0.1:8000/ws"); ws.send("hi"); print(ws.recv())'
"""

import argparse

from cymongoose import (
    MG_EV_CLOSE,
    MG_EV_ERROR,
    MG_EV_HTTP_MSG,
    MG_EV_WS_MSG,
    MG_EV_WS_OPEN,
    WEBSOCKET_OP_BINARY,
    WEBSOCKET_OP_TEXT,
    Manager,
)

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>cymongoose WebSocket chat</title>
<style>
  body { font-family: sans-serif; max-width: 40em; margin: 2em auto; }
  #log { border: 1px solid #ccc; height: 20em; overflow-y: auto; padding: .5em;
         white-space: pre-wrap; }
  #status { color: #666; }
</style>
</head>
<body>
<h1>WebSocket chat</h1>
<p id="status">connecting...</p>
<div id="log"></div>
<form id="form"><input id="text" size="50" autocomplete="off" autofocus>
<button>Send</button></form>
<script>
"use strict";
const log = document.getElementById("log");
const status = document.getElementById("status");
function show(line) {
  const div = document.createElement("div");
  div.textContent = line;  // text, never HTML: messages come from other users
  log.appendChild(div);
  log.scrollTop = log.scrollHeight;
}
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const ws = new WebSocket(scheme + location.host + "/ws");
ws.onopen = () => { status.textContent = "connected"; };
ws.onclose = (e) => { status.textContent = "closed (" + e.code + ")"; };
ws.onerror = () => { status.textContent = "error"; };
ws.onmessage = (e) => show(e.data);
document.getElementById("form").onsubmit = (e) => {
  e.preventDefault();
  const input = document.getElementById("text");
  if (input.value && ws.readyState === WebSocket.OPEN) ws.send(input.value);
  input.value = "";
};
</script>
</body>
</html>
"""

manager = None  # set in main(); the handler walks manager.connections


def broadcast(text):
    """Sends text to every WebSocket connection, as the Manager page shows.
    ws_send() returns False for one that is closing, so none can break the loop."""
    for conn in manager.connections:
        if conn.is_websocket:
            conn.ws_send(text, WEBSOCKET_OP_TEXT)


def online():
    return sum(1 for c in manager.connections if c.is_websocket and not c.is_closing)


def handler(conn, ev, data):
    if ev == MG_EV_HTTP_MSG:
        if data.uri == "/ws":
            # False: not a WebSocket request; it was answered 400 already.
            conn.ws_upgrade(data)
        elif data.uri == "/":
            conn.reply(200, PAGE, {"Content-Type": "text/html; charset=utf-8"})
        else:
            conn.reply(404, b"not found\n")
    elif ev == MG_EV_WS_OPEN:
        conn.userdata = "client %d" % conn.id
        ip, port, _ = conn.remote_addr
        print(f"{conn.userdata}: joined from {ip}:{port} ({data.uri})", flush=True)
        broadcast(f"{conn.userdata} joined ({online()} online)")
    elif ev == MG_EV_WS_MSG:
        if data.flags & 0x0F == WEBSOCKET_OP_BINARY:
            conn.ws_send(data.data, WEBSOCKET_OP_BINARY)  # echo to the sender only
        else:
            broadcast(f"[{conn.userdata}] {data.text}")
    elif ev == MG_EV_ERROR:
        print(f"{conn.id}: error: {data}", flush=True)
    elif ev == MG_EV_CLOSE and isinstance(conn.userdata, str):
        print(f"{conn.userdata}: left", flush=True)
        # The others hear about it (ws_send skips this one: it is closing).
        broadcast(f"{conn.userdata} left ({online()} online)")


def main():
    global manager
    parser = argparse.ArgumentParser(description="WebSocket chat server on cymongoose")
    parser.add_argument("url", nargs="?", default="ws://127.0.0.1:8000",
                        help="address to listen on, ws:// or http:// (default: %(default)s)")
    args = parser.parse_args()
    manager = Manager(handler)
    listener = manager.listen(args.url)
    ip, port, _ = listener.local_addr
    print(f"serving http://{ip}:{port}/ (WebSocket at ws://{ip}:{port}/ws); Ctrl+C to stop",
          flush=True)
    manager.run()  # returns on SIGINT/SIGTERM, after closing everything
    print("bye", flush=True)


if __name__ == "__main__":
    main()
