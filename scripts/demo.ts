/**
 * `npm run demo`: parcelcast end to end on local defaults, with simulated carriers.
 *
 * Starts the DHL, DPD and GLS simulators, starts parcelcast (`src/main.ts`) polling them,
 * creates 100 shipments across the three carriers, and prints, every two seconds, how many
 * are in each status — while a WebSocket subscriber of one shipment prints what it is pushed.
 * The simulators answer with latency, duplicates, out-of-order scans and the odd error page,
 * so the poller's backoff and the deduplication are at work too. DPD answers in its JSON form;
 * DPD_FORM=soap makes the demo poll DPD's SOAP form instead. Ctrl-C stops everything;
 * DEMO_EXIT=1 stops once every parcel is delivered.
 */
import { createCarrierSimulator } from '../src/carriers/simulator.ts'

const port = process.env.PORT ?? '3000'
const apiKey = process.env.API_KEYS?.split(',')[0] ?? 'demo-key-change-me'
const base = `http://127.0.0.1:${port}`
const sim = createCarrierSimulator({ port: Number(process.env.SIM_PORT ?? 0), latencyMs: 50, stepMs: 2500, errorRate: 0.03, duplicateEvery: 3 })

const env = {
  ...process.env,
  PORT: port,
  API_KEYS: process.env.API_KEYS ?? apiKey,
  TOKEN_SECRET: process.env.TOKEN_SECRET ?? 'demo-token-secret-change-me-0123456789',
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  POLL_INTERVAL_MS: process.env.POLL_INTERVAL_MS ?? '1000',
  DHL_BASE_URL: `${sim.url}/dhl`, DHL_API_KEY: sim.options.dhlApiKey,
  DPD_BASE_URL: `${sim.url}/dpd`, DPD_LOCALE: 'de_DE', DPD_FORM: process.env.DPD_FORM ?? 'json',
  DPD_DELIS_ID: sim.options.dpdDelisId, DPD_PASSWORD: sim.options.dpdPassword,
  GLS_BASE_URL: `${sim.url}/gls`, GLS_CLIENT_ID: sim.options.glsClientId, GLS_CLIENT_SECRET: sim.options.glsClientSecret
}
const server = Bun.spawn([process.execPath, `${import.meta.dir}/../src/main.ts`], { env, stdout: 'inherit', stderr: 'inherit' })
const stop = () => {
  server.kill('SIGTERM')
  sim.stop()
  process.exit(0)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)

async function call(method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, { method, headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' }, body: body === undefined ? undefined : JSON.stringify(body) })
  return { status: res.status, body: (await res.json()) as any }
}

for (let i = 0; ; i++) {
  try {
    if ((await fetch(`${base}/readyz`)).ok) break
  } catch {}
  if (i > 100 || server.exitCode !== null) {
    console.error(`parcelcast did not become ready on ${base}; is PostgreSQL running at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)?`)
    stop()
  }
  await Bun.sleep(100)
}
console.log(`parcelcast is up on ${base} (API key: ${apiKey}); carrier simulators on ${sim.url}/{dhl,dpd,gls}\n`)

const run = Date.now().toString(36).toUpperCase()
const carriers = ['dhl', 'dpd', 'gls'] as const
const shipments: any[] = []
for (let n = 0; n < 100; n++) {
  const carrier = carriers[n % 3]!
  shipments.push((await call('POST', '/v1/shipments', { carrier, trackingNumber: `DEMO${run}${String(n).padStart(3, '0')}`, reference: `order ${n}` })).body)
}
console.log(`created 100 shipments (DHL, DPD, GLS); the pollers are asking the carriers now…\n`)

// A browser's view: a WebSocket subscribed to one shipment, printing every pushed event.
const watched = shipments[0]
const topic = `shipment:${watched.carrier}:${watched.trackingNumber}`
const { token } = (await call('POST', '/v1/tokens', { topics: [topic] })).body
const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws?token=${token}`)
ws.onmessage = (m) => {
  const f = JSON.parse(String(m.data))
  if (f.type === 'snapshot') console.log(`  [ws] subscribed to ${f.topic}: ${f.shipment.status}, lastSeq ${f.shipment.lastSeq}`)
  if (f.type === 'event') console.log(`  [ws] pushed seq ${f.seq}: ${f.event.carrierStatus} (${f.event.location ?? '—'}) → ${f.shipment.status}`)
}
ws.onopen = () => ws.send(JSON.stringify({ op: 'subscribe', topic }))

const ids = new Set(shipments.map((s) => s.id))
for (let tick = 0; tick < 600; tick++) {
  await Bun.sleep(2000)
  const tally: Record<string, number> = {}
  let cursor: string | null = null
  do {
    const page: { body: any } = await call('GET', `/v1/shipments?limit=200${cursor ? `&cursor=${cursor}` : ''}`)
    for (const s of page.body.items) if (ids.has(s.id)) tally[s.status] = (tally[s.status] ?? 0) + 1
    cursor = page.body.nextCursor
  } while (cursor)
  console.log(`t+${(tick + 1) * 2}s  ${Object.entries(tally).map(([k, v]) => `${k}: ${v}`).join('  ')}`)
  if (tally.delivered === 100) {
    console.log(`\nall 100 delivered. Try: curl -H 'authorization: Bearer ${apiKey}' '${base}/v1/shipments/${watched.id}/events'   and   curl ${base}/metrics`)
    if (process.env.DEMO_EXIT === '1') stop()
    console.log('parcelcast keeps running; Ctrl-C stops it.')
    break
  }
}
