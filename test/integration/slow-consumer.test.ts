/**
 * A client that stops reading is cut off once Bun's per-socket backpressure budget is spent;
 * the others keep receiving at their usual pace, and the slow one can resume with `since`.
 */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from 'bun:test'
import { connect as tcp } from 'node:net'
import { createTestDb, type TestDb } from '../support/db.ts'
import { api, testService, waitFor } from '../support/service.ts'
import { connect } from '../support/ws.ts'

// Real services, real outages: more than bun's 5 s default, also under a plain `bun test`.
setDefaultTimeout(30_000)

let db: TestDb
let service: ReturnType<typeof testService>
beforeAll(async () => {
  db = await createTestDb()
  service = testService({ DATABASE_URL: db.url, WS_BACKPRESSURE_BYTES: '65536' })
  await service.start()
  await waitFor('the engine', () => service.engine.isReady)
})
afterAll(async () => {
  await service.stop()
  await db.drop()
})

/** A WebSocket client by hand, so that it can stop reading (pause) like a frozen browser tab. */
async function rawClient(port: number, token: string, topic: string) {
  const sock = tcp(port, '127.0.0.1')
  let received = 0
  let closed = false
  sock.on('close', () => (closed = true))
  sock.on('error', () => (closed = true))
  await new Promise<void>((resolve) => {
    sock.once('data', () => resolve())
    sock.write(
      `GET /v1/ws?token=${token} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n`
    )
  })
  sock.on('data', (d) => (received += d.length))
  const payload = Buffer.from(JSON.stringify({ op: 'subscribe', topic }))
  const mask = Buffer.from([1, 2, 3, 4])
  const frame = Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!))])
  sock.write(frame)
  await waitFor('snapshot', () => received > 0)
  sock.pause()
  return {
    get closed() {
      return closed
    },
    resume: () => sock.resume(),
    destroy: () => sock.destroy()
  }
}

test('a client that does not read is cut off; the others keep their pace', async () => {
  const call = api(service)
  const tn = 'SLOW1'
  await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: tn })
  const topic = `shipment:dhl:${tn}`
  const token = (await call('POST', '/v1/tokens', { topics: [topic] })).body.token
  const slow = await rawClient(service.port, token, topic)
  const good = await connect(`ws://127.0.0.1:${service.port}/v1/ws?token=${token}`)
  good.send({ op: 'subscribe', topic })
  await good.next()

  const description = 'x'.repeat(1000)
  let t = Date.UTC(2026, 10, 22)
  const batch = () =>
    Array.from({ length: 1000 }, () => ({
      carrier: 'dhl',
      trackingNumber: tn,
      carrierStatus: 'S',
      occurredAt: new Date((t += 1000)).toISOString(),
      description
    }))
  // About 1.4 KB per frame, sent in bursts of 8,000: the kernel's socket buffers fill first,
  // then Bun queues past WS_BACKPRESSURE_BYTES and closes the socket. Bounded at 64k events.
  let total = 0
  const connections = async () => (await service.metrics.wsConnections.get()).values[0]?.value ?? 0
  expect(await connections()).toBe(2)
  // The paused client cannot see its own close until it reads again: watch the server's count.
  for (let round = 0; round < 8 && (await connections()) === 2; round++) {
    await Promise.all(Array.from({ length: 8 }, () => call('POST', '/v1/events', { events: batch() })))
    total += 8000
    await Bun.sleep(50)
  }
  await waitFor('the slow client to be cut off', async () => (await connections()) === 1, 10_000)
  slow.resume()
  await waitFor('the slow client to see the close', () => slow.closed, 10_000)
  await waitFor('the reading client to get everything', () => good.frames.filter((f) => f.type === 'event').length >= total, 20_000)
  const seqs = good.frames.filter((f) => f.type === 'event').map((f) => f.seq)
  expect(seqs).toEqual(Array.from({ length: total }, (_, i) => i + 1))
  // And it keeps its pace: one more event reaches it promptly.
  const sent = performance.now()
  await call('POST', '/v1/events', { events: [{ carrier: 'dhl', trackingNumber: tn, carrierStatus: 'S', occurredAt: new Date((t += 1000)).toISOString() }] })
  await good.until((f) => f.seq === total + 1, 2000)
  expect(performance.now() - sent).toBeLessThan(500)
  good.close()
}, 60_000)
