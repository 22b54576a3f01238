/**
 * `npm run demo`: start parcelcast on local defaults and watch parcels move.
 *
 * Starts the service (`src/main.ts`) as a child process, creates a dozen shipments across
 * DHL, DPD and GLS, and plays their journeys through `POST /v1/events` — with a re-delivered
 * scan and a late, out-of-order one — printing what the API says after each step. The
 * service keeps running afterwards (Ctrl-C stops both); DEMO_EXIT=1 stops when done.
 */
const port = process.env.PORT ?? '3000'
const apiKey = process.env.API_KEYS?.split(',')[0] ?? 'demo-key-change-me'
const base = `http://127.0.0.1:${port}`
const env = { ...process.env, PORT: port, API_KEYS: process.env.API_KEYS ?? apiKey, TOKEN_SECRET: process.env.TOKEN_SECRET ?? "demo-token-secret-change-me-0123456789", LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' }

const server = Bun.spawn([process.execPath, `${import.meta.dir}/../src/main.ts`], { env, stdout: 'inherit', stderr: 'inherit' })
const stop = () => {
  server.kill('SIGTERM')
  process.exit(0)
}
process.on('SIGINT', stop)
process.on('SIGTERM', stop)

async function call(method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, {
    method,
    headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body)
  })
  return { status: res.status, body: (await res.json()) as any }
}

for (let i = 0; ; i++) {
  try {
    if ((await fetch(`${base}/readyz`)).ok) break
  } catch {}
  if (i > 100 || server.exitCode !== null) {
    console.error(`parcelcast did not become ready on ${base}; is PostgreSQL running at DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres)?`)
    server.kill()
    process.exit(1)
  }
  await Bun.sleep(100)
}
console.log(`parcelcast is up on ${base} (API key: ${apiKey}); readiness: ${JSON.stringify((await (await fetch(`${base}/readyz`)).json()))}\n`)

const journeys: Record<string, [string, string][]> = {
  dhl: [['pre-transit', 'info_received'], ['PU', 'in_transit'], ['transit', 'in_transit'], ['OFD', 'out_for_delivery'], ['delivered', 'delivered']],
  dpd: [['PickedUp', 'in_transit'], ['BetweenDepots', 'in_transit'], ['Courier', 'out_for_delivery'], ['DeliveryFailure', 'failed_attempt'], ['ParcelShop', 'available_for_pickup']],
  gls: [['PREADVICE', 'info_received'], ['INWAREHOUSE', 'in_transit'], ['INDELIVERY', 'out_for_delivery'], ['DELIVERED', 'delivered']]
}
const run = Date.now().toString(36).toUpperCase()
const shipments = []
for (const carrier of Object.keys(journeys)) {
  for (let n = 1; n <= 4; n++) {
    const res = await call('POST', '/v1/shipments', { carrier, trackingNumber: `DEMO-${run}-${carrier}${n}`, reference: `order ${n}` })
    shipments.push(res.body)
  }
}
console.log(`created ${shipments.length} shipments; playing their journeys…\n`)

// A browser's view: a WebSocket subscribed to the first shipment, printing every pushed event.
const watched = shipments[0]
const { token } = (await call('POST', '/v1/tokens', { topics: [`shipment:${watched.carrier}:${watched.trackingNumber}`] })).body
const ws = new WebSocket(`ws://127.0.0.1:${port}/v1/ws?token=${token}`)
ws.onmessage = (m) => {
  const f = JSON.parse(String(m.data))
  if (f.type === 'snapshot') console.log(`  [ws] subscribed to ${f.topic}: ${f.shipment.status}, lastSeq ${f.shipment.lastSeq}`)
  if (f.type === 'event') console.log(`  [ws] pushed ${f.topic} seq ${f.seq}: ${f.event.carrierStatus} → shipment now ${f.shipment.status}`)
}
await new Promise((r) => (ws.onopen = () => (ws.send(JSON.stringify({ op: 'subscribe', topic: `shipment:${watched.carrier}:${watched.trackingNumber}` })), r(null))))
await Bun.sleep(200)

const start = Date.UTC(2026, 10, 20, 6, 0)
const maxSteps = Math.max(...Object.values(journeys).map((j) => j.length))
for (let step = 0; step < maxSteps; step++) {
  const events = []
  for (const [i, s] of shipments.entries()) {
    const leg = journeys[s.carrier]![step]
    if (!leg) continue
    const occurredAt = new Date(start + step * 3_600_000 + i * 60_000).toISOString()
    events.push({ carrier: s.carrier, trackingNumber: s.trackingNumber, carrierStatus: leg[0], status: leg[1], occurredAt, location: ['Leipzig, DE', 'Berlin, DE', 'Hamburg, DE'][step % 3] })
  }
  const outcomes = (await call('POST', '/v1/events', { events })).body.results as any[]
  const tally = outcomes.reduce((t: Record<string, number>, r) => ((t[r.outcome] = (t[r.outcome] ?? 0) + 1), t), {})
  console.log(`step ${step + 1}: ${JSON.stringify(tally)}`)
  if (step === 1) {
    // A carrier re-delivers a scan: the same dedupKey, so the database unique constraint makes it a no-op.
    const again = (await call('POST', '/v1/events', { events: events.slice(0, 1) })).body.results[0]
    console.log(`  re-delivered scan ${again.dedupKey} → ${again.outcome} (seq ${again.seq})`)
  }
  for (const s of shipments.slice(0, 3)) {
    const now = (await call('GET', `/v1/shipments/${s.id}`)).body
    console.log(`  ${now.carrier} ${now.trackingNumber.padEnd(24)} ${now.status.padEnd(20)} seq ${now.lastSeq}  at ${now.lastEventAt}`)
  }
  await Bun.sleep(700)
}

const late = shipments[0]
const lateResult = (await call('POST', '/v1/events', { events: [{ carrier: late.carrier, trackingNumber: late.trackingNumber, carrierStatus: 'transit', status: 'in_transit', occurredAt: new Date(start + 30 * 60_000).toISOString(), location: 'Kassel, DE' }] })).body.results[0]
const after = (await call('GET', `/v1/shipments/${late.id}`)).body
console.log(`\na late scan from hours ago → ${lateResult.outcome} as seq ${lateResult.seq}, projectionUpdated ${lateResult.projectionUpdated}; ${late.trackingNumber} stays ${after.status}`)
const timeline = (await call('GET', `/v1/shipments/${late.id}/events`)).body.items as any[]
console.log(`its timeline: ${timeline.map((e) => `${e.seq}:${e.carrierStatus}`).join(' → ')}`)
console.log(`\nTry: curl -H 'authorization: Bearer ${apiKey}' '${base}/v1/shipments?limit=5'   and   curl ${base}/metrics`)

await Bun.sleep(300)
if (process.env.DEMO_EXIT === '1') stop()
else console.log('\nparcelcast keeps running; Ctrl-C stops it.')
