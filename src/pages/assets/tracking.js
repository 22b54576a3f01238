// The recipient's tracking page: everything it shows comes through the token in its own URL,
// over the WebSocket (/v1/ws, contract §5). It subscribes with since=0 for the whole timeline,
// then applies event frames in seq order; after a lost connection it resubscribes with since=
// the last seq it has, so it misses nothing and shows nothing twice.
const root = document.getElementById('tracking')
const topic = root.dataset.topic
const token = new URLSearchParams(location.search).get('token') ?? ''
const $ = (id) => document.getElementById(id)
let lastSeq = 0
let retryMs = 500
let stopped = false

const when = (iso) => (iso ? new Date(iso).toLocaleString() : '—')
const label = (status) => String(status ?? 'unknown').replaceAll('_', ' ')

function showShipment(s) {
  $('status').textContent = label(s.status)
  $('status').dataset.status = s.status ?? ''
  if (s.expectedDelivery !== undefined) {
    const e = s.expectedDelivery
    $('expected').textContent = !e ? 'not stated by the carrier' : e.from ? `${when(e.from)} – ${when(e.to)}` : `by ${when(e.to)}`
  }
}

function addEvent(e) {
  if (e.seq <= lastSeq) return
  lastSeq = e.seq
  const li = document.createElement('li')
  li.dataset.seq = String(e.seq)
  const what = document.createElement('strong')
  what.textContent = label(e.status)
  const text = document.createElement('span')
  text.textContent = [e.description, e.location]
    .filter(Boolean)
    .map((s) => ` — ${s}`)
    .join('')
  const at = document.createElement('div')
  at.className = 'when'
  at.textContent = when(e.occurredAt)
  li.append(what, text, at)
  li.dataset.at = e.occurredAt
  // Newest scan first, by carrier time: an out-of-order scan takes its place in the story.
  const later = [...$('timeline').children].find((x) => x.dataset.at < e.occurredAt || (x.dataset.at === e.occurredAt && Number(x.dataset.seq) < e.seq))
  $('timeline').insertBefore(li, later ?? null)
}

function connect() {
  const ws = new WebSocket(`${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/v1/ws?token=${encodeURIComponent(token)}`)
  ws.onopen = () => {
    ws.send(JSON.stringify({ op: 'subscribe', topic, since: lastSeq }))
  }
  ws.onmessage = (m) => {
    const f = JSON.parse(m.data)
    if (f.type === 'snapshot') {
      retryMs = 500
      showShipment(f.shipment)
      for (const e of f.events ?? []) addEvent(e)
      // Live once subscribed: from here every event follows the snapshot in seq order.
      $('connection').textContent = 'live'
    } else if (f.type === 'event') {
      addEvent(f.event)
      showShipment(f.shipment)
    } else if (f.type === 'error') {
      if (f.code === 'token_expired' || f.code === 'token_invalid' || f.code === 'forbidden_topic' || f.code === 'not_found') {
        stopped = true
        $('connection').textContent = f.code === 'token_expired' ? 'This link has expired: ask the sender for a new one.' : 'This link no longer works.'
        ws.close()
      }
    }
  }
  ws.onclose = () => {
    if (stopped) return
    $('connection').textContent = 'reconnecting…'
    setTimeout(connect, retryMs)
    retryMs = Math.min(retryMs * 2, 15_000)
  }
}

connect()
