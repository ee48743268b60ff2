// The collaboration benchmark's clients: one writer and N readers (y-websocket providers), one process.
//
//   node collab_bench.mjs '{"url": "ws://HOST:PORT[/collab]", "room": "...", "token": "...",
//                           "readers": 10, "updates": 1000}'
//
// Prints "ready" once every provider has synced, waits for a line on stdin (the driver reads the
// server's CPU time then), makes `updates` small edits (one transaction each) and prints
// {"ms": ...} when every reader holds all of them.
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'
import { createInterface } from 'node:readline'

const opts = JSON.parse(process.argv[2])
process.setMaxListeners(0) // one exit listener per provider
const params = opts.token ? { token: opts.token } : {}
const connect = () => {
  const doc = new Y.Doc()
  const provider = new WebsocketProvider(opts.url, opts.room, doc, { WebSocketPolyfill: WebSocket, params, disableBc: true })
  return { doc, provider, synced: new Promise(resolve => provider.once('synced', resolve)) }
}
const readers = Array.from({ length: opts.readers }, connect)
const writer = connect()
await Promise.all([writer, ...readers].map(c => c.synced))
console.log('ready')

const lines = createInterface({ input: process.stdin })
await new Promise(resolve => lines.once('line', resolve))
const done = readers.map(({ doc }) => new Promise(resolve => {
  const array = doc.getArray('items')
  const check = () => { if (array.length >= opts.updates) { array.unobserve(check); resolve() } }
  array.observe(check)
}))
const started = performance.now()
const items = writer.doc.getArray('items')
for (let i = 0; i < opts.updates; i++) items.push([i])
await Promise.all(done)
console.log(JSON.stringify({ ms: performance.now() - started }))
for (const c of [writer, ...readers]) c.provider.destroy()
setTimeout(() => process.exit(0), 100)
