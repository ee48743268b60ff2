// One project: its assets as a grid of posters with live transcode progress, and drag-and-drop upload.
import { useEffect, useRef, useState } from 'preact/hooks'
import { api, follow, upload } from './api.js'
import { html, Link, ErrorNote, Progress, bytes, clock, STATUS_WORDS } from './ui.js'

// Browsers open at most six connections per origin over HTTP/1.1: uploads and event streams share them.
const LIVE_STREAMS = 3
const REFRESH_MS = 2000

export function ProjectView({ projectId }) {
  const [project, setProject] = useState(null)
  const [assets, setAssets] = useState(null)
  const [jobs, setJobs] = useState({}) // asset id -> unfinished job
  const [live, setLive] = useState({}) // job id -> last progress event
  const [uploads, setUploads] = useState([])
  const [error, setError] = useState(null)
  const [dragging, setDragging] = useState(false)
  const picker = useRef(null)

  const refresh = async () => {
    try {
      const [list, running, queued] = await Promise.all([
        api(`/projects/${projectId}/assets`),
        api('/jobs?status=running'),
        api('/jobs?status=queued'),
      ])
      const byAsset = {}
      for (const job of [...queued.items, ...running.items]) byAsset[job.asset_id] = job
      setAssets(list.items.slice().reverse())
      setJobs(byAsset)
    } catch (failure) {
      setError(failure)
    }
  }

  useEffect(() => {
    api(`/projects/${projectId}`).then(setProject).catch(setError)
    refresh()
  }, [projectId])

  const busy = uploads.some((u) => u.state === 'uploading') || Object.keys(jobs).length > 0 ||
    (assets || []).some((a) => a.status === 'processing')
  useEffect(() => {
    if (!busy) return
    const timer = setInterval(refresh, REFRESH_MS)
    return () => clearInterval(timer)
  }, [busy, projectId])

  // Live fps, speed and ETA for the first few running jobs.
  const runningIds = Object.values(jobs).filter((j) => j.status === 'running').map((j) => j.id).slice(0, LIVE_STREAMS)
  useEffect(() => {
    const closers = runningIds.map((id) => follow(`/jobs/${id}/events`, {
      progress: (event) => setLive((now) => ({ ...now, [id]: event })),
      end: () => refresh(),
      status: () => refresh(),
    }))
    return () => closers.forEach((close) => close())
  }, [runningIds.join(',')])

  const addFiles = (files) => {
    const chosen = Array.from(files || []).filter((file) => file.size > 0)
    if (!chosen.length) return setError('Those files are empty or could not be read.')
    for (const file of chosen) {
      const key = `${file.name}-${file.size}-${Math.random().toString(36).slice(2)}`
      const entry = { key, name: file.name, size: file.size, sent: 0, state: 'uploading', error: null }
      const task = upload(projectId, file, (sent) => update(key, { sent }))
      entry.cancel = task.cancel
      setUploads((now) => [...now, entry])
      task.done
        .then(() => {
          update(key, { state: 'done', sent: file.size })
          refresh()
          setTimeout(() => setUploads((now) => now.filter((u) => u.key !== key)), 4000)
        })
        .catch((failure) => update(key, { state: failure.cancelled ? 'cancelled' : 'failed', error: failure.message }))
    }
  }
  const update = (key, change) => setUploads((now) => now.map((u) => (u.key === key ? { ...u, ...change } : u)))

  const cancelJob = async (job) => {
    try {
      await api(`/jobs/${job.id}/cancel`, { method: 'POST' })
      refresh()
    } catch (failure) {
      setError(failure)
    }
  }

  const onDrop = (event) => {
    event.preventDefault()
    setDragging(false)
    addFiles(event.dataTransfer.files)
  }

  return html`<section class="page" aria-labelledby="project-title"
      onDragOver=${(e) => { e.preventDefault(); setDragging(true) }}
      onDragLeave=${(e) => { if (e.currentTarget === e.target) setDragging(false) }}
      onDrop=${onDrop}>
    <div class="page-head">
      <div>
        <nav class="crumbs" aria-label="Breadcrumb"><${Link} href="/">Projects<//><span class="sep" aria-hidden="true">/</span></nav>
        <h1 id="project-title">${project ? project.name : 'Project'}</h1>
      </div>
      <div>
        <input ref=${picker} id="files" type="file" multiple accept="video/*,audio/*" class="visually-hidden"
          onChange=${(e) => { addFiles(e.currentTarget.files); e.currentTarget.value = '' }} />
        <span class="small muted drop-note">or drop files anywhere here</span>
        <button type="button" class="primary" onClick=${() => picker.current.click()}>Upload files</button>
      </div>
    </div>
    <${ErrorNote} error=${error} onDismiss=${() => setError(null)} />
    <div class=${'dropzone' + (dragging ? ' active' : '')} aria-hidden=${!dragging}>
      <p>Drop video or audio files anywhere here to upload and transcode them.</p>
    </div>
    ${uploads.length > 0 && html`<ul class="uploads" aria-label="Uploads">
      ${uploads.map((u) => html`<li key=${u.key} class=${'upload ' + u.state}>
        <span class="upload-name" title=${u.name}>${u.name}</span>
        <${Progress} value=${u.size ? u.sent / u.size : 0} label=${`Upload of ${u.name}`} />
        <span class="small muted">${u.state === 'uploading' ? `${bytes(u.sent)} of ${bytes(u.size)}`
          : u.state === 'done' ? 'Uploaded' : u.state === 'cancelled' ? 'Cancelled' : u.error}</span>
        ${u.state === 'uploading' && html`<button type="button" class="quiet" onClick=${u.cancel}
          aria-label=${`Cancel the upload of ${u.name}`}>Cancel</button>`}
      </li>`)}
    </ul>`}
    ${assets === null && !error && html`<p class="muted">Loading assets…</p>`}
    ${assets && assets.length === 0 && uploads.length === 0 && html`<div class="empty drop-hint">
      <p><strong>No media yet.</strong></p>
      <p class="muted">Drag video files here, or use <em>Upload files</em>. Each is transcoded for streaming as it arrives.</p>
    </div>`}
    ${assets && assets.length > 0 && html`<ul class="grid" aria-label="Assets">
      ${assets.map((asset) => html`<li key=${asset.id}>
        <${AssetCard} asset=${asset} job=${jobs[asset.id]} live=${jobs[asset.id] && live[jobs[asset.id].id]}
          onCancel=${cancelJob} />
      </li>`)}
    </ul>`}
  </section>`
}

