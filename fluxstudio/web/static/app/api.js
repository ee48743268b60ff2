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

// A resumable upload (tus 1.0 at /api/v1/tus, API.md §9) with progress. tus-js-client is loaded on the
// first upload only, so it costs the first page nothing. The console has no bearer token: the session
// cookie authenticates, and the CSRF token goes on every request (the server checks it on POST, PATCH and
// DELETE). A broken connection is retried from the server's offset; an upload cut by a closed tab resumes
// from where it stopped when the same file is dropped on the same project again.
export function upload(projectId, file, onProgress) {
  let task = null
  let cancelled = false
  let fail = () => {}
  const done = new Promise((resolve, reject) => {
    fail = reject
    import('tus-js-client').then(async ({ Upload }) => {
      if (cancelled) return
      task = new Upload(file, {
        endpoint: '/api/v1/tus',
        metadata: { project_id: projectId, filename: file.name, filetype: file.type || 'application/octet-stream',
          transcode: 'true' },
        headers: csrf ? { 'X-CSRF-Token': csrf } : {},
        withCredentials: true,
        // The same file into another project is another upload.
        fingerprint: async (source) => ['tus', projectId, source.name, source.type, source.size, source.lastModified].join('::'),
        removeFingerprintOnSuccess: true,
        retryDelays: [0, 1000, 3000, 5000],
        onProgress: (sent, total) => onProgress(sent, total),
        onSuccess: ({ lastResponse }) => resolve({ asset_id: lastResponse.getHeader('Asset-Id'),
          job_id: lastResponse.getHeader('Job-Id') }),
        onError: (error) => {
          const response = error.originalResponse
          if (!response) return reject(new ApiError(0))
          let problem = null
          try {
            problem = JSON.parse(response.getBody())
          } catch {}
          if (response.getStatus() === 401) window.dispatchEvent(new CustomEvent('fluxstudio:signed-out'))
          reject(new ApiError(response.getStatus(), problem))
        },
      })
      const previous = await task.findPreviousUploads()
      if (previous.length) task.resumeFromPreviousUpload(previous[0])
      if (!cancelled) task.start()
    }).catch(() => reject(new ApiError(0)))
  })
  const cancel = () => {
    cancelled = true
    // Terminate on the server too (DELETE), so the parts stored so far are freed at once.
    if (task) task.abort(true).catch(() => {})
    fail(Object.assign(new Error('Upload cancelled.'), { cancelled: true }))
  }
  return { done, cancel }
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
