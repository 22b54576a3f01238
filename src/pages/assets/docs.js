// The API reference: /openapi.json rendered as a list of operations, with their parameters,
// bodies and answers as JSON Schema. Served from this host; it loads nothing else.
const main = document.getElementById('docs')
const el = (tag, text, cls) => {
  const e = document.createElement(tag)
  if (text !== undefined && text !== null) e.textContent = String(text)
  if (cls) e.className = cls
  return e
}
const pre = (value) => el('pre', JSON.stringify(value, null, 2))
const details = (title, value) => {
  const d = el('details')
  d.append(el('summary', title), pre(value))
  return d
}

async function render() {
  const doc = await (await fetch('/openapi.json')).json()
  const out = [el('p', doc.info.description)]
  const scheme = doc.components.securitySchemes.apiKey
  out.push(el('p', `Authentication: ${scheme.description}.`))
  const byTag = new Map((doc.tags ?? []).map((t) => [t.name, []]))
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const tag = op.tags?.[0] ?? 'other'
      if (!byTag.has(tag)) byTag.set(tag, [])
      byTag.get(tag).push([method, path, op])
    }
  }
  for (const [tag, ops] of byTag) {
    if (ops.length === 0) continue
    const section = el('section')
    section.append(el('h2', tag))
    for (const [method, path, op] of ops) {
      const div = el('div', undefined, 'op')
      div.id = op.operationId
      const h = el('h3')
      h.append(el('span', method, 'method'), el('code', path))
      div.append(h, el('p', `${op.summary ?? ''}${op.security?.length ? ' — needs the API key' : ''}`))
      if (op.parameters?.length) div.append(details('parameters', op.parameters))
      if (op.requestBody) div.append(details('request body', op.requestBody.content))
      for (const [status, r] of Object.entries(op.responses)) {
        const resolved = r.$ref ? doc.components.responses[r.$ref.split('/').pop()] : r
        div.append(details(`${status}: ${resolved.description}`, resolved.content ?? {}))
      }
      section.append(div)
    }
    out.push(section)
  }
  const schemas = el('section')
  schemas.append(el('h2', 'schemas'))
  for (const [name, schema] of Object.entries(doc.components.schemas)) schemas.append(details(name, schema))
  out.push(schemas)
  main.replaceChildren(...out)
}

render().catch((err) => main.replaceChildren(el('p', `could not load /openapi.json: ${err.message}`, 'error')))
