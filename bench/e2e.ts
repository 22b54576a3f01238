/**
 * `bun run bench:e2e` — from the HTTP ingest request to the WebSocket frame, end to end:
 * PostgreSQL commit, Redis stream, broadcaster, fan-out, sequencer, Bun topics.
 *
 *   (a) 1,000 subscribers on 1,000 distinct shipments, 1,000 events/s for 10 s, one request of
 *       10 events every 10 ms; once more with each event in a request of its own (1,000
 *       requests/s, the shape of webhook traffic); once with the sockets on a second process
 *       (every event crosses Redis: stream, broadcaster, pub/sub) — the sockets are otherwise on
 *       the process that ingests, whose commits reach them directly;
 *   (b) 10,000 subscribers on 1,000 shipments, 1,000 events/s for 10 s, and server RSS per
 *       idle subscribed connection;
 *   (c) one event to 5,000 subscribers of one shipment: time until the last socket has it,
 *       median of 10 — against a bare Bun topic server (no database, no Redis) sending frames of
 *       the same size, in alternating rounds of the same run; then, as a control of the method,
 *       two fresh bare servers measured against each other the same way (what one run's ratio
 *       is worth: identical servers differ by this much);
 *   (d) a reconnect storm: 5,000 more sockets, each with its own token, subscribing at once
 *       while (a)'s 1,000 take its load — how long until all are served, and what it costs the
 *       others (bench/e2e-storm.ts) — on parcelcast and on the bare server;
 *   and (a) against that bare server, both request shapes: the floor this machine and load
 *   generator allow.
 *
 * parcelcast and the bare server each run in their own process, the load generator
 * (bench/e2e-load.ts) in another; loopback only; every run is bounded. (a) and (b) are measured
 * after 2 s of the same load, whose p99 is reported apart. Beside each row, what the disk under
 * PostgreSQL's data directory did meanwhile (diskSampler): on a shared VM a stalled cache flush
 * stalls every commit, and the row's tail with it.
 */
import { diskSampler, freshDatabase, lines, machine, redisUrl, rss, startServer, writeSection, type DiskReport } from './support.ts'

const ONLY = process.env.BENCH_ONLY
if (ONLY && !['a', 'fanout', 'storm'].includes(ONLY)) {
  console.error(`BENCH_ONLY=${ONLY}: expected a, fanout or storm`)
  process.exit(2)
}

const SHIPMENTS = 1000
const apiKey = 'bench-key-000000'
const db = await freshDatabase('parcelcast_bench_e2e')
await db.sql`insert into shipments (carrier, tracking_number) select 'dhl', 'E2E' || lpad(g::text, 6, '0') from generate_series(1, ${SHIPMENTS}) g`
await db.sql`insert into shipments (carrier, tracking_number) values ('dhl', 'FANOUT1')`
const STORM = 5000
await db.sql`insert into shipments (carrier, tracking_number) select 'dhl', 'STORM' || lpad(g::text, 6, '0') from generate_series(1, ${STORM}) g`
await db.sql`analyze`
const tns = Array.from({ length: SHIPMENTS }, (_, i) => `E2E${String(i + 1).padStart(6, '0')}`)
const stormTns = Array.from({ length: STORM }, (_, i) => `STORM${String(i + 1).padStart(6, '0')}`)

const disk = await diskSampler(db.sql)

async function load(spec: Record<string, unknown>, onConnected?: () => Promise<void>) {
  const sampling = await disk.start()
  const proc = Bun.spawn([process.execPath, `${import.meta.dir}/e2e-load.ts`, JSON.stringify({ apiKey, carrier: 'dhl', ...spec })], {
    stdout: 'pipe',
    stderr: 'inherit'
  })
  let result: any = null
  for await (const line of lines(proc.stdout)) {
    const m = JSON.parse(line)
    if ('connected' in m) await onConnected?.()
    else result = m
  }
  if ((await proc.exited) !== 0 || !result) throw new Error('the load generator failed')
  result.disk = await sampling.stop()
  return result
}

/**
 * (d): (a)'s load for 8 s; 3 s into it, STORM more sockets (bench/e2e-storm.ts, another process,
 * a token each) connect and subscribe all at once, as after a deploy. Returns (a)'s figures and
 * the storm's.
 */
