// The console's only way to the server: the public API under /api/v1, with the session cookie.
// Every request that changes something carries the session's CSRF token; errors become sentences.

let csrf = null

export function setCsrf(token) {
  csrf = token
}

export class ApiError extends Error {
  constructor(status, problem) {
    super(words(status, problem))
    this.status = status
    this.problem = problem || {}
  }
}

function words(status, problem) {
  const detail = problem && problem.detail
  if (status === 0) return 'The server cannot be reached. Check that FluxStudio is running, then try again.'
  if (status === 401) return detail ? `You are signed out: ${detail}.` : 'You are signed out. Sign in again.'
  if (status === 403) return detail ? `Not allowed: ${detail}.` : 'You are not allowed to do that.'
  if (status === 404) return 'That no longer exists, or it is not yours.'
  if (status === 409) return detail ? `${capital(detail)}.` : 'That cannot be done in its current state.'
  if (status === 410) return detail ? `${capital(detail)}.` : 'That link has expired.'
  if (status === 413) return 'That file is larger than this server accepts.'
  if (status === 422 && problem && problem.errors && problem.errors.length) {
    const first = problem.errors[0]
    const field = (first.loc || []).filter((part) => part !== 'body').join(' ')
    return `${field ? capital(field.replaceAll('_', ' ')) + ': ' : ''}${first.message}.`
  }
  if (status === 503) return 'The server is busy or one of its services is down. Try again in a moment.'
  if (detail) return `${capital(detail)}.`
  return `Something went wrong (HTTP ${status}).`
}

function capital(text) {
  const trimmed = String(text).replace(/[.\s]+$/, '')
  return trimmed.charAt(0).toUpperCase() + trimmed.slice(1)
}

export async function api(path, { method = 'GET', body } = {}) {
  const headers = { Accept: 'application/json' }
  const init = { method, headers, credentials: 'same-origin' }
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json'
    init.body = JSON.stringify(body)
  }
  if (method !== 'GET' && csrf) headers['X-CSRF-Token'] = csrf
  let response
  try {
    response = await fetch('/api/v1' + path, init)
  } catch {
    throw new ApiError(0)
  }
  if (response.status === 204) return null
  const data = await response.json().catch(() => null)
  if (!response.ok) {
    if (response.status === 401) window.dispatchEvent(new CustomEvent('fluxstudio:signed-out'))
    throw new ApiError(response.status, data)
  }
  return data
}

// A streamed upload with progress (fetch cannot report upload progress; XHR can). The body is the file
// itself, sent as it is read from disk; the server starts a transcode when it has it all.
export function upload(projectId, file, onProgress) {
  const xhr = new XMLHttpRequest()
  const query = new URLSearchParams({ filename: file.name, transcode: 'true' })
  const done = new Promise((resolve, reject) => {
    xhr.upload.onprogress = (event) => {
      if (event.lengthComputable) onProgress(event.loaded, event.total)
    }
    xhr.onload = () => {
      let data = null
      try {
        data = JSON.parse(xhr.responseText)
      } catch {}
      if (xhr.status >= 200 && xhr.status < 300) resolve(data)
      else reject(new ApiError(xhr.status, data))
    }
    xhr.onerror = () => reject(new ApiError(0))
    xhr.onabort = () => reject(Object.assign(new Error('Upload cancelled.'), { cancelled: true }))
  })
  xhr.open('POST', `/api/v1/projects/${encodeURIComponent(projectId)}/assets?${query}`)
  xhr.setRequestHeader('Content-Type', file.type || 'application/octet-stream')
  if (csrf) xhr.setRequestHeader('X-CSRF-Token', csrf)
  xhr.send(file)
  return { done, cancel: () => xhr.abort() }
}

// Server-Sent Events with JSON data: `follow(path, {name: handler})`; returns a function that closes it.
// EventSource reconnects by itself; `onState` hears 'live' and 'reconnecting'.
export function follow(path, handlers, onState = () => {}) {
  const source = new EventSource('/api/v1' + path, { withCredentials: true })
  for (const [name, handler] of Object.entries(handlers)) {
    source.addEventListener(name, (event) => {
      let data
      try {
        data = JSON.parse(event.data)
      } catch {
        return
      }
      handler(data)
    })
  }
  source.onopen = () => onState('live')
  source.onerror = () => onState(source.readyState === EventSource.CLOSED ? 'closed' : 'reconnecting')
  return () => source.close()
}
