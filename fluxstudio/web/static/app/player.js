// The player: hls.js on a <video>, a quality menu, a timeline with comment markers, other viewers'
// playheads and storyboard previews, the timecode, and the review keys.
import { useEffect, useRef, useState } from 'preact/hooks'
import { html, timecode, typing } from './ui.js'

const RATES = [1, 2, 4]

// Storyboard: a WebVTT file whose cues name a sprite and a tile, `sprite.jpg#xywh=x,y,w,h`.
export function parseStoryboard(text, base) {
  const seconds = (stamp) => stamp.split(':').reduce((total, part) => total * 60 + parseFloat(part), 0)
  const cues = []
  for (const block of text.replace(/\r/g, '').split(/\n{2,}/)) {
    const lines = block.split('\n').map((line) => line.trim()).filter(Boolean)
    const timing = lines.findIndex((line) => line.includes('-->'))
    if (timing < 0 || !lines[timing + 1]) continue
    const [start, end] = lines[timing].split('-->').map((part) => seconds(part.trim().split(/\s+/)[0]))
    const [file, fragment = ''] = lines[timing + 1].split('#')
    const match = fragment.match(/xywh=(\d+),(\d+),(\d+),(\d+)/)
    if (!match) continue
    const [x, y, w, h] = match.slice(1).map(Number)
    cues.push({ start, end, url: new URL(file, base).href, x, y, w, h })
  }
  return cues
}

