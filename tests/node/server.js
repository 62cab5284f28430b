// A Node `ws` server for libcymg's WebSocket client (tests/c/test_ws.c).
//   node server.js plain|deflate|deflate-noctx|deflate-bits
// Listens on an ephemeral port on 127.0.0.1 and prints "PORT <n>". Echoes
// messages; commands sent as text: "close:CODE", "ping", "frag:N", "deflate?".
// Exits when stdin closes (the parent test went away).
'use strict';
const WebSocket = require('ws');
const { payload } = require('./common');

const mode = process.argv[2] || 'plain';
const pmd = {
  plain: false,
  deflate: { threshold: 0 },
  'deflate-noctx': { threshold: 0, serverNoContextTakeover: true, clientNoContextTakeover: true },
  'deflate-bits': { threshold: 0, serverMaxWindowBits: 9, clientMaxWindowBits: 10 },
}[mode];

const wss = new WebSocket.Server({ host: '127.0.0.1', port: 0, perMessageDeflate: pmd,
                                   maxPayload: 64 << 20 });
wss.on('listening', () => console.log('PORT ' + wss.address().port));
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    const s = isBinary ? null : data.toString();
    if (s && s.startsWith('close:')) {
      ws.close(Number(s.slice(6)), 'bye');
    } else if (s === 'ping') {
      ws.once('pong', (d) => ws.send(d.toString() === 'srv-ping' ? 'ponged' : 'bad pong'));
      ws.ping('srv-ping');
    } else if (s && s.startsWith('frag:')) {
      const d = payload(Number(s.slice(5)), false);
      const third = Math.floor(d.length / 3);
      ws.send(d.subarray(0, third), { binary: true, fin: false });
      ws.send(d.subarray(third, 2 * third), { binary: true, fin: false });
      ws.send(d.subarray(2 * third), { binary: true, fin: true });
    } else if (s === 'deflate?') {
      ws.send(ws.extensions.includes('permessage-deflate') ? 'yes' : 'no');
    } else {
      ws.send(data, { binary: isBinary });
    }
  });
  ws.on('error', (e) => console.error('server error: ' + e.message));
});
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
