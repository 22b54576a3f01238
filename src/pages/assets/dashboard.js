// The operator dashboard. The API key is typed in here and kept in sessionStorage (this tab
// only), sent as Authorization: Bearer, never put in a URL. Shipments and tracking links come
// from /v1 with it; readiness and loop metrics from the public /readyz and /metrics. The listed
// shipments' rows then follow their events live: a short-lived `shipment:*` token (POST
// /v1/tokens) subscribes one WebSocket to the first 100 of them.
const KEY = 'parcelcast.apiKey'
const $ = (id) => document.getElementById(id)
let cursor = null

const el = (tag, text, cls) => {
  const e = document.createElement(tag)
  if (text !== undefined && text !== null) e.textContent = String(text)
  if (cls) e.className = cls
  return e
}
const when = (iso) => (iso ? new Date(iso).toLocaleString() : '—')

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: { authorization: `Bearer ${sessionStorage.getItem(KEY)}`, ...(body ? { 'content-type': 'application/json' } : {}) },
    body: body ? JSON.stringify(body) : undefined
  })
  const data = await res.json().catch(() => null)
  if (res.status === 401) {
    sessionStorage.removeItem(KEY)
    // Said beside the key form, which show() brings back (the error line sits in the signed-in part).
    $('key-error').textContent = 'The API key was refused: enter a valid one.'
    $('key-error').hidden = false
    show()
    throw new Error('the API key was refused: enter a valid one')
  }
  if (!res.ok) throw new Error(data?.error?.message ?? `${method} ${path}: HTTP ${res.status}`)
  return data
}

function fail(err) {
  $('error').hidden = false
  $('error').textContent = err.message
}

function show() {
  const key = sessionStorage.getItem(KEY)
  $('key-form').hidden = !!key
  $('signed-in').hidden = !key
  if (key) return refresh()
  stopFollowing()
  $('api-key').focus()
}

async function refresh() {
  $('error').hidden = true
  cursor = null
  $('shipments').tBodies[0].replaceChildren()
  await Promise.all([loadShipments(), loadReadiness(), loadLoops()]).catch(fail)
  $('refreshed').textContent = `as of ${new Date().toLocaleTimeString()}`
  follow().catch(fail)
}

// At most this many rows follow live (the server's limit of topics per socket).
const LIVE_ROWS = 100
let socket = null

function stopFollowing() {
  if (!socket) return
  const ws = socket
  socket = null
  ws.close()
}

