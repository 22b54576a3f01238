/**
 * WebSocket delivery against the real services: snapshot, live events, resume, tokens,
 * bad frames, malformed stream entries, reclaiming a dead consumer's entries, the
 * handoff race, many sockets at once, and the bound of waiting socket work.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import { createBroadcaster, FANOUT_CHANNEL, GROUP } from '../../src/delivery/broadcaster.ts'
import { createHub, type Socket } from '../../src/delivery/hub.ts'
import { createDeliveryQueries } from '../../src/delivery/queries.ts'
import { createShipmentKind } from '../../src/delivery/shipment-kind.ts'
import { createMetrics } from '../../src/metrics.ts'
import { toNormalizedEvent } from '../../src/pipeline/event.ts'
import { createProcessor } from '../../src/pipeline/processor.ts'
import { STREAM } from '../../src/pipeline/stream.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { api, testService, waitFor } from '../support/service.ts'
import { connect, type Client } from '../support/ws.ts'

// Real services, real outages: more than bun's 5 s default, also under a plain `bun test`.
setDefaultTimeout(30_000)

let db: TestDb
let service: ReturnType<typeof testService>
let call: ReturnType<typeof api>
let url: string

beforeAll(async () => {
  db = await createTestDb()
  service = testService({ DATABASE_URL: db.url, RECONCILE_MS: '200', CLAIM_IDLE_MS: '300' })
  await service.start()
  call = api(service)
  url = `ws://127.0.0.1:${service.port}/v1/ws`
  await waitFor('the engine', () => service.engine.isReady)
})
afterAll(async () => {
  await service.stop()
  await db.drop()
})

let n = 0
async function shipment() {
  const tn = `WS${Date.now()}${n++}`
  await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: tn })
  return { tn, topic: `shipment:dhl:${tn}` }
}
let t0 = Date.UTC(2026, 10, 20)
const ev = (tn: string, status = 'in_transit') => ({
  carrier: 'dhl',
  trackingNumber: tn,
  carrierStatus: `S${t0}`,
  status,
  occurredAt: new Date((t0 += 60_000)).toISOString()
})
// An ingest by another process: committed and appended to the stream, but not handed to this
// process's hub directly, so it reaches the sockets here only through the broadcaster.
async function ingestElsewhere(events: unknown[]) {
  const elsewhere = createProcessor({ sql: service.sql, stream: service.stream, acks: service.acks, log: service.log, metrics: service.metrics })
  const results = await elsewhere.ingest(events.map((e) => toNormalizedEvent(e)))
  expect(results.map((r) => [r.outcome, r.published])).toEqual(events.map(() => ['inserted', true]))
}
async function token(topics: string[], ttlSeconds?: number) {
  return (await call('POST', '/v1/tokens', { topics, ttlSeconds })).body.token as string
}
async function client(topics: string[]): Promise<Client> {
  return connect(`${url}?token=${await token(topics)}`)
}

describe('subscribe', () => {
  test('a snapshot, then every new event once, in seq order, with the projection', async () => {
    const s = await shipment()
    await call('POST', '/v1/events', { events: [ev(s.tn, 'info_received'), ev(s.tn)] })
    const c = await client([s.topic])
    c.send({ op: 'subscribe', topic: s.topic })
    const snap = await c.next()
    expect(snap).toMatchObject({ type: 'snapshot', topic: s.topic, shipment: { lastSeq: 2, status: 'in_transit' }, events: [] })
    await call('POST', '/v1/events', { events: [ev(s.tn, 'out_for_delivery'), ev(s.tn, 'delivered')] })
    const a = await c.next(),
      b = await c.next()
    expect([a.type, a.topic, a.seq, a.event.seq, a.shipment.status]).toEqual(['event', s.topic, 3, 3, 'out_for_delivery'])
    expect([b.seq, b.shipment.status]).toEqual([4, 'delivered'])
    c.send({ op: 'ping' })
    expect(await c.next()).toEqual({ type: 'pong' })
    c.close()
  })

  test('with since, the snapshot carries the events after it; a reconnect misses nothing', async () => {
    const s = await shipment()
    await call('POST', '/v1/events', { events: [ev(s.tn), ev(s.tn), ev(s.tn)] })
    const first = await client([s.topic])
    first.send({ op: 'subscribe', topic: s.topic, since: 1 })
    const snap = await first.next()
    expect(snap.events.map((e: any) => e.seq)).toEqual([2, 3])
    expect(snap.shipment.lastSeq).toBe(3)
    first.close()
    await first.closed
    await call('POST', '/v1/events', { events: [ev(s.tn), ev(s.tn)] })
    const again = await client([s.topic])
    again.send({ op: 'subscribe', topic: s.topic, since: 3 })
    expect((await again.next()).events.map((e: any) => e.seq)).toEqual([4, 5])
    await call('POST', '/v1/events', { events: [ev(s.tn)] })
    expect((await again.next()).seq).toBe(6)
    again.close()
  })

  test('unsubscribe stops the events; unknown shipments and bad frames are error frames, not closes', async () => {
    const s = await shipment()
    const c = await client([s.topic, 'shipment:dhl:NOSUCHPARCEL'])
    c.send({ op: 'subscribe', topic: 'shipment:dhl:NOSUCHPARCEL' })
    expect(await c.next()).toMatchObject({ type: 'error', code: 'not_found' })
    c.send('not json')
    expect(await c.next()).toMatchObject({ type: 'error', code: 'bad_message' })
    c.send({ op: 'dance' })
    expect(await c.next()).toMatchObject({ type: 'error', code: 'bad_message' })
    c.send({ op: 'subscribe', topic: s.topic, since: -1 })
    expect(await c.next()).toMatchObject({ type: 'error', code: 'bad_message' })
    c.send({ op: 'subscribe', topic: s.topic })
    expect((await c.next()).type).toBe('snapshot')
    c.send({ op: 'subscribe', topic: s.topic })
    expect(await c.next()).toMatchObject({ type: 'error', code: 'already_subscribed' })
    c.send({ op: 'unsubscribe', topic: s.topic })
    await call('POST', '/v1/events', { events: [ev(s.tn)] })
    c.send({ op: 'ping' })
    expect(await c.next()).toEqual({ type: 'pong' })
    expect(c.frames.some((f) => f.type === 'event')).toBe(false)
    c.close()
  })
})

describe('many sockets at once', () => {
  test('sockets that close right after subscribing, while their frames wait their turn, leave nothing behind', async () => {
    const s = await shipment()
    const tok = await token([s.topic])
    const before = service.metrics.registry.getSingleMetric('parcelcast_ws_connections') as unknown as { get(): Promise<{ values: { value: number }[] }> }
    const open = async () => (await before.get()).values[0]?.value ?? 0
    const baseline = await open()
    // 300 at once: their token checks and frames queue behind one another (slices.ts), and each
    // closes before its subscribe has run.
    await Promise.all(
      Array.from(
        { length: 300 },
        () =>
          new Promise<void>((resolve, reject) => {
            const ws = new WebSocket(`${url}?token=${tok}`)
            ws.onopen = () => {
              ws.send(JSON.stringify({ op: 'subscribe', topic: s.topic }))
              ws.close()
            }
            ws.onclose = () => resolve()
            ws.onerror = () => reject(new Error('socket error'))
          })
      )
    )
    await waitFor('the server saw every close', async () => (await open()) === baseline)
    await Bun.sleep(200)
    await service.hub.sequencer.idle()
    expect(service.hub.sequencer.topics().has(s.topic)).toBe(false)
  })

  test("one socket's frames take effect in the order they were sent, whatever waits ahead of them", async () => {
    const a = await shipment(),
      b = await shipment()
    const c = await client([a.topic, b.topic])
    // Sent back to back: subscribe a, unsubscribe a, subscribe b, ping, unsubscribe a again.
    c.send({ op: 'subscribe', topic: a.topic })
    c.send({ op: 'unsubscribe', topic: a.topic })
    c.send({ op: 'subscribe', topic: b.topic })
    c.send({ op: 'ping' })
    c.send({ op: 'unsubscribe', topic: a.topic })
    // A snapshot goes out once its read is back, so it may come after later answers; what must
    // hold is the effect of the order: a was left before its snapshot (none comes), the second
    // unsubscribe finds nothing, b is subscribed.
    const frames = [await c.next(), await c.next(), await c.next()]
    expect(frames.map((f) => `${f.type}:${f.topic === a.topic ? 'a' : f.topic === b.topic ? 'b' : ''}:${f.code ?? ''}`).sort()).toEqual([
      'error:a:not_subscribed',
      'pong::',
      'snapshot:b:'
    ])
    await call('POST', '/v1/events', { events: [ev(a.tn), ev(b.tn)] })
    const e = await c.next()
    expect([e.type, e.topic]).toEqual(['event', b.topic])
    c.send({ op: 'ping' })
    expect(await c.next()).toEqual({ type: 'pong' })
    expect(c.frames.some((f) => f.topic === a.topic && f.type !== 'error')).toBe(false)
    c.close()
  })
  test('subscribe, unsubscribe, subscribe again at once: one snapshot, then every event once', async () => {
    const a = await shipment()
    await call('POST', '/v1/events', { events: [ev(a.tn)] })
    const c = await client([a.topic])
    c.send({ op: 'subscribe', topic: a.topic })
    c.send({ op: 'unsubscribe', topic: a.topic })
    c.send({ op: 'subscribe', topic: a.topic })
    const snap = await c.next()
    expect(snap).toMatchObject({ type: 'snapshot', topic: a.topic, shipment: { lastSeq: 1 } })
    await call('POST', '/v1/events', { events: [ev(a.tn), ev(a.tn)] })
    await c.until((f) => f.type === 'event' && f.seq === 3)
    c.send({ op: 'ping' })
    await c.until((f) => f.type === 'pong')
    expect(c.frames.map((f) => (f.type === 'event' ? f.seq : f.type))).toEqual(['snapshot', 2, 3, 'pong'])
    c.close()
  })
})

describe('tokens on the socket', () => {
  test('a plain GET on the WebSocket endpoint is 426 with an error body', async () => {
    const res = await fetch(`http://127.0.0.1:${service.port}/v1/ws?token=x`)
    expect(res.status).toBe(426)
    expect(((await res.json()) as any).error.code).toBe('upgrade_required')
  })

  test('a forbidden topic is an error frame and the socket stays open', async () => {
    const s = await shipment(),
      other = await shipment()
    const c = await client([s.topic])
    c.send({ op: 'subscribe', topic: other.topic })
    expect(await c.next()).toMatchObject({ type: 'error', code: 'forbidden_topic', topic: other.topic })
    c.send({ op: 'ping' })
    expect(await c.next()).toEqual({ type: 'pong' })
    c.close()
  })

  test('shipment:* lets a dashboard subscribe to any shipment', async () => {
    const s = await shipment()
    const c = await client(['shipment:*'])
    c.send({ op: 'subscribe', topic: s.topic })
    expect((await c.next()).type).toBe('snapshot')
    c.close()
  })

  test('a bad, missing or expired token closes the socket with the reason', async () => {
    for (const [q, code] of [
      ['?token=garbage', 'token_invalid'],
      ['', 'token_invalid']
    ] as const) {
      const c = await connect(`${url}${q}`)
      expect(await c.next()).toMatchObject({ type: 'error', code })
      expect(await c.closed).toEqual({ code: 4401, reason: code })
    }
    const { SignJWT } = await import('jose')
    const now = Math.floor(Date.now() / 1000)
    const expired = await new SignJWT({ topics: ['shipment:*'] })
      .setProtectedHeader({ alg: 'HS256' })
      .setIssuer('parcelcast')
      .setAudience('parcelcast:ws')
      .setIssuedAt(now - 100)
      .setExpirationTime(now - 10)
      .sign(new TextEncoder().encode(service.config.TOKEN_SECRET))
    const c = await connect(`${url}?token=${expired}`)
    expect(await c.next()).toMatchObject({ type: 'error', code: 'token_expired' })
    expect((await c.closed).code).toBe(4401)
  })
})

// A new shipment and a socket subscribed to it, its snapshot read.
async function subscribedToNewShipment() {
  const s = await shipment()
  const c = await client([s.topic])
  c.send({ op: 'subscribe', topic: s.topic })
  expect((await c.next()).type).toBe('snapshot')
  return { s, c }
}

describe('the stream', () => {
  test('a malformed entry is acknowledged at once and does not block the group', async () => {
    const { s, c } = await subscribedToNewShipment()
    const engine = service.engine
    await engine.append(
      STREAM,
      [
        { topic: s.topic, junk: 'yes' },
        { topic: s.topic, shipmentId: 'x', seq: '1', data: '{not json' },
        { topic: s.topic, seq: '1', data: '{"event":{"seq":2},"shipment":{}}' }
      ],
      { maxLen: 1000 }
    )
    await ingestElsewhere([ev(s.tn)])
    expect((await c.next()).seq).toBe(1)
    await waitFor('malformed entries acknowledged', async () => (await engine.groupLag(STREAM, GROUP)).pending === 0)
    expect(await service.metrics.registry.getSingleMetricAsString('parcelcast_broadcaster_malformed_total')).toContain(
      'parcelcast_broadcaster_malformed_total{group="ws-broadcaster"} 3'
    )
    c.close()
  })

  test('entries a dead consumer left pending are reclaimed and delivered', async () => {
    const { s, c } = await subscribedToNewShipment()
    await service.broadcaster.stop()
    await ingestElsewhere([ev(s.tn)])
    // With the broadcaster stopped, readiness shows the entry waiting unread.
    const ready = await call('GET', '/readyz')
    expect(ready.body.broadcaster.unread).toBeGreaterThanOrEqual(1)
    expect(ready.body.broadcaster.unreadAgeMs).toBeGreaterThanOrEqual(0)
    // A consumer reads the entry and dies before acknowledging it.
    const read = await service.engine.readGroup(STREAM, GROUP, 'dead-consumer', { count: 100, blockMs: 0 })
    expect(read.length).toBeGreaterThan(0)
    expect((await call('GET', '/readyz')).body.broadcaster).toMatchObject({ unread: 0, pending: read.length })
    service.broadcaster.start()
    const got = await c.next(5000)
    expect(got.seq).toBe(1)
    await waitFor('nothing pending', async () => (await service.engine.groupLag(STREAM, GROUP)).pending === 0)
    c.close()
  })

  test('a broadcaster that stops cleanly takes its consumer out of the group; one a dead process left is swept by the claim pass', async () => {
    const engine = service.engine
    const names = async () => (await engine.groupConsumers(STREAM, GROUP)).map((c) => c.name)
    const entry = () => ({ topic: 'shipment:dhl:NOBODY-SUBSCRIBES', seq: '1', data: '{"event":{"seq":1},"shipment":{}}' })
    // Alone on the group for a while, so that each consumer below is handed an entry.
    await service.broadcaster.stop()
    try {
      const leaving = createBroadcaster({
        engine,
        consumer: 'leaving-consumer',
        claimIdleMs: 300,
        log: service.log,
        metrics: createMetrics({ defaults: false }),
        check: service.hub.kinds.check
      })
      leaving.start()
      await engine.append(STREAM, [entry()], { maxLen: 1000 })
      await waitFor('its consumer in the group', async () => (await names()).includes('leaving-consumer'))
      await waitFor('its entry acknowledged', async () => (await engine.groupLag(STREAM, GROUP)).pending === 0)
      await leaving.stop()
      expect(await names()).not.toContain('leaving-consumer')
      // A process that read and acknowledged an entry, then died.
      await engine.append(STREAM, [entry()], { maxLen: 1000 })
      const read = await engine.readGroup(STREAM, GROUP, 'died-consumer', { count: 10, blockMs: 0 })
      expect(read.length).toBe(1)
      await engine.publishAndAck(
        STREAM,
        GROUP,
        read.map((e) => e.id),
        FANOUT_CHANNEL,
        null
      )
      expect(await names()).toContain('died-consumer')
    } finally {
      service.broadcaster.start()
    }
    // Idle longer than 2 × CLAIM_IDLE_MS (300 ms here) and holding nothing: swept by a claim pass.
    await waitFor('the dead consumer swept', async () => !(await names()).includes('died-consumer'))
  })

  test('an event is encoded once: the frame a socket of the committing process gets and the stream entry share its JSON', async () => {
    const { s, c } = await subscribedToNewShipment()
    const encode = JSON.stringify
    let encodings = 0
    JSON.stringify = ((value: unknown, ...rest: unknown[]) => {
      if (value !== null && typeof value === 'object' && 'event' in value && 'shipment' in value) encodings++
      return (encode as (...a: unknown[]) => string).call(JSON, value, ...rest)
    }) as typeof JSON.stringify
    try {
      // Committed here: handed to this process's sockets and appended to the stream.
      const results = await service.processor.ingest([ev(s.tn), ev(s.tn)].map((e) => toNormalizedEvent(e)))
      expect(results.map((r) => [r.outcome, r.published])).toEqual([
        ['inserted', true],
        ['inserted', true]
      ])
    } finally {
      JSON.stringify = encode
    }
    expect(encodings).toBe(2)
    const frames = [await c.next(), await c.next()]
    expect(frames.map((f) => f.seq)).toEqual([1, 2])
    const entries = (await service.engine.streamRange(STREAM, 100_000)).filter((e) => e.message.topic === s.topic)
    expect(entries.map((e) => JSON.parse(e.message.data!))).toEqual(frames.map(({ event, shipment }) => ({ event, shipment })))
    c.close()
  })

  test('fan-out messages are {topic, seq, data}, whatever the kind, and any process may send them', async () => {
    const { s, c } = await subscribedToNewShipment()
    // Read the broadcaster's batch for an event ingested elsewhere, then send a batch as another process would.
    const batches: string[] = []
    const off = service.engine.subscribe(FANOUT_CHANNEL, (m) => void batches.push(m))
    await ingestElsewhere([ev(s.tn)])
    await waitFor('the fan-out batch', () => batches.length > 0)
    const [entry] = JSON.parse(batches[0]!)
    expect(Object.keys(entry).sort()).toEqual(['data', 'seq', 'topic'])
    expect(entry).toMatchObject({ topic: s.topic, seq: 1 })
    expect((await c.next()).seq).toBe(1)
    const data = JSON.parse(entry.data)
    const second = { ...entry, seq: 2, data: JSON.stringify({ ...data, event: { ...data.event, seq: 2 } }) }
    await service.engine.publish(FANOUT_CHANNEL, JSON.stringify([second]))
    expect((await c.next()).seq).toBe(2)
    off()
    c.close()
  })
})

describe('the handoff race', () => {
  test('200 clients subscribing at random moments while events flow: each sees lastSeq+1..N exactly once, in order', async () => {
    const s = await shipment()
    const clients: { c: Client; lastSeq: number }[] = []
    let ingesting = true
    const producer = (async () => {
      // Half through this process (handed to its hub directly), half as if by another one.
      for (let i = 0; ingesting; i++) {
        if (i % 2 === 0) await call('POST', '/v1/events', { events: [ev(s.tn), ev(s.tn)] })
        else await ingestElsewhere([ev(s.tn), ev(s.tn)])
        await Bun.sleep(2)
      }
    })()
    const joiners = Array.from({ length: 200 }, async (_, i) => {
      await Bun.sleep(Math.random() * 1500)
      const c = await client([s.topic])
      c.send({ op: 'subscribe', topic: s.topic, ...(i % 3 === 0 ? { since: 0 } : {}) })
      const snap = await c.next()
      expect(snap.type).toBe('snapshot')
      clients.push({ c, lastSeq: snap.shipment.lastSeq })
    })
    await Promise.all(joiners)
    ingesting = false
    await producer
    const [{ last }] = (await db.sql`select last_seq as last from shipments where tracking_number = ${s.tn}`) as any
    for (const { c, lastSeq } of clients) {
      await waitFor(
        `client at ${lastSeq} to reach ${last}`,
        () => c.frames.filter((f) => f.type === 'event').at(-1)?.seq === last || (lastSeq === last && true),
        10_000
      )
      const seqs = c.frames.filter((f) => f.type === 'event').map((f) => f.seq)
      expect(seqs).toEqual(Array.from({ length: last - lastSeq }, (_, i) => lastSeq + i + 1))
      c.close()
    }
  }, 60_000)
})

// The hub past its bound of waiting socket work (slices.ts): what is refused is answered, never
// dropped silently and never run out of order. A hub of its own, with a bound of 3, and sockets
// that record what they are sent.
function socket() {
  const sent: Record<string, unknown>[] = []
  const closes: [number | undefined, string | undefined][] = []
  const ws: Socket = {
    send: (data) => (sent.push(JSON.parse(data)), data.length),
    subscribe: () => {},
    unsubscribe: () => {},
    close: (code, reason) => void closes.push([code, reason])
  }
  return { ws, sent, closes }
}

describe('past the bound of waiting socket work', () => {
  test('past the bound, a connecting socket is told unavailable and closed with 1013; the ones before it are served', async () => {
    const hub = createHub({
      kinds: [createShipmentKind(createDeliveryQueries(service.sql))],
      engine: service.engine,
      tokens: service.tokens,
      log: service.log,
      metrics: service.metrics,
      reconcileMs: 60_000,
      maxQueuedSocketTasks: 3
    })
    const [s] = await db.sql<
      { tracking_number: string }[]
    >`insert into shipments (carrier, tracking_number) values ('dhl', ${`BUSY${Date.now()}`}) returning tracking_number`
    const topic = `shipment:dhl:${s!.tracking_number}`
    const { token } = await service.tokens.mint({ sub: null, topics: [topic], ttlSeconds: 60 })
    // Five sockets connect in one turn of the event loop: three token checks fit, two do not.
    const socks = Array.from({ length: 5 }, () => socket())
    for (const k of socks) hub.open(k.ws, token)
    const answers = socks.map((k) => hub.message(k.ws, JSON.stringify({ op: 'subscribe', topic })))
    await Promise.all(answers)
    for (const k of socks.slice(0, 3)) {
      expect(k.closes).toEqual([])
      expect(k.sent.map((f) => f.type)).toEqual(['snapshot'])
    }
    for (const k of socks.slice(3)) {
      expect(k.closes).toEqual([[1013, 'unavailable']])
      expect(k.sent).toEqual([{ type: 'error', code: 'unavailable', message: expect.stringContaining('busy') }])
    }
    for (const k of socks) hub.close(k.ws)
    await hub.sequencer.idle()
    expect(hub.sequencer.topics().size).toBe(0)
  })

  test('past the bound, a frame is answered unavailable and the socket stays open', async () => {
    const hub = createHub({
      kinds: [createShipmentKind(createDeliveryQueries(service.sql))],
      engine: service.engine,
      tokens: service.tokens,
      log: service.log,
      metrics: service.metrics,
      reconcileMs: 60_000,
      maxQueuedSocketTasks: 3
    })
    const { token } = await service.tokens.mint({ sub: null, topics: ['shipment:*'], ttlSeconds: 60 })
    const k = socket()
    hub.open(k.ws, token)
    // Five pings at once: three wait for a slice, two are refused.
    await Promise.all(Array.from({ length: 5 }, () => hub.message(k.ws, JSON.stringify({ op: 'ping' }))))
    expect(k.sent.filter((f) => f.type === 'pong').length).toBe(3)
    expect(k.sent.filter((f) => f.type === 'error' && f.code === 'unavailable').length).toBe(2)
    expect(k.closes).toEqual([])
    // Once the queue has drained, frames are served again.
    await hub.message(k.ws, JSON.stringify({ op: 'ping' }))
    expect(k.sent.at(-1)).toEqual({ type: 'pong' })
    hub.close(k.ws)
  })
})
