/**
 * The load generator for `bench:e2e`, run as its own process. It opens WebSocket clients,
 * subscribes them, ingests at a fixed rate, and measures ingest-request → WebSocket receipt.
 * Every loop here is bounded by a count and a deadline. Prints one JSON line of results.
 *
 * Stream mode first runs `warmupSeconds` of the same load unmeasured (a fresh server JITs its
 * code and each pooled PostgreSQL connection prepares its statements), reporting that part's
 * p99 on its own, then measures `seconds`; it also reports the p99 of every measured second.
 *
 *   bun bench/e2e-load.ts '<json spec>'
 */
import * as hdr from 'hdr-histogram-js'

interface Spec {
  mode: 'stream' | 'fanout'
  base: string // http://127.0.0.1:port of parcelcast (or of the bare server for fanout-bare)
  apiKey: string
  carrier: string
  trackingNumbers: string[] // one per shipment
  subscribers: number // spread round-robin over trackingNumbers
  rate?: number // events/s (stream)
  seconds?: number // stream duration
  rounds?: number // fanout: events, one at a time
  bare?: boolean // fanout against the bare Bun topic server
  pauseAfterConnectMs?: number
  warmupSeconds?: number // stream: the same load first, not measured
  ingestBase?: string // stream: POST events to another process than the one the sockets are on
}

const spec = JSON.parse(process.argv[2]!) as Spec
const wsBase = spec.base.replace('http', 'ws')
const h = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
const hPost = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
const hWarm = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
const sentAt = new Map<string, number>() // `${tn}:${marker}` → performance.now()
const perSecond: number[][] = [] // measured latencies (ms) by second of sending
let measureFrom = Infinity // performance.now() at which measuring starts
let received = 0
let expected = 0
const lastArrival = new Map<string, number>() // fanout: marker → time the last socket got it
const arrivals = new Map<string, number>()

