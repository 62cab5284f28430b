// Node's `mqtt` package against libcymg's broker (tests/python/test_mqtt_broker_peers.py).
//   node mqtt_client.js URL VERSION
// Subscribes to node/#, publishes node/hello (QoS 1, v5: with user properties) and
// node/q2 (QoS 2), checks both come back, publishes node/retained (retained), and
// exits 0 printing "OK" after every check passed.
'use strict';
const mqtt = require('mqtt');
const { fail } = require('./common');

const [url, version] = [process.argv[2], Number(process.argv[3] || 4)];
setTimeout(() => fail('timed out'), 60000).unref();

const c = mqtt.connect(url, {
  protocolVersion: version,
  clientId: `node-v${version}`,
  reconnectPeriod: 0,
  connectTimeout: 20000,
});
c.on('error', (e) => fail('client error: ' + e.message));

const want = new Set(['node/hello', 'node/q2']);
c.on('message', (topic, payload, packet) => {
  if (topic === 'node/retained') return; // our own retained publish, echoed
  if (!want.has(topic)) fail('unexpected message on ' + topic);
  if (topic === 'node/hello') {
    if (payload.toString() !== 'hello from node') fail('payload: ' + payload);
    if (version === 5) {
      const up = (packet.properties || {}).userProperties || {};
      if (up.lang !== 'js') fail('user properties: ' + JSON.stringify(up));
    }
  }
  if (topic === 'node/q2' && packet.qos !== 2) fail('node/q2 came at QoS ' + packet.qos);
  want.delete(topic);
  if (want.size === 0) {
    c.publish('node/retained', 'kept', { qos: 1, retain: true }, (err) => {
      if (err) fail('retained publish: ' + err.message);
      c.end(false, () => {
        console.log('OK');
        process.exit(0);
      });
    });
  }
});

c.on('connect', (connack) => {
  if (connack.returnCode && connack.returnCode !== 0) fail('CONNACK ' + connack.returnCode);
  c.subscribe('node/#', { qos: 2 }, (err, granted) => {
    if (err) fail('subscribe: ' + err.message);
    if (granted[0].qos !== 2) fail('granted ' + JSON.stringify(granted));
    const props = version === 5 ? { properties: { userProperties: { lang: 'js' } } } : {};
    c.publish('node/hello', 'hello from node', { qos: 1, ...props });
    c.publish('node/q2', 'exactly once', { qos: 2 });
  });
});
