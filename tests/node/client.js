// A Node `ws` client against libcymg's WebSocket server (tests/c/test_ws.c).
//   node client.js PORT plain|deflate
// The server echoes messages and obeys commands sent as text: "close:CODE",
// "ping", "frag:N", "deflate?". Exits 0 after every check passed.
'use strict';
const WebSocket = require('ws');
const { SIZES, CLOSE_CODES, payload, fail, nextMessage, once } = require('./common');

const port = process.argv[2];
const deflate = process.argv[3] === 'deflate';
const url = `ws://127.0.0.1:${port}/ws`;
setTimeout(() => fail('timed out'), 120000).unref();

function open(opts = {}) {
  const ws = new WebSocket(url, { perMessageDeflate: deflate, maxPayload: 64 << 20, ...opts });
  ws.on('error', (e) => fail('client error: ' + e.message));
  return once(ws, 'open').then(() => ws);
}

async function echo(ws, data, binary) {
  const got = nextMessage(ws);
  ws.send(data, { binary });
  const [d, isBin] = await got;
  if (isBin !== binary) fail(`echo of ${data.length} bytes: binary flag ${isBin}`);
  if (!d.equals(data)) fail(`echo of ${data.length} ${binary ? 'binary' : 'text'} bytes differs`);
}

async function command(ws, text) {
  const got = nextMessage(ws);
  ws.send(text);
  return (await got)[0];
}

async function main() {
  let checks = 0;
  const ws = await open();
  const ext = ws.extensions;
  if (deflate !== ext.includes('permessage-deflate')) fail('extensions negotiated: ' + ext);
  const said = (await command(ws, 'deflate?')).toString();
  if (said !== (deflate ? 'yes' : 'no')) fail('server says deflate ' + said);
  for (const n of SIZES) {
    await echo(ws, payload(n, true), false);
    await echo(ws, payload(n, false), true);
    checks += 2;
  }
  // A fragmented message from us, with a ping between the fragments.
  {
    const got = nextMessage(ws);
    const a = payload(70000, true);
    ws.send(a.subarray(0, 30000), { fin: false });
    ws.ping('between');
    ws.send(a.subarray(30000, 69990), { fin: false });
    ws.send(a.subarray(69990), { fin: true });
    const [d] = await got;
    if (!d.equals(a)) fail('fragmented message came back different');
    checks++;
  }
  // The server streams a fragmented message to us.
  {
    const d = await command(ws, 'frag:200000');
    if (!d.equals(payload(200000, false))) fail('frag: message from the server differs');
    checks++;
  }
  // Our ping gets a pong with its payload.
  {
    const got = once(ws, 'pong');
    ws.ping(Buffer.from('ping-payload'));
    const [data] = await got;
    if (data.toString() !== 'ping-payload') fail('pong payload: ' + data);
    checks++;
  }
  // The server pings us; `ws` answers; the server reports the pong.
  {
    if ((await command(ws, 'ping')).toString() !== 'ponged') fail('server saw no pong');
    checks++;
  }
  // Closing from our side with each code: the server echoes it.
  ws.close(1000, 'done');
  const [code] = await once(ws, 'close');
  if (code !== 1000) fail('close echo: ' + code);
  checks++;
  for (const c of CLOSE_CODES) {
    const w = await open();
    w.close(c, 'reason ' + c);
    const [got] = await once(w, 'close');
    if (got !== c) fail(`client close ${c} echoed as ${got}`);
    checks++;
  }
  // The server closes with each code and a reason.
  for (const c of CLOSE_CODES) {
    const w = await open();
    w.send('close:' + c);
    const [got, reason] = await once(w, 'close');
    if (got !== c || reason.toString() !== 'bye') fail(`server close ${c} arrived as ${got} '${reason}'`);
    checks++;
  }
  console.log(`node client: ${checks} checks passed (${deflate ? 'deflate' : 'plain'})`);
}

main().catch((e) => fail(e.stack || String(e)));