async function follow() {
  stopFollowing()
  const rows = [...$('shipments').tBodies[0].rows].slice(0, LIVE_ROWS)
  if (rows.length === 0 || !sessionStorage.getItem(KEY)) return
  const { token } = await api('POST', '/v1/tokens', { topics: ['shipment:*'], ttlSeconds: 900 })
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws?token=${encodeURIComponent(token)}`)
  socket = ws
  const byTopic = new Map(rows.map((tr) => [tr.dataset.topic, tr]))
  ws.onopen = () => {
    for (const topic of byTopic.keys()) ws.send(JSON.stringify({ op: 'subscribe', topic }))
    $('live').textContent = 'live'
  }
  ws.onmessage = (m) => {
    const f = JSON.parse(m.data)
    const tr = byTopic.get(f.topic)
    if (!tr) return
    if (f.type === 'snapshot') updateRow(tr, f.shipment, f.shipment.lastSeq)
    else if (f.type === 'event') updateRow(tr, f.shipment, f.seq)
  }
  ws.onclose = () => {
    if (socket !== ws) return
    socket = null
    $('live').textContent = 'reconnecting…'
    // A new token and fresh snapshots: the rows catch up on whatever happened meanwhile.
    setTimeout(() => void (socket === null && follow().catch(fail)), 2000)
  }
}

function updateRow(tr, shipment, seq) {
  if (Number(tr.dataset.seq) > seq) return
  tr.dataset.seq = String(seq)
  tr.cells[2].textContent = shipment.status
  tr.cells[3].textContent = when(shipment.lastEventAt)
  if (shipment.expectedDelivery !== undefined) tr.cells[4].textContent = shipment.expectedDelivery ? when(shipment.expectedDelivery.to) : '—'
  tr.cells[5].textContent = String(seq)
}

async function loadShipments() {
  const status = $('status-filter').value
  const q = new URLSearchParams({ limit: '50', ...(status ? { status } : {}), ...(cursor ? { cursor } : {}) })
  const page = await api('GET', `/v1/shipments?${q}`)
  const body = $('shipments').tBodies[0]
  for (const s of page.items) {
    const tr = el('tr')
    tr.dataset.id = s.id
    tr.dataset.topic = `shipment:${s.carrier}:${s.trackingNumber}`
    tr.dataset.seq = String(s.lastSeq)
    const e = s.expectedDelivery
    const link = el('button', 'tracking link')
    link.type = 'button'
    link.addEventListener('click', () => makeLink(s).catch(fail))
    const actions = el('td')
    actions.append(link)
    tr.append(
      el('td', s.carrier),
      el('td', s.trackingNumber),
      el('td', s.status, 'status'),
      el('td', when(s.lastEventAt)),
      el('td', e ? when(e.to) : '—'),
      el('td', s.lastSeq),
      actions
    )
    body.append(tr)
  }
  cursor = page.nextCursor
  $('more').hidden = !cursor
}

async function makeLink(s) {
  const link = await api('POST', `/v1/shipments/${encodeURIComponent(s.id)}/tracking-link`, {})
  const a = el('a', new URL(link.url, location.href).href)
  a.href = link.url
  a.target = '_blank'
  a.rel = 'noopener noreferrer'
  $('link').hidden = false
  $('link').replaceChildren(`Tracking page for ${s.trackingNumber} (valid until ${when(link.expiresAt)}): `, a)
}

async function loadReadiness() {
  const res = await fetch('/readyz')
  const r = await res.json()
  const dl = el('dl', undefined, 'kv')
  const row = (k, v, cls) => dl.append(el('dt', k), el('dd', v, cls))
  const tone = (v) => (v === 'up' || v === 'ok' || v === 'ready' || v === 'not_used' ? 'ok' : v === 'degraded' ? 'warn' : 'bad')
  row('status', r.status, tone(r.status))
  row('database', `${r.db} (${r.database})`, tone(r.db))
  row('ingest', r.ingest, tone(r.ingest))
  row('engine', `${r.engine}; redis ${r.redis}`, tone(r.redis))
  // A consumer group's lag: entries delivered but not acknowledged, and entries not read yet.
  const lag = (g) => {
    const age = (ms) => (ms === null || ms === undefined ? '' : `, oldest ${(ms / 1000).toFixed(1)} s`)
    return `${g.pending} pending${age(g.oldestMs)}; ${g.unread ?? 'an unknown number of'} unread${age(g.unreadAgeMs)}`
  }
  if (r.broadcaster) row('broadcaster lag', lag(r.broadcaster))
  if (r.notificationWorkers) row('notification workers lag', lag(r.notificationWorkers))
  for (const [code, h] of Object.entries(r.carriers ?? {})) row(`carrier ${code}`, h, tone(h))
  if (r.webhooks)
    row(
      'webhooks',
      `${r.webhooks.status}: ${r.webhooks.pending} pending, ${r.webhooks.deadLetters} dead letters (${r.webhooks.deadLettersLastHour} in the last hour), ${r.webhooks.disabledEndpoints?.length ?? 0} endpoints disabled`,
      tone(r.webhooks.status)
    )
  $('readiness').replaceChildren(dl)
}

// A few counters of the background loops, summed over their labels, from /metrics.
const LOOP_METRICS = [
  ['parcelcast_events_ingested_total', 'events ingested'],
  ['parcelcast_events_published_total', 'events published'],
  ['parcelcast_outbox_backlog', 'outbox backlog'],
  ['parcelcast_outbox_cycles_total', 'outbox relay cycles'],
  ['parcelcast_broadcaster_entries_total', 'broadcaster entries'],
  ['parcelcast_ws_connections', 'WebSocket connections'],
  ['parcelcast_poll_cycles_total', 'poll cycles'],
  ['parcelcast_poll_errors_total', 'poll errors'],
  ['parcelcast_carrier_rejected_scans_total', 'carrier scans rejected'],
  ['parcelcast_notifications_created_total', 'notifications created'],
  ['parcelcast_webhook_attempts_total', 'webhook attempts'],
  ['parcelcast_webhook_dead_letters', 'webhook dead letters']
]

async function loadLoops() {
  const text = await (await fetch('/metrics')).text()
  const sums = new Map()
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue
    const name = line.split(/[{ ]/, 1)[0]
    const value = Number(line.slice(line.lastIndexOf(' ') + 1))
    if (Number.isFinite(value)) sums.set(name, (sums.get(name) ?? 0) + value)
  }
  const dl = el('dl', undefined, 'kv')
  for (const [name, what] of LOOP_METRICS) if (sums.has(name)) dl.append(el('dt', what), el('dd', sums.get(name)))
  $('loops').replaceChildren(dl.childElementCount ? dl : el('p', 'no loop metrics yet', 'hint'))
}

$('key-form').addEventListener('submit', (e) => {
  e.preventDefault()
  const key = $('api-key').value.trim()
  if (!key) return
  sessionStorage.setItem(KEY, key)
  $('api-key').value = ''
  $('key-error').hidden = true
  show()
})
$('forget').addEventListener('click', () => {
  sessionStorage.removeItem(KEY)
  stopFollowing()
  show()
})
$('refresh').addEventListener('click', () => refresh())
// Readiness and the loops' counters follow by themselves (both public, cheap to read); the list
// follows its rows live over the socket, and new shipments come with Refresh.
const PANEL_EVERY_MS = 5000
setInterval(() => {
  if (!sessionStorage.getItem(KEY) || document.visibilityState !== 'visible') return
  Promise.all([loadReadiness(), loadLoops()]).catch(fail)
}, PANEL_EVERY_MS)
$('more').addEventListener('click', () => loadShipments().then(follow).catch(fail))
$('status-filter').addEventListener('change', () => refresh())
show()