async function token(topics: string[]) {
  const r = await fetch(`${spec.base}/v1/tokens`, { method: 'POST', headers: { authorization: `Bearer ${spec.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify({ topics, ttlSeconds: 3600 }) })
  return ((await r.json()) as { token: string }).token
}

function onFrame(data: string) {
  const f = JSON.parse(data)
  if (f.type !== 'event' && f.type !== 'bare') return
  const marker: string = f.type === 'bare' ? f.marker : f.event.description
  const t = sentAt.get(marker)
  if (t === undefined) return
  const now = performance.now()
  received++
  if (spec.mode === 'stream') {
    const us = Math.max(1, Math.round((now - t) * 1000))
    if (t < measureFrom) return void hWarm.recordValue(us)
    h.recordValue(us)
    ;(perSecond[Math.floor((t - measureFrom) / 1000)] ??= []).push(now - t)
  } else {
    arrivals.set(marker, (arrivals.get(marker) ?? 0) + 1)
    lastArrival.set(marker, now)
  }
}

// Connect and subscribe, 200 at a time.
const sockets: WebSocket[] = []
const tok = spec.bare ? '' : await token(['shipment:*'])
for (let i = 0; i < spec.subscribers; i += 200) {
  await Promise.all(
    Array.from({ length: Math.min(200, spec.subscribers - i) }, (_, k) => {
      const tn = spec.trackingNumbers[(i + k) % spec.trackingNumbers.length]!
      return new Promise<void>((resolve, reject) => {
        const ws = new WebSocket(spec.bare ? `${wsBase}/ws` : `${wsBase}/v1/ws?token=${tok}`)
        const timer = setTimeout(() => reject(new Error('subscribe timed out')), 30_000)
        ws.onmessage = (e) => {
          const text = String(e.data)
          if (text.startsWith('{"type":"snapshot"') || text === '{"type":"subscribed"}') {
            clearTimeout(timer)
            ws.onmessage = (m) => onFrame(String(m.data))
            resolve()
          }
        }
        ws.onopen = () => ws.send(JSON.stringify({ op: 'subscribe', topic: `shipment:${spec.carrier}:${tn}` }))
        ws.onerror = () => reject(new Error('socket error'))
        sockets.push(ws)
      })
    })
  )
}
process.stdout.write(JSON.stringify({ connected: sockets.length }) + '\n')
if (spec.pauseAfterConnectMs) await Bun.sleep(spec.pauseAfterConnectMs)

async function ingest(events: { tn: string; marker: string }[]) {
  const now = performance.now()
  for (const e of events) sentAt.set(e.marker, now)
  if (spec.bare) {
    const r = await fetch(`${spec.base}/publish`, { method: 'POST', body: JSON.stringify({ events: events.map((e) => ({ topic: `shipment:${spec.carrier}:${e.tn}`, marker: e.marker })) }) })
    if (!r.ok) throw new Error(`publish: HTTP ${r.status}`)
    await r.text()
    if (now >= measureFrom) hPost.recordValue(Math.max(1, Math.round((performance.now() - now) * 1000)))
    return
  }
  const body = { events: events.map((e) => ({ carrier: spec.carrier, trackingNumber: e.tn, carrierStatus: 'S', status: 'in_transit', occurredAt: new Date().toISOString(), description: e.marker })) }
  const r = await fetch(`${spec.ingestBase ?? spec.base}/v1/events`, { method: 'POST', headers: { authorization: `Bearer ${spec.apiKey}`, 'content-type': 'application/json' }, body: JSON.stringify(body) })
  if (!r.ok) throw new Error(`ingest: HTTP ${r.status}`)
  if (now >= measureFrom) hPost.recordValue(Math.max(1, Math.round((performance.now() - now) * 1000)))
}

const subscribersPer = (tn: string) => Math.floor(spec.subscribers / spec.trackingNumbers.length) + (spec.trackingNumbers.indexOf(tn) < spec.subscribers % spec.trackingNumbers.length ? 1 : 0)

if (spec.mode === 'stream') {
  // Ticks of 10 ms, each ingesting rate/100 events on consecutive shipments.
  const perTick = Math.max(1, Math.round(spec.rate! / 100))
  let n = 0
  const inflight: Promise<void>[] = []
  const run = async (seconds: number) => {
    const start = performance.now()
    for (let tick = 0; tick < Math.round(seconds * 100); tick++) {
      const events = Array.from({ length: perTick }, () => {
        const tn = spec.trackingNumbers[n % spec.trackingNumbers.length]!
        expected += subscribersPer(tn)
        return { tn, marker: `m${n++}` }
      })
      inflight.push(ingest(events))
      const wait = start + (tick + 1) * 10 - performance.now()
      if (wait > 0) await Bun.sleep(wait)
    }
    return start
  }
  if (spec.warmupSeconds) await run(spec.warmupSeconds)
  const warmupEvents = n
  const receivedBefore = received
  measureFrom = performance.now()
  const start = await run(spec.seconds!)
  await Promise.all(inflight)
  const sendSeconds = (performance.now() - start) / 1000
  const deadline = performance.now() + 10_000
  while (received < expected && performance.now() < deadline) await Bun.sleep(20)
  const seconds = (performance.now() - start) / 1000
  const us = (p: number) => h.getValueAtPercentile(p) / 1000
  const p99 = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length * 0.99)] ?? 0
  console.log(JSON.stringify({
    events: n - warmupEvents, warmupEvents, sendSeconds, expected: expected, received, measured: h.totalCount,
    deliveredPerSecond: (received - receivedBefore) / seconds,
    p50: us(50), p95: us(95), p99: us(99), max: h.maxValue / 1000,
    ingestP50: hPost.getValueAtPercentile(50) / 1000, ingestP99: hPost.getValueAtPercentile(99) / 1000,
    warmupP99: hWarm.getValueAtPercentile(99) / 1000, perSecondP99: perSecond.map((v) => Math.round(p99(v) * 10) / 10)
  }))
} else {
  const times: number[] = []
  const tn = spec.trackingNumbers[0]!
  for (let round = 0; round < spec.rounds!; round++) {
    const marker = `f${round}-${Date.now()}`
    await ingest([{ tn, marker }])
    const deadline = performance.now() + 10_000
    while ((arrivals.get(marker) ?? 0) < spec.subscribers && performance.now() < deadline) await Bun.sleep(1)
    times.push(lastArrival.get(marker)! - sentAt.get(marker)!)
    await Bun.sleep(200)
  }
  const sorted = [...times].sort((a, b) => a - b)
  console.log(JSON.stringify({ rounds: times.length, median: sorted[Math.floor(sorted.length / 2)], min: sorted[0], max: sorted.at(-1), all: times.map((t) => Math.round(t * 10) / 10) }))
}
for (const ws of sockets) ws.close()
process.exit(0)
