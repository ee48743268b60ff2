// The asset view: the player, comments at moments and ranges with replies and drawings, and presence.
import { useEffect, useMemo, useRef, useState } from 'preact/hooks'
import { api, follow } from './api.js'
import { html, Link, ErrorNote, Progress, clock, colourOf, timecode, when, STATUS_WORDS } from './ui.js'
import { Player } from './player.js'
import { Overlay, TOOLS, COLOURS } from './draw.js'
import { joinPresence } from './presence.js'

function byTime(a, b) {
  return a.time_s - b.time_s || a.created_at.localeCompare(b.created_at)
}

export function AssetView({ assetId, session }) {
  const [asset, setAsset] = useState(null)
  const [comments, setComments] = useState([])
  const [error, setError] = useState(null)
  const [progress, setProgress] = useState(null)
  const [time, setTime] = useState(0)
  const [peers, setPeers] = useState([])
  const [drawing, setDrawing] = useState(false)
  const [shapes, setShapes] = useState([])
  const [tool, setTool] = useState('arrow')
  const [colour, setColour] = useState(COLOURS[0])
  const [selected, setSelected] = useState(null)
  const [projectName, setProjectName] = useState(null)
  const videoRef = useRef(null)
  const presence = useRef(null)
  const me = useMemo(() => {
    const name = session.user.email.split('@')[0]
    return { id: session.user.id, name, colour: colourOf(session.user.id) }
  }, [session.user.id])

  const applyComment = ({ op, comment }) => {
    setComments((now) => {
      if (op === 'deleted') return now.filter((c) => c.id !== comment.id && c.parent_id !== comment.id)
      const rest = now.filter((c) => c.id !== comment.id)
      return [...rest, comment].sort(byTime)
    })
  }

  useEffect(() => {
    let closed = false
    let close = () => {}
    ;(async () => {
      try {
        // Listen first, then list: a comment made in between arrives as an event and replaces itself.
        close = follow(`/assets/${assetId}/events`, {
          asset: (fresh) => setAsset(fresh),
          comment: applyComment,
          progress: (event) => setProgress(event),
        })
        const [found, listed] = await Promise.all([api(`/assets/${assetId}`), api(`/assets/${assetId}/comments`)])
        if (closed) return
        setAsset((now) => now || found)
        api(`/projects/${found.project_id}`).then((p) => setProjectName(p.name)).catch(() => {})
        setComments((now) => {
          const ids = new Set(now.map((c) => c.id))
          return [...now, ...listed.items.filter((c) => !ids.has(c.id))].sort(byTime)
        })
      } catch (failure) {
        setError(failure)
      }
    })()
    return () => {
      closed = true
      close()
    }
  }, [assetId])

  useEffect(() => {
    let left = false
    joinPresence(assetId, me, setPeers)
      .then((room) => {
        if (left) return room.leave()
        presence.current = room
        room.playhead(videoRef.current ? videoRef.current.currentTime : 0, false, true)
      })
      .catch(() => setPeers([]))
    return () => {
      left = true
      if (presence.current) presence.current.leave()
      presence.current = null
    }
  }, [assetId])

  useEffect(() => {
    if (presence.current) presence.current.playhead(time, videoRef.current && !videoRef.current.paused)
  }, [time])

  // A signed asset has no public URLs (API.md §7): the owner gets short-lived ones for this view.
  const [signed, setSigned] = useState(null)
  const needsToken = Boolean(asset && asset.playback_policy === 'signed' && (asset.playable || asset.status === 'ready'))
  useEffect(() => {
    setSigned(null)
    if (!needsToken) return
    let gone = false
    api(`/assets/${assetId}/playback-tokens`, { method: 'POST', body: { ttl_s: 4 * 3600 } })
      .then((urls) => { if (!gone) setSigned(urls) })
      .catch(setError)
    return () => { gone = true }
  }, [assetId, needsToken])

  if (!asset) {
    return html`<section class="page"><${ErrorNote} error=${error} />${!error && html`<p class="muted">Loading…</p>`}</section>`
  }
  const viewed = signed ? { ...asset, ...signed } : asset
  const fps = (asset.media && asset.media.fps) || 30
  const duration = (asset.media && asset.media.duration_s) || 0
  const top = comments.filter((c) => !c.parent_id)
  const markers = top.map((c) => ({ ...c, colour: colourOf(c.author.id) }))
  const seekTo = (comment) => {
    const video = videoRef.current
    setSelected(comment.id)
    if (!video) return
    video.pause()
    video.currentTime = comment.time_s
    setTime(comment.time_s)
  }

  const half = 0.5 / fps
  const shown = drawing ? shapes : comments
    .filter((c) => c.annotation && (c.id === selected || !c.resolved))
    .filter((c) => time >= c.time_s - half && time <= c.time_s + (c.duration_s || 1))
    .flatMap((c) => c.annotation.shapes)

  const startDrawing = () => {
    if (videoRef.current) videoRef.current.pause()
    setDrawing(true)
  }

  return html`<section class="review" aria-labelledby="asset-title">
    <div class="review-main">
      <div class="page-head slim">
        <div>
          <nav class="crumbs" aria-label="Breadcrumb"><${Link} href="/">Projects<//><span class="sep" aria-hidden="true">/</span
            ><${Link} href=${`/projects/${asset.project_id}`}>${projectName || 'Project'}<//></nav>
          <h1 id="asset-title">${asset.filename}</h1>
        </div>
        <${Presence} peers=${peers} fps=${fps} me=${me} />
      </div>
      <${ErrorNote} error=${error} onDismiss=${() => setError(null)} />
      ${viewed.playback_url
        ? html`<${Player} asset=${viewed} fps=${fps} videoRef=${videoRef} time=${time} setTime=${setTime}
            markers=${markers} peers=${peers} onSeekMarker=${seekTo}>
            <${Overlay} video=${videoRef.current} shapes=${shown} editable=${drawing} tool=${tool} colour=${colour}
              onShape=${(shape) => setShapes((now) => [...now, shape])} />
          <//>`
        : html`<${NotReady} asset=${asset} progress=${progress} onError=${setError} />`}
      ${viewed.playback_url && html`<p class="keys small muted" aria-label="Keyboard shortcuts">
        <kbd>Space</kbd> play/pause · <kbd>J</kbd> <kbd>K</kbd> <kbd>L</kbd> back, stop, faster ·
        <kbd>←</kbd> <kbd>→</kbd> 1 s (<kbd>Shift</kbd> 10 s) · <kbd>,</kbd> <kbd>.</kbd> one frame</p>`}
    </div>
    <aside class="panel" aria-label="Comments">
      <${Composer} assetId=${assetId} fps=${fps} duration=${duration} videoRef=${videoRef} time=${time}
        drawing=${drawing} shapes=${shapes} tool=${tool} colour=${colour} onTool=${setTool} onColour=${setColour}
        onDraw=${startDrawing} onStopDrawing=${() => setDrawing(false)} onUndo=${() => setShapes((s) => s.slice(0, -1))}
        onPosted=${(comment) => { applyComment({ op: 'created', comment }); setShapes([]); setDrawing(false); setSelected(comment.id) }}
        ready=${Boolean(viewed.playback_url)} />
      <${CommentList} comments=${comments} fps=${fps} me=${me} selected=${selected} onSeek=${seekTo}
        onChange=${applyComment} onError=${setError} time=${time} />
    </aside>
  </section>`
}

function Presence({ peers, fps, me }) {
  const others = peers.filter((p) => p.user)
  return html`<div class="presence" aria-live="polite">
    <span class="avatar" style=${{ '--who': me.colour }} title=${`${me.name} (you)`}>${me.name.slice(0, 1).toUpperCase()}</span>
    ${others.map((p) => html`<span key=${p.clientId} class="avatar peer" style=${{ '--who': p.user.colour }}
      title=${`${p.user.name}${p.playhead ? ' at ' + timecode(p.playhead.t, fps) : ''}`}>${(p.user.name || '?').slice(0, 1).toUpperCase()}</span>`)}
    <span class="small muted">${others.length === 0 ? 'Only you are here'
      : others.map((p) => `${p.user.name}${p.user.id === me.id ? ' (another window)' : ''}${p.playhead ? ' · ' + timecode(p.playhead.t, fps) : ''}`).join(', ')}</span>
  </div>`
}

function NotReady({ asset, progress, onError }) {
  const transcode = async () => {
    try {
      await api(`/assets/${asset.id}/jobs`, { method: 'POST', body: {} })
    } catch (failure) {
      onError(failure)
    }
  }
  return html`<div class="stage waiting" role="status">
    ${asset.status === 'processing' && html`<div>
      <p><strong>Transcoding for streaming…</strong></p>
      <${Progress} value=${progress ? progress.progress : 0} label="Transcode progress" />
      <p class="small">${progress ? `${Math.round(progress.progress * 100)}%` : 'Starting'}${
        progress && progress.fps ? ` · ${Math.round(progress.fps)} fps` : ''}${progress && progress.speed ? ` · ${progress.speed.toFixed(1)}×` : ''}${
        progress && progress.eta_s != null ? ` · ${clock(progress.eta_s)} left` : ''}</p>
    </div>`}
    ${asset.status === 'uploaded' && html`<div><p>This file has not been transcoded yet.</p>
      <button type="button" class="primary" onClick=${transcode}>Transcode it</button></div>`}
    ${asset.status === 'failed' && html`<div><p><strong>The transcode failed.</strong></p>
      <p class="muted">${(asset.error && asset.error.message) || 'See the job for details.'}</p>
      <button type="button" onClick=${transcode}>Try again</button></div>`}
  </div>`
}

function Composer({ assetId, fps, duration, videoRef, time, drawing, shapes, tool, colour, onTool, onColour, onDraw,
  onStopDrawing, onUndo, onPosted, ready }) {
  const [text, setText] = useState('')
  const [at, setAt] = useState(null)
  const [end, setEnd] = useState(null)
  const [busy, setBusy] = useState(false)
  const [error, setError] = useState(null)
  const start = at == null ? time : at

  const capture = () => {
    if (videoRef.current) videoRef.current.pause()
    if (at == null) setAt(videoRef.current ? videoRef.current.currentTime : 0)
  }
  const submit = async (event) => {
    event.preventDefault()
    if (!text.trim()) return setError('Write something first.')
    setBusy(true)
    setError(null)
    const body = { time_s: Math.min(start, duration || start), text: text.trim() }
    if (end != null && end > body.time_s) body.duration_s = Math.round((end - body.time_s) * 1000) / 1000
    if (shapes.length) body.annotation = { shapes }
    try {
      const comment = await api(`/assets/${assetId}/comments`, { method: 'POST', body })
      setText('')
      setAt(null)
      setEnd(null)
      onPosted(comment)
    } catch (failure) {
      setError(failure)
    } finally {
      setBusy(false)
    }
  }
  const onKey = (event) => {
    if (event.key === 'Enter' && (event.metaKey || event.ctrlKey)) submit(event)
    if (event.key === 'Escape') event.currentTarget.blur()
  }

  return html`<form class="composer" onSubmit=${submit} aria-label="New comment">
    <label for="comment-text">Comment at <span class="tc">${timecode(start, fps)}</span>${end != null && end > start
      ? html` to <span class="tc">${timecode(end, fps)}</span>` : ''}</label>
    <textarea id="comment-text" rows="3" maxlength="10000" placeholder="What do you see at this moment?"
      value=${text} onFocus=${capture} onInput=${(e) => setText(e.currentTarget.value)} onKeyDown=${onKey}
      disabled=${!ready}></textarea>
    <${ErrorNote} error=${error} onDismiss=${() => setError(null)} />
    <div class="composer-tools">
      <button type="button" class="quiet" disabled=${!ready} onClick=${() => { setAt(videoRef.current.currentTime); setEnd(null) }}
        title="Use the playhead as the comment's time">Set in</button>
      <button type="button" class="quiet" disabled=${!ready} onClick=${() => { if (at == null) setAt(start); setEnd(videoRef.current.currentTime) }}
        title="Make it a range that ends at the playhead">Set out</button>
      <button type="button" class=${'quiet' + (drawing ? ' on' : '')} aria-pressed=${drawing} disabled=${!ready}
        onClick=${() => (drawing ? onStopDrawing() : onDraw())}>${drawing ? 'Done drawing' : 'Draw'}</button>
      <span class="spacer"></span>
      <button type="submit" class="primary" disabled=${busy || !ready}>${busy ? 'Posting…' : 'Comment'}</button>
    </div>
    ${drawing && html`<div class="draw-tools" role="toolbar" aria-label="Drawing tools">
      ${TOOLS.map((t) => html`<button type="button" class=${'quiet' + (tool === t.type ? ' on' : '')} aria-pressed=${tool === t.type}
        onClick=${() => onTool(t.type)}>${t.label}</button>`)}
      ${COLOURS.map((c) => html`<button type="button" class=${'swatch' + (colour === c ? ' on' : '')} aria-pressed=${colour === c}
        style=${{ '--swatch': c }} aria-label=${`Colour ${c}`} onClick=${() => onColour(c)}></button>`)}
      <button type="button" class="quiet" onClick=${onUndo} disabled=${!shapes.length}>Undo</button>
      <span class="small muted">${shapes.length} shape${shapes.length === 1 ? '' : 's'}: drag on the paused frame</span>
    </div>`}
  </form>`
}

function CommentList({ comments, fps, me, selected, onSeek, onChange, onError, time }) {
  const [showResolved, setShowResolved] = useState(true)
  const top = comments.filter((c) => !c.parent_id && (showResolved || !c.resolved))
  const replies = (id) => comments.filter((c) => c.parent_id === id)
  return html`<section class="comments" aria-labelledby="comments-title">
    <div class="comments-head">
      <h2 id="comments-title">Comments <span class="count">${comments.length}</span></h2>
      <label class="small"><input type="checkbox" checked=${showResolved}
        onChange=${(e) => setShowResolved(e.currentTarget.checked)} /> Show resolved</label>
    </div>
    ${top.length === 0 && html`<p class="muted small pad">No comments yet. Pause at a frame and say what you see.</p>`}
    <ol class="thread-list">
      ${top.map((c) => html`<li key=${c.id}>
        <${CommentItem} comment=${c} fps=${fps} me=${me} selected=${selected === c.id}
          current=${time >= c.time_s - 0.5 / fps && time <= c.time_s + (c.duration_s || 0.5 / fps)}
          onSeek=${onSeek} onChange=${onChange} onError=${onError} replies=${replies(c.id)} />
      </li>`)}
    </ol>
  </section>`
}

function CommentItem({ comment, fps, me, selected, current, onSeek, onChange, onError, replies }) {
  const [replying, setReplying] = useState(false)
  const [reply, setReply] = useState('')
  const act = async (call) => {
    try {
      const result = await call()
      if (result) onChange({ op: 'updated', comment: result })
    } catch (failure) {
      onError(failure)
    }
  }
  const send = async (event) => {
    event.preventDefault()
    if (!reply.trim()) return
    await act(async () => {
      const made = await api(`/assets/${comment.asset_id}/comments`, {
        method: 'POST', body: { time_s: comment.time_s, text: reply.trim(), parent_id: comment.id },
      })
      setReply('')
      setReplying(false)
      onChange({ op: 'created', comment: made })
    })
  }
  const remove = () => act(async () => {
    await api(`/comments/${comment.id}`, { method: 'DELETE' })
    onChange({ op: 'deleted', comment: { id: comment.id, asset_id: comment.asset_id } })
  })
  const mine = (c) => c.author.kind === 'user' && c.author.id === me.id
  return html`<article class=${'comment' + (comment.resolved ? ' resolved' : '') + (selected ? ' selected' : '') + (current ? ' current' : '')}
      data-comment-id=${comment.id}>
    <${Byline} comment=${comment} fps=${fps} onSeek=${onSeek} />
    <p class="text">${comment.text}</p>
    ${comment.annotation && html`<p class="small muted">✎ Drawing, ${comment.annotation.shapes.length} shape${comment.annotation.shapes.length === 1 ? '' : 's'}</p>`}
    <div class="actions">
      <button type="button" class="quiet" onClick=${() => setReplying(!replying)} aria-expanded=${replying}>Reply</button>
      <button type="button" class="quiet" onClick=${() => act(() => api(`/comments/${comment.id}`, { method: 'PATCH', body: { resolved: !comment.resolved } }))}>
        ${comment.resolved ? 'Reopen' : 'Resolve'}</button>
      ${mine(comment) && html`<button type="button" class="quiet danger" onClick=${remove}>Delete</button>`}
    </div>
    ${replies.length > 0 && html`<ol class="replies">${replies.map((r) => html`<li key=${r.id} class="reply" data-comment-id=${r.id}>
      <${Byline} comment=${r} fps=${fps} />
      <p class="text">${r.text}</p>
      ${mine(r) && html`<button type="button" class="quiet danger small" onClick=${() => act(async () => {
        await api(`/comments/${r.id}`, { method: 'DELETE' })
        onChange({ op: 'deleted', comment: { id: r.id, asset_id: r.asset_id } })
      })}>Delete</button>`}
    </li>`)}</ol>`}
    ${replying && html`<form class="reply-form" onSubmit=${send}>
      <label class="visually-hidden" for=${`reply-${comment.id}`}>Reply to ${comment.author.name}</label>
      <textarea id=${`reply-${comment.id}`} rows="2" value=${reply} placeholder="Reply…" maxlength="10000"
        onInput=${(e) => setReply(e.currentTarget.value)} autofocus></textarea>
      <button type="submit" class="primary small">Reply</button>
    </form>`}
  </article>`
}

function Byline({ comment, fps, onSeek }) {
  const agent = comment.author.kind === 'agent'
  return html`<header class="byline">
    <span class="avatar small" style=${{ '--who': colourOf(comment.author.id) }} aria-hidden="true">${agent ? '✦' : comment.author.name.slice(0, 1).toUpperCase()}</span>
    <strong>${comment.author.name}</strong>
    ${agent && html`<span class="badge agent">agent</span>`}
    ${onSeek
      ? html`<button type="button" class="tc link" onClick=${() => onSeek(comment)}
          aria-label=${`Go to ${timecode(comment.time_s, fps)}`}>${timecode(comment.time_s, fps)}${comment.duration_s
            ? ` – ${timecode(comment.time_s + comment.duration_s, fps)}` : ''}</button>`
      : null}
    <time class="small muted" datetime=${comment.created_at}>${when(comment.created_at)}</time>
  </header>`
}
