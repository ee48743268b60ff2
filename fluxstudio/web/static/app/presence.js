// Who else is watching this asset, and where their playhead is: Yjs awareness in the room `asset:{id}`
// over /collab. yjs and y-websocket load only when an asset is opened.
import { api } from './api.js'

async function roomToken(room) {
  return (await api('/collab/tokens', { method: 'POST', body: { room } })).token
}

export async function joinPresence(assetId, me, onPeers) {
  const [{ Doc }, { WebsocketProvider }] = await Promise.all([import('yjs'), import('y-websocket')])
  const room = `asset:${assetId}`
  const doc = new Doc()
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws'
  const provider = new WebsocketProvider(`${scheme}://${location.host}/collab`, room, doc, {
    params: { token: await roomToken(room) },
    disableBc: true, // every viewer goes through the server, so what one sees all see
  })
  provider.on('closed', async (event) => {
    // 4401: the room token expired (they last 15 minutes) or the session ended (signed out in another
    // tab, or revoked). 4403: not ours any more; stay out.
    if (event.code === 4403) return provider.disconnect()
    if (event.code !== 4401) return
    try {
      provider.params = { token: await roomToken(room) }
      provider.connect()
    } catch {
      provider.disconnect() // signed out: api() has told the app, which leaves the room
    }
  })
  const awareness = provider.awareness
  awareness.setLocalStateField('user', me)
  const report = () => {
    const peers = []
    for (const [clientId, state] of awareness.getStates()) {
      if (clientId !== awareness.clientID && state.user) peers.push({ clientId, ...state })
    }
    onPeers(peers)
  }
  awareness.on('change', report)
  let last = 0
  return {
    playhead(time, playing, force = false) {
      const now = performance.now()
      if (!force && now - last < 250) return
      last = now
      awareness.setLocalStateField('playhead', { t: Math.round(time * 1000) / 1000, playing })
    },
    leave() {
      awareness.off('change', report)
      provider.destroy()
      doc.destroy()
    },
  }
}
