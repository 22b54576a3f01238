/**
 * `npm run demo`: parcelcast end to end on local defaults, with simulated carriers.
 *
 * Starts the DHL, DPD and GLS simulators, starts parcelcast (`src/main.ts`) polling them — on the
 * local PostgreSQL if one lets us in, else on the embedded one in ./.parcelcast — creates 100
 * shipments across the three carriers, prints the dashboard's URL and one shipment's tracking-page
 * link (to watch the parcels move in a browser), and prints once a second how many are in each
 * status, while a WebSocket subscriber of one shipment prints what it is pushed. parcelcast's own log is
 * shown readable (pino-pretty): its start-up story, then warnings and errors only. The simulators
 * answer with latency, duplicates, out-of-order scans and the odd error page, so the poller's
 * backoff and the deduplication are at work too. DPD answers in its JSON form; DPD_FORM=soap
 * makes the demo poll DPD's SOAP form instead. Ctrl-C stops everything (the database last);
 * DEMO_EXIT=1 stops once every parcel is delivered.
 */
import { prettyFactory } from 'pino-pretty'
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
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'info',
  POLL_INTERVAL_MS: process.env.POLL_INTERVAL_MS ?? '1000',
  DHL_BASE_URL: `${sim.url}/dhl`,
  DHL_API_KEY: sim.options.dhlApiKey,
  DPD_BASE_URL: `${sim.url}/dpd`,
  DPD_LOCALE: 'de_DE',
  DPD_FORM: process.env.DPD_FORM ?? 'json',
  DPD_DELIS_ID: sim.options.dpdDelisId,
  DPD_PASSWORD: sim.options.dpdPassword,
  GLS_BASE_URL: `${sim.url}/gls`,
  GLS_CLIENT_ID: sim.options.glsClientId,
  GLS_CLIENT_SECRET: sim.options.glsClientSecret
}
const server = Bun.spawn([process.execPath, `${import.meta.dir}/../src/main.ts`], { env, stdout: 'pipe', stderr: 'inherit' })

// parcelcast logs JSON lines; here they are printed for people. Info lines until it is ready
// (which database, migrations, pollers), warnings and errors throughout.
const pretty = prettyFactory({
  colorize: process.stdout.isTTY ?? false,
  translateTime: 'SYS:HH:MM:ss',
  ignore: 'pid,hostname,service,component',
  singleLine: true,
  messageFormat: '{if component}{component}: {end}{msg}'
})
let verbose = true
const printed = (async () => {
  let rest = ''
  for await (const chunk of server.stdout.pipeThrough(new TextDecoderStream())) {
    const lines = (rest + chunk).split('\n')
    rest = lines.pop()!
    for (const line of lines) {
      let entry: { level?: number }
      try {
        entry = JSON.parse(line)
      } catch {
        if (line) console.log(line)
        continue
      }
      if (verbose || (entry.level ?? 0) >= 40) process.stdout.write(pretty(entry))
    }
  }
})()

let stopping = false
async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true
    verbose = true
    server.kill('SIGTERM')
    // parcelcast stops its work, then its database; its last lines still reach the screen.
    // The simulators go last, so no poll in flight finds its carrier gone.
    await Promise.race([server.exited, Bun.sleep(40_000)])
    await Promise.race([printed, Bun.sleep(1000)])
    sim.stop()
  }
  process.exit(code)
}
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(0))

async function call(method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  return { status: res.status, body: (await res.json()) as any }
}

// The first start on an embedded database runs initdb (seconds); crash recovery may take longer.
const deadline = Date.now() + 180_000
let readiness: any = null
while (!readiness) {
  readiness = await fetch(`${base}/readyz`).then(
    (r) => (r.ok ? r.json() : null),
    () => null
  )
  if (readiness) break
  if (server.exitCode !== null) {
    await printed
    console.error(`\nparcelcast exited (code ${server.exitCode}) before it was ready; its last lines above say why.`)
    await stop(1)
  }
  if (Date.now() > deadline) {
    console.error(`\nparcelcast did not become ready on ${base} within 180 s.`)
    await stop(1)
  }
  await Bun.sleep(100)
}
verbose = false
console.log(
  `\nparcelcast is up on ${base} (API key: ${apiKey}) — database: ${readiness.database}, redis: ${readiness.redis}${readiness.engine ? `, engine: ${readiness.engine}` : ''}; carrier simulators on ${sim.url}/{dhl,dpd,gls}`
)
console.log('from here on parcelcast prints warnings and errors only (the simulators send the odd error page on purpose)\n')