function AssetCard({ asset, job, live, onCancel }) {
  const status = job && job.status === 'queued' ? 'queued' : asset.status
  const progress = live ? live.progress : job ? job.progress : 0
  const media = asset.media || {}
  const still = asset.poster_url || frameOf(asset)
  return html`<article class="asset-card">
    <${Link} href=${`/assets/${asset.id}`} class="poster-link" aria-label=${`Open ${asset.filename}`}>
      ${still
        ? html`<img class="poster" src=${still} alt="" loading="lazy" />`
        : html`<div class="poster placeholder" aria-hidden="true"><span>${(asset.filename || '?').slice(0, 1).toUpperCase()}</span></div>`}
      ${media.duration_s != null && html`<span class="duration">${clock(media.duration_s)}</span>`}
    <//>
    <div class="asset-meta">
      <h2 class="asset-name" title=${asset.filename}>${asset.filename}</h2>
      <span class=${'badge ' + status}>${status === 'queued' ? 'Queued' : STATUS_WORDS[status] || status}</span>
    </div>
    <p class="small muted">${[media.width && `${media.width}×${media.height}`, media.fps && `${Math.round(media.fps)} fps`,
      bytes(asset.size_bytes)].filter(Boolean).join(' · ')}</p>
    ${job && html`<div class="job">
      <${Progress} value=${progress} label=${`Transcoding ${asset.filename}`} />
      <span class="small">${Math.round(progress * 100)}%${live && live.fps ? ` · ${Math.round(live.fps)} fps` : ''}${
        live && live.speed ? ` · ${live.speed.toFixed(1)}×` : ''}${live && live.eta_s != null ? ` · ${clock(live.eta_s)} left` : ''}</span>
      <button type="button" class="quiet danger" onClick=${() => onCancel(job)}
        aria-label=${`Cancel the transcode of ${asset.filename}`}>Cancel</button>
    </div>`}
  </article>`
}

// Until the transcode writes its poster, or when the asset is signed (no public poster, API.md §7), a frame
// from the API stands in: it is served as soon as the file is uploaded, to the session cookie.
function frameOf(asset) {
  const media = asset.media || {}
  if (!media.width || !media.duration_s || asset.status === 'failed') return null
  const at = Math.min(1, media.duration_s / 2).toFixed(3)
  return `/api/v1/assets/${encodeURIComponent(asset.id)}/thumbnail?time=${at}&width=480`
}
