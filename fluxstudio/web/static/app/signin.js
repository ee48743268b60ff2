// Sign-in with an API token (the one-time link that `fluxstudio up` prints signs in without one).
// The token goes to the server once and is forgotten: the browser keeps only an HttpOnly cookie.
import { useState } from 'preact/hooks'
import { api } from './api.js'
import { html, ErrorNote } from './ui.js'

export function SignIn({ error, onSignedIn }) {
  const [token, setToken] = useState('')
  const [busy, setBusy] = useState(false)
  const [failure, setFailure] = useState(error)

  const submit = async (event) => {
    event.preventDefault()
    if (!token.trim()) return setFailure('Paste an API token first.')
    setBusy(true)
    setFailure(null)
    try {
      const session = await api('/session', { method: 'POST', body: { token: token.trim() } })
      setToken('')
      onSignedIn(session)
    } catch (problem) {
      setFailure(problem.status === 401 ? 'That token is unknown or has been revoked.' : problem)
    } finally {
      setBusy(false)
    }
  }

  return html`<main class="signin">
    <form class="card" onSubmit=${submit} aria-labelledby="signin-title">
      <h1 id="signin-title"><span class="logo" aria-hidden="true"></span>FluxStudio</h1>
      <p class="muted">Review media with your team and your agents.</p>
      <${ErrorNote} error=${failure} />
      <label for="token">API token</label>
      <input id="token" name="token" type="password" autocomplete="off" spellcheck="false"
        placeholder="fs_…" value=${token} onInput=${(e) => setToken(e.currentTarget.value)} autofocus />
      <button type="submit" class="primary" disabled=${busy}>${busy ? 'Signing in…' : 'Sign in'}</button>
      <p class="hint">Open the sign-in link that <code>fluxstudio up</code> prints, or create a token with
        <code>fluxstudio tokens create console</code>.</p>
    </form>
  </main>`
}
