/**
 * The hub past its bound of waiting socket work (slices.ts): what is refused is answered, never
 * dropped silently and never run out of order. A hub of its own, with a bound of 3, on the real
 * PostgreSQL and Redis, and sockets that record what they are sent.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from 'bun:test'
import { createHub, type Socket } from '../../src/delivery/hub.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { testService, waitFor } from '../support/service.ts'

setDefaultTimeout(30_000)

let db: TestDb
let service: ReturnType<typeof testService>
beforeAll(async () => {
  db = await createTestDb()
  service = testService({ DATABASE_URL: db.url })
  await waitFor('redis', () => service.redis.isReady)
})
afterAll(async () => {
  await service.stop()
  await db.drop()
})

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

test('past the bound, a connecting socket is told unavailable and closed with 1013; the ones before it are served', async () => {
  const hub = createHub({ sql: service.sql, subscriber: service.redis, prefix: service.config.REDIS_PREFIX, tokens: service.tokens, log: service.log, metrics: service.metrics, reconcileMs: 60_000, maxQueuedSocketTasks: 3 })
  const [s] = await db.sql<{ tracking_number: string }[]>`insert into shipments (carrier, tracking_number) values ('dhl', ${`BUSY${Date.now()}`}) returning tracking_number`
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
  const hub = createHub({ sql: service.sql, subscriber: service.redis, prefix: service.config.REDIS_PREFIX, tokens: service.tokens, log: service.log, metrics: service.metrics, reconcileMs: 60_000, maxQueuedSocketTasks: 3 })
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
