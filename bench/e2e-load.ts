/**
 * The load generator for `bench:e2e`, run as its own process. It opens WebSocket clients,
 * subscribes them, ingests at a fixed rate, and measures ingest-request → WebSocket receipt.
 * Every loop here is bounded by a count and a deadline. Prints one JSON line of results.
 *
 * Stream mode sends every 10 ms a tick's share of the rate, in one request or (`perRequest`) in
 * several at once. It first runs `warmupSeconds` of the same load unmeasured (a fresh server JITs its
 * code and each pooled PostgreSQL connection prepares its statements), reporting that part's
 * p99 on its own, then measures `seconds`; it also reports the p99 of every measured second.
 *
 * Fan-out mode with a `baseline` holds `subscribers` sockets on each server and alternates the
 * rounds between them (which goes first flips every round), so that both are measured under
 * the same machine conditions: on a shared VM the speed drifts by 10–20 % within a minute.
 *
 *   bun bench/e2e-load.ts '<json spec>'
 */
import * as hdr from 'hdr-histogram-js'

interface Target {
  base: string // http://127.0.0.1:port
  bare?: boolean // the bare Bun topic server (bench/bare-topic-server.ts), not parcelcast
  ingestBase?: string // stream: POST events to another process than the one the sockets are on
}

interface Spec extends Target {
  mode: 'stream' | 'fanout'
  apiKey: string
  carrier: string
  trackingNumbers: string[] // one per shipment
  subscribers: number // spread round-robin over trackingNumbers (per target in fan-out mode)
  rate?: number // events/s (stream)
  perRequest?: number // stream: events per POST (default: one request per 10 ms tick with all its events)
  seconds?: number // stream duration
  rounds?: number // fanout: events, one at a time (per target)
  warmupRounds?: number // fanout: rounds before the measured ones, not measured
  baseline?: Target // fanout: a second server, measured in alternating rounds
  pauseAfterConnectMs?: number
  warmupSeconds?: number // stream: the same load first, not measured
}

const spec = JSON.parse(process.argv[2]!) as Spec
const histogram = () => hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
const h = histogram()
const hPost = histogram()
const hWarm = histogram()
const sentAt = new Map<string, number>() // marker → performance.now()
const perSecond: number[][] = [] // measured latencies (ms) by second of sending
let measureFrom = Infinity // performance.now() at which measuring starts
let received = 0
let expected = 0
const firstArrival = new Map<string, number>() // fanout: marker → time the first socket got it
const lastArrival = new Map<string, number>() // … and the last
const arrivals = new Map<string, number>()

async function token(base: string, topics: string[]) {
  const r = await fetch(`${base}/v1/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${spec.apiKey}`, 'content-type': 'application/json' },
    body: JSON.stringify({ topics, ttlSeconds: 3600 })
  })
  return ((await r.json()) as { token: string }).token
}

function onFrame(data: string) {
  const f = JSON.parse(data)
  if (f.type !== 'event') return
  const marker: string = f.event.description
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
    if (!arrivals.has(marker)) firstArrival.set(marker, now)
    arrivals.set(marker, (arrivals.get(marker) ?? 0) + 1)
    lastArrival.set(marker, now)
  }
}

