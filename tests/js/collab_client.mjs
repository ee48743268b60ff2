// A real y-websocket provider (yjs 13, y-websocket 2), driven by the Python tests.
//
//   node collab_client.mjs '{"url": "ws://127.0.0.1:PORT/collab", "room": "asset:...", "token": "...",
//                            "writes": 10, "prefix": "js", "expect": 20, "expectAwareness": 2}'
//
// Connects, pushes `writes` strings `${prefix}${i}` into the array "items" (one transaction each),
// announces {name: prefix} in awareness, waits until the array holds `expect` items and `expectAwareness`
// awareness states are seen, then prints {"items": [...], "awareness": [...]} and leaves cleanly.
// If the server closes the socket with a code of 4000 or more before syncing, prints {"closed": code}.
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

const opts = JSON.parse(process.argv[2])
const doc = new Y.Doc()
const items = doc.getArray('items')
const provider = new WebsocketProvider(opts.url, opts.room, doc, {
  WebSocketPolyfill: WebSocket, params: opts.token ? { token: opts.token } : {}, disableBc: true
})
const timeout = setTimeout(() => finish({ timeout: true }), opts.timeoutMs ?? 20000)

function finish (result) {
  clearTimeout(timeout)
  const out = {
    ...result,
    items: items.toArray(),
    awareness: [...provider.awareness.getStates().values()].map(s => s.name ?? null)
  }
  process.stdout.write(JSON.stringify(out) + '\n')
  const ws = provider.ws
  const leave = () => { provider.destroy(); setTimeout(() => process.exit(0), 50) }
  // Leave only once everything we sent has left the socket.
  const drain = () => (ws && ws.bufferedAmount > 0) ? setTimeout(drain, 5) : leave()
  drain()
}

provider.on('connection-close', (event) => {
  if (event && event.code >= 4000 && !provider.synced) finish({ closed: event.code })
})

function check () {
  if (items.length >= (opts.expect ?? 0) &&
      provider.awareness.getStates().size >= (opts.expectAwareness ?? 0)) finish({})
}

provider.on('sync', (synced) => {
  if (!synced) return
  provider.awareness.setLocalStateField('name', opts.prefix ?? 'js')
  for (let i = 0; i < (opts.writes ?? 0); i++) items.push([`${opts.prefix}${i}`])
  items.observe(check)
  provider.awareness.on('change', check)
  check()
})