async function storm(base: string, bare: boolean) {
  const proc = Bun.spawn(
    [process.execPath, `${import.meta.dir}/e2e-storm.ts`, JSON.stringify({ base, bare, apiKey, carrier: 'dhl', trackingNumbers: stormTns })],
    { stdin: 'pipe', stdout: 'pipe', stderr: 'inherit' }
  )
  const out = lines(proc.stdout)
  if (!('ready' in JSON.parse((await out.next()).value ?? '{}'))) throw new Error('the storm process failed')
  const others = await load(
    { mode: 'stream', bare, base, trackingNumbers: tns, subscribers: 1000, rate: 1000, seconds: 8, warmupSeconds: WARMUP },
    async () => {
      await Bun.sleep(WARMUP * 1000 + 3000)
      proc.stdin.write('go\n')
      proc.stdin.flush()
    }
  )
  const result = JSON.parse((await out.next()).value ?? '{}')
  if ((await proc.exited) !== 0 || !('allSubscribedMs' in result)) throw new Error('the storm process failed')
  return { others, allSubscribedMs: result.allSubscribedMs as number }
}

/** The bare Bun topic server (bench/bare-topic-server.ts) in a process of its own. */
async function startBare() {
  const proc = Bun.spawn([process.execPath, `${import.meta.dir}/bare-topic-server.ts`], { stdout: 'pipe', stderr: 'inherit' })
  let port = 0
  for await (const line of lines(proc.stdout)) {
    port = JSON.parse(line).port
    break
  }
  return {
    url: `http://127.0.0.1:${port}`,
    async stop() {
      proc.kill()
      await proc.exited
    }
  }
}

const fanout = (base: string, baseline: string, bare = false) =>
  load({ mode: 'fanout', bare, base, baseline: { base: baseline, bare: true }, trackingNumbers: ['FANOUT1'], subscribers: 5000, rounds: 10, warmupRounds: 2 })

/** (c)'s control: two fresh bare servers against each other, the same method. */
async function fanoutControl() {
  const [x, y] = await Promise.all([startBare(), startBare()])
  try {
    return await fanout(x.url, y.url, true)
  } finally {
    await Promise.all([x.stop(), y.stop()])
  }
}

const serverEnv = {
  API_KEYS: apiKey,
  TOKEN_SECRET: 'bench-token-secret-0123456789-abcdef',
  DATABASE_URL: db.url,
  REDIS_URL: redisUrl,
  REDIS_PREFIX: 'bench-e2e:',
  LOG_LEVEL: 'warn'
}
const server = await startServer(serverEnv)
const ms = (x: number) => `${x.toFixed(2)} ms`
const WARMUP = 2

// BENCH_ONLY=a|fanout|storm: one row alone, on parcelcast and on the bare server, for quick
// comparisons while working on one of them; prints, writes nothing.
if (ONLY) {
  const bareOnly = await startBare()
  if (ONLY === 'a') {
    for (const [name, base, bare] of [
      ['parcelcast', server.url, false],
      ['bare', bareOnly.url, true]
    ] as const) {
      const r = await load({ mode: 'stream', bare, base, trackingNumbers: tns, subscribers: 1000, rate: 1000, seconds: 10, warmupSeconds: WARMUP })
      console.log(name, {
        p50: r.p50,
        p99: r.p99,
        max: r.max,
        ingestP50: r.ingestP50,
        ingestP99: r.ingestP99,
        perSecondP99: r.perSecondP99,
        received: r.received,
        expected: r.expected
      })
    }
  } else if (ONLY === 'fanout') {
    const r = await fanout(server.url, bareOnly.url)
    console.log({
      parcelcast: { median: r.median, firstMedian: r.firstMedian, all: r.all },
      bare: { median: r.baseline.median, firstMedian: r.baseline.firstMedian, all: r.baseline.all },
      ratio: r.median / r.baseline.median
    })
    const k = await fanoutControl()
    console.log({ control: { bareA: k.median, bareB: k.baseline.median, ratio: k.median / k.baseline.median } })
  } else if (ONLY === 'storm') {
    for (const [name, r] of [
      ['parcelcast', await storm(server.url, false)],
      ['bare', await storm(bareOnly.url, true)]
    ] as const) {
      console.log(name, { allSubscribedMs: r.allSubscribedMs, othersMax: r.others.max, othersPerSecondP99: r.others.perSecondP99 })
    }
  }
  await bareOnly.stop()
  await server.stop()
  await db.sql.end()
  process.exit(0)
}

console.log('(a) 1,000 subscribers, 1,000 distinct shipments, 1,000 events/s …')
const a = await load({ mode: 'stream', base: server.url, trackingNumbers: tns, subscribers: 1000, rate: 1000, seconds: 10, warmupSeconds: WARMUP })
console.log(a)