// Connect and subscribe, 200 at a time.
const sockets: WebSocket[] = []
async function connect(target: Target, count: number) {
  const wsBase = target.base.replace('http', 'ws')
  const tok = target.bare ? '' : await token(target.base, ['shipment:*'])
  for (let i = 0; i < count; i += 200) {
    await Promise.all(
      Array.from({ length: Math.min(200, count - i) }, (_, k) => {
        const tn = spec.trackingNumbers[(i + k) % spec.trackingNumbers.length]!
        return new Promise<void>((resolve, reject) => {
          const ws = new WebSocket(target.bare ? `${wsBase}/ws` : `${wsBase}/v1/ws?token=${tok}`)
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
}
await connect(spec, spec.subscribers)
if (spec.mode === 'fanout' && spec.baseline) await connect(spec.baseline, spec.subscribers)
process.stdout.write(JSON.stringify({ connected: sockets.length }) + '\n')
if (spec.pauseAfterConnectMs) await Bun.sleep(spec.pauseAfterConnectMs)

// The same event body goes to both kinds of server: the bare one publishes it in a frame of
// parcelcast's shape, so both send (and the clients parse) frames of the same size.
async function ingest(target: Target, events: { tn: string; marker: string }[]) {
  const now = performance.now()
  for (const e of events) sentAt.set(e.marker, now)
  const body = {
    events: events.map((e) => ({
      carrier: spec.carrier,
      trackingNumber: e.tn,
      carrierStatus: 'S',
      status: 'in_transit',
      occurredAt: new Date().toISOString(),
      description: e.marker
    }))
  }
  const r = target.bare
    ? await fetch(`${target.base}/publish`, { method: 'POST', body: JSON.stringify(body) })
    : await fetch(`${target.ingestBase ?? target.base}/v1/events`, {
        method: 'POST',
        headers: { authorization: `Bearer ${spec.apiKey}`, 'content-type': 'application/json' },
        body: JSON.stringify(body)
      })
  if (!r.ok) throw new Error(`${target.bare ? 'publish' : 'ingest'}: HTTP ${r.status}`)
  await r.text()
  if (now >= measureFrom) hPost.recordValue(Math.max(1, Math.round((performance.now() - now) * 1000)))
}

const subscribersPer = (tn: string) =>
  Math.floor(spec.subscribers / spec.trackingNumbers.length) + (spec.trackingNumbers.indexOf(tn) < spec.subscribers % spec.trackingNumbers.length ? 1 : 0)

if (spec.mode === 'stream') {
  // Ticks of 10 ms, each ingesting rate/100 events on consecutive shipments.
  const perTick = Math.max(1, Math.round(spec.rate! / 100))
  // Events per request: by default a tick's events go in one request; 1 sends each on its own.
  const perRequest = Math.min(perTick, Math.max(1, spec.perRequest ?? perTick))
  let n = 0
  const inflight: Promise<void>[] = []
  const run = async (seconds: number) => {
    const start = performance.now()
    for (let tick = 0; tick < Math.round(seconds * 100); tick++) {
      for (let r = 0; r < perTick / perRequest; r++) {
        const events = Array.from({ length: perRequest }, () => {
          const tn = spec.trackingNumbers[n % spec.trackingNumbers.length]!
          expected += subscribersPer(tn)
          return { tn, marker: `m${n++}` }
        })
        inflight.push(ingest(spec, events))
      }
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
  console.log(
    JSON.stringify({
      events: n - warmupEvents,
      warmupEvents,
      sendSeconds,
      expected: expected,
      received,
      measured: h.totalCount,
      deliveredPerSecond: (received - receivedBefore) / seconds,
      p50: us(50),
      p95: us(95),
      p99: us(99),
      max: h.maxValue / 1000,
      ingestP50: hPost.getValueAtPercentile(50) / 1000,
      ingestP99: hPost.getValueAtPercentile(99) / 1000,
      warmupP99: hWarm.getValueAtPercentile(99) / 1000,
      perSecondP99: perSecond.map((v) => Math.round(p99(v) * 10) / 10)
    })
  )
} else {
  const tn = spec.trackingNumbers[0]!
  const targets = spec.baseline ? [spec, spec.baseline] : [spec]
  const times = targets.map(() => [] as number[])
  const firsts = targets.map(() => [] as number[])
  let n = 0
  // One event to every subscriber of one target; the time until the last socket has it.
  const round = async (target: Target) => {
    const marker = `f${n++}-${Date.now()}`
    await ingest(target, [{ tn, marker }])
    const deadline = performance.now() + 10_000
    while ((arrivals.get(marker) ?? 0) < spec.subscribers && performance.now() < deadline) await Bun.sleep(1)
    if ((arrivals.get(marker) ?? 0) < spec.subscribers)
      throw new Error(`round ${marker}: ${arrivals.get(marker) ?? 0} of ${spec.subscribers} sockets served in 10 s`)
    const t = { last: lastArrival.get(marker)! - sentAt.get(marker)!, first: firstArrival.get(marker)! - sentAt.get(marker)! }
    await Bun.sleep(200)
    return t
  }
  for (let r = 0; r < (spec.warmupRounds ?? 0); r++) for (const target of targets) await round(target)
  for (let r = 0; r < spec.rounds!; r++) {
    const order = r % 2 === 0 ? targets.map((_, i) => i) : targets.map((_, i) => i).reverse()
    for (const i of order) {
      const t = await round(targets[i]!)
      times[i]!.push(t.last)
      firsts[i]!.push(t.first)
    }
  }
  // The median of an even count is the mean of the middle two.
  const median = (v: number[]) => {
    const sorted = [...v].sort((a, b) => a - b)
    const mid = sorted.length / 2
    return sorted.length % 2 ? sorted[Math.floor(mid)]! : (sorted[mid - 1]! + sorted[mid]!) / 2
  }
  const summary = (i: number) => ({
    rounds: times[i]!.length,
    median: median(times[i]!),
    min: Math.min(...times[i]!),
    max: Math.max(...times[i]!),
    firstMedian: median(firsts[i]!),
    all: times[i]!.map((t) => Math.round(t * 10) / 10)
  })
  console.log(JSON.stringify(spec.baseline ? { ...summary(0), baseline: summary(1) } : summary(0)))
}
for (const ws of sockets) ws.close()
process.exit(0)
