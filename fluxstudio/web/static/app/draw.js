// Drawings on the frame: shapes in 0..1 coordinates of the picture (upper-left origin), drawn on a
// canvas laid exactly over the picture inside the <video> (which letterboxes it: object-fit contain).
import { useEffect, useRef } from 'preact/hooks'
import { html } from './ui.js'

export const TOOLS = [
  { type: 'arrow', label: 'Arrow' },
  { type: 'rect', label: 'Rectangle' },
  { type: 'ellipse', label: 'Ellipse' },
  { type: 'line', label: 'Line' },
  { type: 'path', label: 'Freehand' },
]
export const COLOURS = ['#ff3b30', '#ffcc00', '#34c759', '#0a84ff', '#ffffff']
const WIDTH = 0.004 // of the picture's width
const MAX_POINTS = 500

// Where the picture is inside the element, in CSS pixels.
export function pictureRect(video) {
  const width = video.clientWidth
  const height = video.clientHeight
  const vw = video.videoWidth || 16
  const vh = video.videoHeight || 9
  const scale = Math.min(width / vw, height / vh)
  const w = vw * scale
  const h = vh * scale
  return { x: (width - w) / 2, y: (height - h) / 2, w, h }
}

function paint(context, shapes, rect) {
  context.lineCap = 'round'
  context.lineJoin = 'round'
  for (const shape of shapes) {
    const points = shape.points.map(([x, y]) => [rect.x + x * rect.w, rect.y + y * rect.h])
    context.strokeStyle = shape.color
    context.lineWidth = Math.max(2, (shape.width || WIDTH) * rect.w)
    context.shadowColor = 'rgba(0,0,0,.55)'
    context.shadowBlur = 3
    context.beginPath()
    const [a, b = a] = [points[0], points[points.length - 1]]
    if (shape.type === 'rect') context.rect(a[0], a[1], b[0] - a[0], b[1] - a[1])
    else if (shape.type === 'ellipse') {
      context.ellipse((a[0] + b[0]) / 2, (a[1] + b[1]) / 2, Math.abs(b[0] - a[0]) / 2, Math.abs(b[1] - a[1]) / 2, 0, 0, 2 * Math.PI)
    } else if (shape.type === 'path') {
      points.forEach(([x, y], i) => (i ? context.lineTo(x, y) : context.moveTo(x, y)))
    } else {
      context.moveTo(a[0], a[1])
      context.lineTo(b[0], b[1])
      if (shape.type === 'arrow') {
        const angle = Math.atan2(b[1] - a[1], b[0] - a[0])
        const head = Math.max(10, context.lineWidth * 4)
        for (const side of [-1, 1]) {
          context.moveTo(b[0], b[1])
          context.lineTo(b[0] - head * Math.cos(angle + side * 0.45), b[1] - head * Math.sin(angle + side * 0.45))
        }
      }
    }
    context.stroke()
  }
}

// The overlay. `editable`: pointer input adds shapes with `tool` and `colour` through `onShape`.
export function Overlay({ video, shapes, editable, tool, colour, onShape }) {
  const canvas = useRef(null)
  const draft = useRef(null)

  const redraw = () => {
    const element = canvas.current
    if (!element || !video) return
    const ratio = window.devicePixelRatio || 1
    const width = video.clientWidth
    const height = video.clientHeight
    if (element.width !== Math.round(width * ratio) || element.height !== Math.round(height * ratio)) {
      element.width = Math.round(width * ratio)
      element.height = Math.round(height * ratio)
    }
    const context = element.getContext('2d')
    context.setTransform(ratio, 0, 0, ratio, 0, 0)
    context.clearRect(0, 0, width, height)
    paint(context, draft.current ? [...shapes, draft.current] : shapes, pictureRect(video))
  }

  useEffect(redraw)
  useEffect(() => {
    if (!video) return
    const observer = new ResizeObserver(redraw)
    observer.observe(video)
    video.addEventListener('loadedmetadata', redraw)
    return () => {
      observer.disconnect()
      video.removeEventListener('loadedmetadata', redraw)
    }
  }, [video])

  const at = (event) => {
    const rect = pictureRect(video)
    const bounds = canvas.current.getBoundingClientRect()
    const x = (event.clientX - bounds.left - rect.x) / rect.w
    const y = (event.clientY - bounds.top - rect.y) / rect.h
    return [Math.min(1, Math.max(0, +x.toFixed(4))), Math.min(1, Math.max(0, +y.toFixed(4)))]
  }
  const down = (event) => {
    if (!editable) return
    event.preventDefault()
    canvas.current.setPointerCapture(event.pointerId)
    const point = at(event)
    draft.current = { type: tool, points: [point, point], color: colour, width: WIDTH }
    redraw()
  }
  const move = (event) => {
    const shape = draft.current
    if (!shape) return
    const point = at(event)
    if (shape.type === 'path') {
      const last = shape.points[shape.points.length - 1]
      if (Math.hypot(point[0] - last[0], point[1] - last[1]) > 0.003 && shape.points.length < MAX_POINTS) shape.points.push(point)
    } else shape.points[1] = point
    redraw()
  }
  const up = () => {
    const shape = draft.current
    draft.current = null
    if (!shape) return
    const [a, b] = [shape.points[0], shape.points[shape.points.length - 1]]
    if (shape.type === 'path' ? shape.points.length > 2 : Math.hypot(b[0] - a[0], b[1] - a[1]) > 0.01) onShape(shape)
    redraw()
  }

  return html`<canvas ref=${canvas} class=${'overlay' + (editable ? ' editable' : '')}
    aria-hidden=${editable ? 'false' : 'true'} role=${editable ? 'img' : undefined}
    aria-label=${editable ? 'Drawing area: drag on the picture to draw' : undefined}
    onPointerDown=${down} onPointerMove=${move} onPointerUp=${up} onPointerCancel=${up}></canvas>`
}
