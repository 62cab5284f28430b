// Node's `ws` over TLS, as a peer for the Python TLS tests (tests/python/test_tls.py).
//   node wss.js server CERT KEY   an https + wss echo server on 127.0.0.1:<ephemeral>;
//                                 prints "PORT <n>", exits when stdin closes
//   node wss.js client URL CA     connects to URL trusting only CA, sends messages of
//                                 several sizes, checks each echo, closes 1000; exit 0
'use strict';
const fs = require('fs');
const https = require('https');
const WebSocket = require('ws');
const { payload, fail, nextMessage, once } = require('./common');

const [mode, a, b] = process.argv.slice(2);
if (mode === 'server') {
  const srv = https.createServer({ cert: fs.readFileSync(a), key: fs.readFileSync(b) });
  const wss = new WebSocket.Server({ server: srv, maxPayload: 64 << 20 });
  wss.on('connection', (ws, req) => {
    ws.send('tls ' + req.socket.getProtocol());
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
    ws.on('error', (e) => console.error('server error: ' + e.message));
  });
  srv.listen(0, '127.0.0.1', () => console.log('PORT ' + srv.address().port));
  process.stdin.on('end', () => process.exit(0));
  process.stdin.resume();
} else if (mode === 'client') {
  setTimeout(() => fail('timed out'), 60000).unref();
  const ws = new WebSocket(a, { ca: fs.readFileSync(b), maxPayload: 64 << 20 });
  ws.on('error', (e) => fail('client error: ' + e.message));
  (async () => {
    await once(ws, 'open');
    for (const n of [0, 1, 125, 126, 65535, 65536, 1 << 20]) {
      const data = payload(n, true);
      const got = nextMessage(ws);
      ws.send(data, { binary: true });
      const [d] = await got;
      if (!d.equals(data)) fail(`echo of ${n} bytes differs`);
    }
    ws.close(1000, 'done');
    await once(ws, 'close');
    console.log('OK');
    process.exit(0);
  })().catch((e) => fail(String(e)));
} else {
  fail('usage: node wss.js server CERT KEY | client URL CA');
}
