// Projects: the list, and a form to make one.
import { useEffect, useState } from 'preact/hooks'
import { api } from './api.js'
import { html, Link, ErrorNote, navigate, when } from './ui.js'

export function Projects() {
  const [projects, setProjects] = useState(null)
  const [name, setName] = useState('')
  const [error, setError] = useState(null)
  const [busy, setBusy] = useState(false)

  useEffect(() => {
    api('/projects')
      .then((data) => setProjects(data.items.slice().reverse()))
      .catch(setError)
  }, [])

  const create = async (event) => {
    event.preventDefault()
    if (!name.trim()) return setError('Give the project a name.')
    setBusy(true)
    setError(null)
    try {
      const project = await api('/projects', { method: 'POST', body: { name: name.trim() } })
      navigate(`/projects/${project.id}`)
    } catch (failure) {
      setError(failure)
      setBusy(false)
    }
  }

  return html`<section class="page" aria-labelledby="projects-title">
    <div class="page-head">
      <h1 id="projects-title">Projects</h1>
      <form class="inline" onSubmit=${create}>
        <label for="new-project" class="visually-hidden">New project name</label>
        <input id="new-project" placeholder="New project name" maxlength="200" value=${name}
          onInput=${(e) => setName(e.currentTarget.value)} />
        <button type="submit" class="primary" disabled=${busy}>Create project</button>
      </form>
    </div>
    <${ErrorNote} error=${error} onDismiss=${() => setError(null)} />
    ${projects === null && !error && html`<p class="muted">Loading projects…</p>`}
    ${projects && projects.length === 0 && html`<div class="empty">
      <p><strong>No projects yet.</strong></p>
      <p class="muted">Create one above, then drop media files into it to review them.</p>
    </div>`}
    ${projects && projects.length > 0 && html`<ul class="projects" aria-label="Your projects">
      ${projects.map((project) => html`<li key=${project.id}>
        <${Link} href=${`/projects/${project.id}`} class="project-card">
          <span class="folder" aria-hidden="true"></span>
          <span class="project-name">${project.name}</span>
          <span class="muted small">Created ${when(project.created_at)}</span>
        <//>
      </li>`)}
    </ul>`}
  </section>`
}
