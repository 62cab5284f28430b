// Shared by the Node peers: the message matrix and small promise helpers.
'use strict';

// Sizes at every length-form boundary, plus a message of 16 MiB.
const SIZES = [0, 1, 125, 126, 127, 65535, 65536, 16 * 1024 * 1024];
// Codes a peer may send, as listed in RFC 6455 §7.4 and the IANA registry.
const CLOSE_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999];

// Deterministic content, so both sides can check what arrived.
function payload(n, text) {
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i++) b[i] = text ? 0x61 + (i % 26) : (i * 31 + 7) & 0xff;
  if (text && n >= 5) b.write('é€', n - 5, 'utf8'); // 5 bytes of non-ASCII at the end
  return b;
}

function fail(msg) {
  console.error('FAIL: ' + msg);
  process.exit(1);
}

// Resolves with the next 'message' (data, isBinary) on ws.
function nextMessage(ws) {
  return new Promise((resolve, reject) => {
    const onMsg = (data, isBinary) => { cleanup(); resolve([Buffer.from(data), isBinary]); };
    const onClose = (code) => { cleanup(); reject(new Error('closed with ' + code)); };
    const cleanup = () => { ws.off('message', onMsg); ws.off('close', onClose); };
    ws.on('message', onMsg);
    ws.on('close', onClose);
  });
}

function once(emitter, ev) {
  return new Promise((resolve) => emitter.once(ev, (...args) => resolve(args)));
}

module.exports = { SIZES, CLOSE_CODES, payload, fail, nextMessage, once };
