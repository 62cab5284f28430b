// The aedes broker for bench/mqtt/run.sh: one process, in-memory persistence
// (aedes' default), one plain TCP listener on 127.0.0.1:PORT (0: a free one),
// TCP_NODELAY on accepted sockets as the other brokers set it. Prints
// "port N" once listening; exits on SIGTERM or SIGINT.
//
//   node aedes.mjs PORT
import { createServer } from 'node:net'
import { Aedes } from 'aedes'

const port = Number(process.argv[2] ?? 0)
// concurrency: messages being delivered at once (aedes' default 100 would cap
// a 1->100 fan-out below one message in flight).
const aedes = await Aedes.createBroker({ concurrency: 100000, heartbeatInterval: 3600000 })
const server = createServer({ noDelay: true }, aedes.handle)
server.on('error', (err) => {
  console.error('aedes.mjs:', err.message)
  process.exit(1)
})
server.listen(port, '127.0.0.1', () => {
  console.log(`port ${server.address().port}`)
})
const stop = () => {
  server.close()
  aedes.close(() => process.exit(0))
  setTimeout(() => process.exit(0), 2000).unref()
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
