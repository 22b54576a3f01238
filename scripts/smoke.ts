/**
 * `bun scripts/smoke.ts [base URL]`: checks a running parcelcast end to end over the wire — for
 * instance `docker compose up` (two processes behind a proxy). Creates a shipment, opens six
 * WebSockets (a proxy spreads them over the processes), posts ten events in ten requests (spread
 * the same way) and waits until every socket has every event exactly once and in seq order.
 * API_KEY (default: the first of API_KEYS, else the demo's key) authenticates. Exit 0 when all
 * arrived, 1 otherwise.
 */
const base = (process.argv[2] ?? `http://127.0.0.1:${process.env.PORT ?? 3000}`).replace(/\/$/, '')
const apiKey = process.env.API_KEY ?? process.env.API_KEYS?.split(',')[0] ?? 'demo-key-change-me'
const SOCKETS = 6
const EVENTS = 10

async function call(method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  const json = (await res.json()) as any
  if (!res.ok) throw new Error(`${method} ${path}: HTTP ${res.status} ${JSON.stringify(json)}`)
  return json
}

const fail = (message: string): never => {
  console.error(`smoke: FAILED — ${message}`)
  process.exit(1)
}

const ready = await fetch(`${base}/readyz`).then(
  (r) => r.json(),
  (err) => fail(`${base}/readyz: ${(err as Error).message}`)
)
console.log(`smoke: ${base}/readyz → ${JSON.stringify(ready)}`)

const trackingNumber = `SMOKE${Date.now().toString(36).toUpperCase()}`
const shipment = await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber })
const topic = `shipment:dhl:${shipment.trackingNumber}`
const { token } = await call('POST', '/v1/tokens', { topics: [topic] })

const wsBase = base.replace(/^http/, 'ws')
const received: number[][] = []
await Promise.all(
  Array.from({ length: SOCKETS }, (_, i) => {
    received[i] = []
    return new Promise<void>((subscribed, failed) => {
      const ws = new WebSocket(`${wsBase}/v1/ws?token=${token}`)
      ws.onopen = () => ws.send(JSON.stringify({ op: 'subscribe', topic, since: 0 }))
      ws.onerror = () => failed(new Error(`socket ${i} could not connect to ${wsBase}/v1/ws`))
      ws.onmessage = (m) => {
        const f = JSON.parse(String(m.data))
        if (f.type === 'snapshot') {
          for (const e of f.events ?? []) received[i]!.push(e.seq)
          subscribed()
        }
        if (f.type === 'event') received[i]!.push(f.seq)
        if (f.type === 'error') failed(new Error(`socket ${i}: ${f.code} ${f.message}`))
      }
    })
  })
).catch((err) => fail((err as Error).message))

for (let n = 1; n <= EVENTS; n++) {
  const { results } = await call('POST', '/v1/events', {
    events: [
      {
        carrier: 'dhl',
        trackingNumber,
        carrierStatus: `STEP${n}`,
        status: n === EVENTS ? 'delivered' : 'in_transit',
        occurredAt: new Date(Date.UTC(2026, 0, 1, 0, n)).toISOString()
      }
    ]
  })
  if (results[0].outcome !== 'inserted') fail(`event ${n}: ${JSON.stringify(results[0])}`)
}

const want = Array.from({ length: EVENTS }, (_, i) => i + 1).join(',')
const deadline = Date.now() + 15_000
while (received.some((r) => r.join(',') !== want)) {
  if (Date.now() > deadline) fail(`after 15 s the sockets hold ${JSON.stringify(received)}; each should hold ${want}`)
  await Bun.sleep(50)
}
console.log(`smoke: ok — ${SOCKETS} sockets each got events 1…${EVENTS} of ${topic} exactly once and in order`)
process.exit(0)

export {}