console.log('(a) again, the sockets on a second process …')
const second = await startServer({ ...serverEnv, MIGRATE_ON_BOOT: 'false' })
const a2 = await load({
  mode: 'stream',
  base: second.url,
  ingestBase: server.url,
  trackingNumbers: tns,
  subscribers: 1000,
  rate: 1000,
  seconds: 10,
  warmupSeconds: WARMUP
})
console.log(a2)
await second.stop()

console.log('(b) 10,000 subscribers, 1,000 shipments, 1,000 events/s …')
await Bun.sleep(1000)
const before = await rss(server.pid)
let after = 0
const b = await load(
  { mode: 'stream', base: server.url, trackingNumbers: tns, subscribers: 10_000, rate: 1000, seconds: 10, warmupSeconds: WARMUP, pauseAfterConnectMs: 3000 },
  async () => {
    await Bun.sleep(2500)
    after = await rss(server.pid)
  }
)
const perConn = (after - before) / 10_000
console.log(b, { rssBefore: before, rssAfter: after, perConnection: perConn })

console.log('(c) fan-out of one event to 5,000 subscribers: parcelcast and a bare Bun topic server, rounds alternating …')
const bare = await startBare()
const bareUrl = bare.url
const c = await fanout(server.url, bareUrl)
const cb = c.baseline
console.log(c)
console.log('(c) control: two fresh bare servers against each other, the same method …')
const control = await fanoutControl()
console.log(control)

// After (b), so that its heap does not blur the RSS per connection.
console.log('(a) again, each event in a request of its own (1,000 requests/s) …')
const a1 = await load({
  mode: 'stream',
  base: server.url,
  trackingNumbers: tns,
  subscribers: 1000,
  rate: 1000,
  perRequest: 1,
  seconds: 10,
  warmupSeconds: WARMUP
})
console.log(a1)

console.log(`(d) reconnect storm: ${STORM.toLocaleString('en')} sockets subscribe at once while 1,000 others take (a)'s load …`)
const d = await storm(server.url, false)
console.log(d)

await server.stop()

console.log('(a) against the bare Bun topic server: what this machine and load generator allow without a database …')
const abare = await load({ mode: 'stream', bare: true, base: bareUrl, trackingNumbers: tns, subscribers: 1000, rate: 1000, seconds: 10, warmupSeconds: WARMUP })
console.log(abare)
console.log('(a) against the bare server, each event in a request of its own …')
const abare1 = await load({
  mode: 'stream',
  bare: true,
  base: bareUrl,
  trackingNumbers: tns,
  subscribers: 1000,
  rate: 1000,
  perRequest: 1,
  seconds: 10,
  warmupSeconds: WARMUP
})
console.log(abare1)
console.log('(d) the same storm against the bare server …')
const dbare = await storm(bareUrl, true)
console.log(dbare)
await bare.stop()
await db.sql.end()

const row = (name: string, r: any, ingestLabel = '') =>
  `| ${name} | ${r.events.toLocaleString('en')} | ${r.received.toLocaleString('en')} / ${r.expected.toLocaleString('en')} | ${Math.round(r.deliveredPerSecond).toLocaleString('en')} | ${ms(r.p50)} | ${ms(r.p95)} | **${ms(r.p99)}** | ${ms(r.max)} | ${ingestLabel}${ms(r.ingestP50)} / ${ms(r.ingestP99)} | ${Math.min(...r.perSecondP99).toFixed(1)}–${Math.max(...r.perSecondP99).toFixed(1)} ms | ${ms(r.warmupP99)} | ${diskCell(r.disk)} |`
const stormRow = (name: string, r: Awaited<ReturnType<typeof storm>>) => {
  const seconds = [...r.others.perSecondP99].sort((x: number, y: number) => y - x)
  const rest = seconds.slice(1).sort((x: number, y: number) => x - y)
  return `| ${name} | **${ms(r.allSubscribedMs)}** | ${seconds[0].toFixed(1)} ms | ${ms(r.others.max)} | ${rest[Math.floor(rest.length / 2)].toFixed(1)} ms |`
}
const diskCell = (d: DiskReport | null) =>
  d ? `${d.flushMeanMs.toFixed(2)} / ${d.worstFlushWindowMs.toFixed(1)} ms (${d.slowFlushWindows} over 10 ms)` : 'n/a'
