// The console's entry: who is signed in, and which view the address names.
import { render } from 'preact'
import { useEffect, useState } from 'preact/hooks'
import { api, setCsrf, ApiError } from './api.js'
import { html, Link, navigate, ErrorNote } from './ui.js'
import { SignIn } from './signin.js'
import { Projects } from './projects.js'
import { ProjectView } from './project.js'

const views = {
  asset: () => import('./asset.js').then((module) => module.AssetView),
}

function route(pathname) {
  let match = pathname.match(/^\/projects\/([^/]+)$/)
  if (match) return { name: 'project', id: decodeURIComponent(match[1]) }
  match = pathname.match(/^\/assets\/([^/]+)$/)
  if (match) return { name: 'asset', id: decodeURIComponent(match[1]) }
  return { name: 'projects' }
}

async function startSession() {
  const params = new URLSearchParams(location.search)
  const code = params.get('code')
  if (location.pathname === '/signin' && code) {
    history.replaceState({}, '', '/') // the code is used once: never leave it in the address bar
    return api('/session', { method: 'POST', body: { code } })
  }
  try {
    return await api('/session')
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) return null
    throw error
  }
}

function App() {
  const [session, setSession] = useState(undefined)
  const [error, setError] = useState(null)
  const [where, setWhere] = useState(route(location.pathname))
  const [AssetView, setAssetView] = useState(null)

  useEffect(() => {
    startSession()
      .then((found) => {
        if (found) setCsrf(found.csrf)
        setSession(found)
      })
      .catch((failure) => {
        setError(failure)
        setSession(null)
      })
    const onMove = () => setWhere(route(location.pathname))
    const onSignedOut = () => setSession(null)
    window.addEventListener('popstate', onMove)
    window.addEventListener('fluxstudio:navigate', onMove)
    window.addEventListener('fluxstudio:signed-out', onSignedOut)
    return () => {
      window.removeEventListener('popstate', onMove)
      window.removeEventListener('fluxstudio:navigate', onMove)
      window.removeEventListener('fluxstudio:signed-out', onSignedOut)
    }
  }, [])

  useEffect(() => {
    if (where.name === 'asset' && !AssetView) views.asset().then((view) => setAssetView(() => view))
  }, [where.name])

  useEffect(() => {
    document.title = { projects: 'Projects', project: 'Project', asset: 'Review' }[where.name] + ' · FluxStudio'
  }, [where.name])

  if (session === undefined) return html`<p class="boot">Loading FluxStudio…</p>`
  if (session === null) {
    return html`<${SignIn} error=${error} onSignedIn=${(found) => {
      setCsrf(found.csrf)
      setError(null)
      setSession(found)
    }} />`
  }

  const signOut = async () => {
    try {
      await api('/session', { method: 'DELETE' })
    } catch (failure) {
      if (!(failure instanceof ApiError && failure.status === 401)) return setError(failure)
    }
    setCsrf(null)
    setSession(null)
    navigate('/')
  }

  let view
  if (where.name === 'project') view = html`<${ProjectView} key=${where.id} projectId=${where.id} />`
  else if (where.name === 'asset') {
    view = AssetView
      ? html`<${AssetView} key=${where.id} assetId=${where.id} session=${session} />`
      : html`<p class="muted pad">Loading the player…</p>`
  } else view = html`<${Projects} />`

  return html`
    <header class="top">
      <${Link} href="/" class="brand" aria-label="FluxStudio, all projects"><span class="logo" aria-hidden="true"></span>FluxStudio<//>
      <span class="spacer"></span>
      <span class="who" title="Signed in">${session.user.email}</span>
      <button type="button" class="quiet" onClick=${signOut}>Sign out</button>
    </header>
    <main id="main">
      <${ErrorNote} error=${error} onDismiss=${() => setError(null)} />
      ${view}
    </main>`
}

render(html`<${App} />`, document.getElementById('app'))
