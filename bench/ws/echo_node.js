// Node `ws` echo server for bench/ws/run.sh: one process, no compression (the
// ws server's default), every message straight back with its type.
//   node echo_node.js PORT      (0: any free port)
// Needs the ws package from tests/node (scripts/deps-node.sh); NODE_PATH or
// the require below finds it. Prints "port N"; exits on SIGTERM/SIGINT.
'use strict';
const path = require('path');
const WebSocket = require(path.join(__dirname, '../../tests/node/node_modules/ws'));

const wss = new WebSocket.Server({ host: '127.0.0.1', port: Number(process.argv[2] || 0),
                                   perMessageDeflate: false });
wss.on('listening', () => console.log('port ' + wss.address().port));
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', (e) => console.error('echo_node: ' + e.message));
});
for (const s of ['SIGTERM', 'SIGINT']) process.on(s, () => process.exit(0));