await writeSection(
  'e2e',
  `## End to end — \`bun run bench:e2e\`

Run on ${new Date().toISOString().slice(0, 10)}: ${machine()}. parcelcast, the load generator and (for the
baseline) a bare Bun topic server each in their own process, on loopback. 1,000 events/s is sent as one request
of 10 events every 10 ms, or, where the row says so, as 1,000 single-event requests a second (10 every 10 ms,
all at once). Latency runs from just before the
\`POST /v1/events\` request to the WebSocket frame's arrival in the load generator (same clock). When the
sockets are on the process that ingests, its commits reach them straight from the processor (the copy that
crosses Redis follows and is dropped by seq); on another process, every event goes PostgreSQL commit → Redis
stream → broadcaster → pub/sub → per-topic sequencer. Each row is measured after ${WARMUP} s of the same load
(a fresh server compiles its code and each pooled PostgreSQL connection prepares its statements); that
warm-up's own p99 is the next-to-last column, and its frames count in "received / expected". The last column is
what the disk under PostgreSQL's data directory (${disk.device ?? 'not found'}) did over the whole row, from the kernel's
counters (\`/proc/diskstats\`, read every 50 ms, no I/O added): the mean time of a cache flush, and the mean
of the slowest 50 ms window, a lower bound for the slowest single flush, and how many windows had a mean
flush over 10 ms. Every commit waits for a flush.

| scenario | events measured | frames received / expected | frames/s | p50 | p95 | p99 | max | the ingest request alone: p50 / p99 | p99 of each second: lowest–highest | warm-up p99 | disk flush: mean / slowest ${disk.device ? '50 ms window' : 'window'} |
|---|---|---|---|---|---|---|---|---|---|---|---|
${row('(a) 1,000 subscribers, 1,000 shipments, 1,000 events/s, 10 s', a)}
${row('(a) the same, each event in a request of its own: 1,000 requests/s', a1)}
${row('(a) the same (10 events a request), sockets on a second process', a2)}
${row('(b) 10,000 subscribers, 1,000 shipments, 1,000 events/s, 10 s', b)}
${row('(a) against a bare Bun topic server (no database, no Redis), same run', abare, 'publish request: ')}
${row('(a) against the bare server, each event in a request of its own', abare1, 'publish request: ')}

Server RSS with 10,000 idle subscribed connections: ${(before / 2 ** 20).toFixed(0)} MiB before, ${(after / 2 ** 20).toFixed(0)} MiB after:
**${(perConn / 1024).toFixed(1)} KiB per connection** (RSS delta / connections; includes each connection's hub state).

Fan-out of one event to 5,000 subscribers of one shipment, until the last socket has it: 10 rounds on each
server after 2 unmeasured ones, the rounds alternating between parcelcast and the bare server (each with its
own 5,000 sockets, held by one load generator), so that both see the same state of the machine. The bare
server publishes each event in a frame of parcelcast's shape and size.

| server | last socket: median | min | max | first socket: median |
|---|---|---|---|---|
| parcelcast (ingest → commit → fan-out → sockets) | **${ms(c.median)}** | ${ms(c.min)} | ${ms(c.max)} | ${ms(c.firstMedian)} |
| bare Bun topic server (publish → sockets), same run | **${ms(cb.median)}** | ${ms(cb.min)} | ${ms(cb.max)} | ${ms(cb.firstMedian)} |
| ratio | **${(c.median / cb.median).toFixed(2)}×** | | | |
| control, same run: bare server A / bare server B, both fresh, the same method | ${ms(control.median)} / ${ms(control.baseline.median)} = **${(control.median / control.baseline.median).toFixed(2)}×** | | | |

The control row is what one run's ratio is worth on this machine: two identical servers, measured the
same way, are rarely 1.00× apart (the spread over many runs is under "What the end-to-end figures say").

Reconnect storm (d): (a)'s load (1,000 subscribers, 1,000 events/s) for 8 s after 2 s of warm-up; 3 s into
it ${STORM.toLocaleString('en')} more sockets, held by another load process, each with a token of its own, connect and
subscribe to ${STORM.toLocaleString('en')} other shipments all at once, as after a deploy. What the storm costs the sockets already
there is the p99 of the second it falls in; on the bare server the same storm with no tokens and no snapshot.

| server | the storm: last of ${STORM.toLocaleString('en')} sockets served | the 1,000 others: p99 of the worst second | … their worst event | … p99 of the other seconds: median |
|---|---|---|---|---|
${stormRow('parcelcast (token check, shipment read, snapshot)', d)}
${stormRow('bare Bun topic server, same run', dbare)}

Caveats: 2 cores for everything (PostgreSQL, Redis, parcelcast, the load generator, whose 5,000–10,000
client sockets parse every frame). Most of a fan-out round is the server writing 5,000 frames, one
\`send\` per socket in one pass of Bun's topic tree, during which its event loop does nothing else; the
first-socket column is what comes before that pass (for parcelcast, the request and its commit).`
)
