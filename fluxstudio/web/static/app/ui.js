// Shared view pieces: the html tag, formatting, small components.
import { h } from 'preact'
import htm from 'htm'

export const html = htm.bind(h)

export function navigate(path) {
  if (location.pathname + location.search !== path) history.pushState({}, '', path)
  window.dispatchEvent(new Event('fluxstudio:navigate'))
}

// A link that routes in the page (still a real link: middle-click, copy address, keyboard all work).
export function Link({ href, children, ...rest }) {
  const onClick = (event) => {
    if (event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return
    event.preventDefault()
    navigate(href)
  }
  return html`<a href=${href} onClick=${onClick} ...${rest}>${children}</a>`
}

export function ErrorNote({ error, onDismiss }) {
  if (!error) return null
  const text = typeof error === 'string' ? error : error.message
  return html`<div class="error" role="alert">
    <span>${text}</span>
    ${onDismiss && html`<button type="button" class="quiet" onClick=${onDismiss} aria-label="Dismiss this message">×</button>`}
  </div>`
}

export function Progress({ value, label }) {
  const percent = Math.max(0, Math.min(100, Math.round((value || 0) * 100)))
  return html`<div class="bar" role="progressbar" aria-label=${label} aria-valuemin="0" aria-valuemax="100"
    aria-valuenow=${percent}><span style=${{ width: percent + '%' }}></span></div>`
}

export function bytes(n) {
  if (n == null) return ''
  const units = ['B', 'KB', 'MB', 'GB', 'TB']
  let i = 0
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000
    i++
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`
}

export function clock(seconds) {
  if (seconds == null || !isFinite(seconds)) return '–:––'
  const s = Math.max(0, Math.round(seconds))
  const hours = Math.floor(s / 3600)
  const minutes = Math.floor((s % 3600) / 60)
  const rest = String(s % 60).padStart(2, '0')
  return hours ? `${hours}:${String(minutes).padStart(2, '0')}:${rest}` : `${minutes}:${rest}`
}

// SMPTE-style timecode HH:MM:SS:FF (non-drop-frame) at the asset's frame rate.
export function timecode(seconds, fps) {
  const rate = Math.round(fps || 30)
  const frames = Math.max(0, Math.floor((seconds || 0) * rate + 1e-6))
  const ff = frames % rate
  const total = Math.floor(frames / rate)
  const pad = (n) => String(n).padStart(2, '0')
  return `${pad(Math.floor(total / 3600))}:${pad(Math.floor((total % 3600) / 60))}:${pad(total % 60)}:${pad(ff)}`
}

export function when(iso) {
  const date = new Date(iso)
  const seconds = (Date.now() - date.getTime()) / 1000
  if (seconds < 45) return 'just now'
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`
  return date.toLocaleDateString(undefined, { year: 'numeric', month: 'short', day: 'numeric' })
}

export const STATUS_WORDS = {
  uploaded: 'Uploaded',
  processing: 'Transcoding',
  ready: 'Ready',
  failed: 'Failed',
}

// A colour per person, stable across sessions (for presence and avatars).
export function colourOf(text) {
  let hash = 0
  for (const c of String(text)) hash = (hash * 31 + c.charCodeAt(0)) | 0
  return `hsl(${Math.abs(hash) % 360} 70% 45%)`
}

// Keys that must not act while someone is typing.
export function typing(event) {
  const target = event.target
  if (!target || !target.closest) return false
  return Boolean(target.closest('input, textarea, select, [contenteditable=""], [contenteditable="true"]'))
}