const run = Date.now().toString(36).toUpperCase()
const carriers = ['dhl', 'dpd', 'gls'] as const
const shipments: any[] = []
for (let n = 0; n < 100; n++) {
  const carrier = carriers[n % 3]!
  shipments.push((await call('POST', '/v1/shipments', { carrier, trackingNumber: `DEMO${run}${String(n).padStart(3, '0')}`, reference: `order ${n}` })).body)
}
console.log(`created 100 shipments (DHL, DPD, GLS); the pollers are asking the carriers now…`)
// The pages (contract §10): the operator dashboard, and the page a recipient of one parcel gets.
const link = (await call('POST', `/v1/shipments/${shipments[0].id}/tracking-link`, {})).body
console.log(`\nwatch them in a browser:`)
console.log(`  dashboard (asks for the API key above): ${base}/`)
console.log(`  tracking page of ${shipments[0].trackingNumber} (a link for its recipient, valid until ${link.expiresAt}): ${base}${link.url}`)
console.log(`  API reference: ${base}/docs\n`)

// A browser's view: a WebSocket subscribed to one shipment, printing every pushed event.
const watched = shipments[0]
const topic = `shipment:${watched.carrier}:${watched.trackingNumber}`
const { token } = (await call('POST', '/v1/tokens', { topics: [topic] })).body
const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws?token=${token}`)
let pushed = 0
ws.onmessage = (m) => {
  const f = JSON.parse(String(m.data))
  if (f.type === 'snapshot') console.log(`  [ws] subscribed to ${f.topic}: ${f.shipment.status}, lastSeq ${f.shipment.lastSeq}`)
  if (f.type === 'event') {
    pushed++
    console.log(`  [ws] pushed seq ${f.seq}: ${f.event.carrierStatus} (${f.event.location ?? '—'}) → ${f.shipment.status}`)
  }
}
ws.onopen = () => ws.send(JSON.stringify({ op: 'subscribe', topic }))

const statuses = ['pending', 'info_received', 'in_transit', 'out_for_delivery', 'delivered']
const order = (status: string) => (statuses.includes(status) ? statuses.indexOf(status) : statuses.length)
const ids = new Set(shipments.map((s) => s.id))
const started = Date.now()
for (let tick = 0; tick < 1200; tick++) {
  await Bun.sleep(1000)
  const tally: Record<string, number> = {}
  let seen = 0
  let cursor: string | null = null
  // Newest first: this run's shipments come first, so the pages stop once all 100 are seen.
  do {
    const page: { body: any } = await call('GET', `/v1/shipments?limit=200${cursor ? `&cursor=${cursor}` : ''}`)
    for (const s of page.body.items) {
      if (!ids.has(s.id)) continue
      tally[s.status] = (tally[s.status] ?? 0) + 1
      seen++
    }
    cursor = page.body.nextCursor
  } while (cursor && seen < ids.size)
  const secs = Math.round((Date.now() - started) / 1000)
  const counts = Object.entries(tally)
    .sort(([a], [b]) => order(a) - order(b))
    .map(([k, v]) => `${k}: ${v}`)
  console.log(`t+${secs}s  ${counts.join('  ')}   (watched socket: ${pushed} pushed)`)
  if (tally.delivered === 100) {
    console.log(`\nall 100 delivered. Try: curl -H 'authorization: Bearer ${apiKey}' '${base}/v1/shipments/${watched.id}/events'   and   curl ${base}/readyz`)
    if (process.env.DEMO_EXIT === '1') await stop(0)
    console.log('parcelcast keeps running; Ctrl-C stops it.')
    break
  }
}