export function Player({ asset, fps, videoRef, time, setTime, markers, peers, onSeekMarker, children }) {
  const [levels, setLevels] = useState([])
  const [level, setLevel] = useState(-1)
  const [autoHeight, setAutoHeight] = useState(null)
  const [playing, setPlaying] = useState(false)
  const [rate, setRate] = useState(1)
  const [duration, setDuration] = useState(asset.media && asset.media.duration_s || 0)
  const [problem, setProblem] = useState(null)
  const [board, setBoard] = useState([])
  const [hover, setHover] = useState(null)
  // The poster is a representative frame from the middle, not frame 0: shown only until the first frame
  // arrives, so the picture always matches the timecode a comment will be made at.
  const [framed, setFramed] = useState(false)
  const hls = useRef(null)
  const video = videoRef.current
  const frame = 1 / (fps || 30)

  // Attach the stream (hls.js where MSE exists; Safari plays HLS natively).
  useEffect(() => {
    const element = videoRef.current
    if (!element || !asset.playback_url) return
    let cancelled = false
    import('hls.js').then(({ default: Hls }) => {
      if (cancelled) return
      if (Hls.isSupported()) {
        const player = new Hls({ capLevelToPlayerSize: false, backBufferLength: 60 })
        hls.current = player
        player.on(Hls.Events.MANIFEST_PARSED, () => setLevels(player.levels.map((l, i) => ({ index: i, height: l.height, bitrate: l.bitrate }))))
        player.on(Hls.Events.LEVEL_SWITCHED, (_, data) => setAutoHeight(player.levels[data.level] && player.levels[data.level].height))
        player.on(Hls.Events.ERROR, (_, data) => {
          if (!data.fatal) return
          if (data.type === Hls.ErrorTypes.NETWORK_ERROR) {
            setProblem('The stream stopped loading; retrying…')
            player.startLoad()
          } else if (data.type === Hls.ErrorTypes.MEDIA_ERROR) player.recoverMediaError()
          else setProblem('This stream cannot be played in this browser.')
        })
        player.on(Hls.Events.FRAG_LOADED, () => setProblem(null))
        player.loadSource(asset.playback_url)
        player.attachMedia(element)
      } else if (element.canPlayType('application/vnd.apple.mpegurl')) {
        element.src = asset.playback_url
      } else setProblem('This browser cannot play HLS video.')
    })
    return () => {
      cancelled = true
      if (hls.current) hls.current.destroy()
      hls.current = null
    }
  }, [asset.playback_url])

  useEffect(() => {
    if (!asset.storyboard_url) return
    fetch(asset.storyboard_url)
      .then((response) => (response.ok ? response.text() : ''))
      .then((text) => setBoard(parseStoryboard(text, asset.storyboard_url)))
      .catch(() => setBoard([]))
  }, [asset.storyboard_url])

  // The timecode follows every frame while playing, not only the 4 Hz `timeupdate`.
  useEffect(() => {
    const element = videoRef.current
    if (!element) return
    let raf = 0
    const tick = () => {
      setTime(element.currentTime)
      if (!element.paused) raf = requestAnimationFrame(tick)
    }
    const onPlay = () => { setPlaying(true); tick() }
    const onPause = () => { setPlaying(false); cancelAnimationFrame(raf); setTime(element.currentTime) }
    const onMeta = () => element.duration && isFinite(element.duration) && setDuration(element.duration)
    element.addEventListener('play', onPlay)
    element.addEventListener('pause', onPause)
    element.addEventListener('seeked', tick)
    element.addEventListener('timeupdate', tick)
    element.addEventListener('durationchange', onMeta)
    element.addEventListener('loadedmetadata', onMeta)
    return () => {
      cancelAnimationFrame(raf)
      for (const [name, fn] of [['play', onPlay], ['pause', onPause], ['seeked', tick], ['timeupdate', tick],
        ['durationchange', onMeta], ['loadedmetadata', onMeta]]) element.removeEventListener(name, fn)
    }
  }, [videoRef.current])

  const seek = (to) => {
    const element = videoRef.current
    if (!element) return
    element.currentTime = Math.max(0, Math.min(duration || element.duration || 0, to))
    setTime(element.currentTime)
  }
  const toggle = () => {
    const element = videoRef.current
    if (!element) return
    if (element.paused) element.play().catch(() => {})
    else element.pause()
  }
  const step = (frames) => {
    const element = videoRef.current
    if (!element) return
    element.pause()
    // Land inside the target frame, not on its edge, so rounding never shows the neighbour.
    const current = Math.floor(element.currentTime / frame + 1e-3)
    seek((current + frames) * frame + frame / 2)
  }

  // Review keys, never while typing in a field.
  useEffect(() => {
    const onKey = (event) => {
      if (typing(event) || event.metaKey || event.ctrlKey || event.altKey) return
      const element = videoRef.current
      if (!element) return
      const key = event.key
      if (key === ' ' || key === 'Spacebar') {
        if (event.target.closest && event.target.closest('button, a, select')) return // space presses those
        toggle()
      } else if (key === 'k' || key === 'K') {
        element.pause()
        element.playbackRate = 1
        setRate(1)
      } else if (key === 'l' || key === 'L') {
        const next = element.paused ? 1 : RATES[Math.min(RATES.indexOf(element.playbackRate) + 1, RATES.length - 1)] || 1
        element.playbackRate = next
        setRate(next)
        element.play().catch(() => {})
      } else if (key === 'j' || key === 'J') {
        element.pause() // browsers cannot play backwards smoothly: J steps back a second at a time
        seek(element.currentTime - 1)
      } else if (key === 'ArrowLeft') seek(element.currentTime - (event.shiftKey ? 10 : 1))
      else if (key === 'ArrowRight') seek(element.currentTime + (event.shiftKey ? 10 : 1))
      else if (key === ',') step(-1)
      else if (key === '.') step(1)
      else if (key === 'Home') seek(0)
      else if (key === 'End') seek(duration)
      else return
      event.preventDefault()
    }
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [duration, frame])

  const chooseLevel = (value) => {
    const index = Number(value)
    setLevel(index)
    if (hls.current) hls.current.currentLevel = index
  }

  const fraction = (t) => (duration ? Math.max(0, Math.min(1, t / duration)) : 0)
  const timeAt = (event) => {
    const bounds = event.currentTarget.getBoundingClientRect()
    return Math.max(0, Math.min(1, (event.clientX - bounds.left) / bounds.width)) * duration
  }
  const cue = hover != null ? board.find((c) => hover >= c.start && hover < c.end) : null

  return html`<div class="player">
    <div class="stage">
      <video ref=${videoRef} playsinline preload="auto" aria-label=${`Video: ${asset.filename}`}
        onClick=${toggle} onLoadedData=${() => setFramed(true)}
        poster=${(!framed && asset.poster_url) || undefined}></video>
      ${children}
      ${problem && html`<p class="stage-note" role="status">${problem}</p>`}
    </div>
    <div class="timeline" role="slider" tabindex="0" aria-label="Playhead" aria-valuemin="0"
      aria-valuemax=${Math.round(duration * 1000) / 1000} aria-valuenow=${Math.round(time * 1000) / 1000}
      aria-valuetext=${timecode(time, fps)}
      onPointerDown=${(e) => seek(timeAt(e))} onPointerMove=${(e) => setHover(timeAt(e))}
      onPointerLeave=${() => setHover(null)}>
      <div class="track"><span class="played" style=${{ width: fraction(time) * 100 + '%' }}></span></div>
      ${markers.map((m) => html`<button type="button" key=${m.id} class=${'marker' + (m.resolved ? ' resolved' : '')}
        style=${{ left: fraction(m.time_s) * 100 + '%', width: m.duration_s ? fraction(m.duration_s) * 100 + '%' : undefined,
          '--who': m.colour }}
        aria-label=${`Comment by ${m.author.name} at ${timecode(m.time_s, fps)}: ${m.text.slice(0, 80)}`}
        title=${`${m.author.name}: ${m.text.slice(0, 80)}`}
        onPointerDown=${(e) => e.stopPropagation()} onClick=${() => onSeekMarker(m)}></button>`)}
      ${peers.filter((p) => p.playhead).map((p) => html`<span key=${p.clientId} class="peer-head"
        style=${{ left: fraction(p.playhead.t) * 100 + '%', '--who': p.user.colour }} title=${`${p.user.name} is here`}></span>`)}
      <span class="head" style=${{ left: fraction(time) * 100 + '%' }}></span>
      ${hover != null && html`<div class="preview" style=${{ left: fraction(hover) * 100 + '%' }} aria-hidden="true">
        ${cue && html`<div class="thumb" style=${{ width: cue.w + 'px', height: cue.h + 'px',
          backgroundImage: `url("${cue.url}")`, backgroundPosition: `-${cue.x}px -${cue.y}px` }}></div>`}
        <span>${timecode(hover, fps)}</span>
      </div>`}
    </div>
    <div class="controls">
      <button type="button" class="icon" onClick=${toggle} aria-label=${playing ? 'Pause (space)' : 'Play (space)'}>
        <span class=${playing ? 'i-pause' : 'i-play'} aria-hidden="true"></span>
      </button>
      <button type="button" class="icon" onClick=${() => step(-1)} aria-label="Previous frame (,)"><span class="i-prev" aria-hidden="true"></span></button>
      <button type="button" class="icon" onClick=${() => step(1)} aria-label="Next frame (.)"><span class="i-next" aria-hidden="true"></span></button>
      <output class="timecode" aria-label="Timecode" data-seconds=${time.toFixed(3)}>${timecode(time, fps)}</output>
      <span class="muted small">/ ${timecode(duration, fps)}</span>
      ${rate !== 1 && html`<span class="badge">${rate}×</span>`}
      <span class="spacer"></span>
      <label class="small" for="quality">Quality</label>
      <select id="quality" value=${level} onChange=${(e) => chooseLevel(e.currentTarget.value)} disabled=${levels.length === 0}>
        <option value="-1">Auto${level === -1 && autoHeight ? ` (${autoHeight}p)` : ''}</option>
        ${levels.map((l) => html`<option value=${l.index}>${l.height}p · ${(l.bitrate / 1e6).toFixed(1)} Mb/s</option>`)}
      </select>
    </div>
  </div>`
}
