/**
 * Outbound webhooks (contract §9) against real local receivers (Bun servers), with the retry
 * delays made small through the configuration: signatures checked by the official
 * `standardwebhooks` package, every retry rule, the dead-letter queue and replay, rotation,
 * filters, auto-disable and resume, and the records.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import { Webhook } from 'standardwebhooks'
import { createTestDb, type TestDb } from '../support/db.ts'
import { receiver } from '../support/receiver.ts'
import { api, capturingLog, testService, waitFor } from '../support/service.ts'

setDefaultTimeout(30_000)

const FAST = {
  WEBHOOK_ALLOW_PRIVATE: 'true',
  WEBHOOK_RETRY_BASE_MS: '20',
  WEBHOOK_RETRY_MAX_MS: '200',
  WEBHOOK_MAX_ATTEMPTS: '4',
  WEBHOOK_POLL_MS: '20',
  WEBHOOK_REBUILD_MS: '500',
  WEBHOOK_TIMEOUT_MS: '400',
  POLL_ENABLED: 'false'
}

let db: TestDb
let service: ReturnType<typeof testService>
let call: ReturnType<typeof api>
beforeAll(async () => {
  db = await createTestDb()
  service = testService({ DATABASE_URL: db.url, ...FAST })
  call = api(service)
  await service.start()
})
afterAll(async () => {
  await service.stop()
  await db.drop()
})

let t0 = Date.UTC(2026, 10, 21)
let n = 0
const ev = (tn: string, status = 'in_transit', at?: number) => ({
  carrier: 'dhl',
  trackingNumber: tn,
  carrierStatus: `S${++n}`,
  status,
  occurredAt: new Date(at ?? (t0 += 60_000)).toISOString()
})
const shipment = async (c = call) => {
  const tn = `WH${++n}X${Math.random().toString(36).slice(2, 8).toUpperCase()}`
  expect((await c('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: tn })).status).toBe(201)
  return tn
}
const endpoint = async (url: string, eventTypes = ['shipment.event'], extra: Record<string, unknown> = {}, c = call) => {
  const r = await c('POST', '/v1/webhook-endpoints', { url, eventTypes, ...extra })
  expect(r.status).toBe(201)
  return r.body as { id: string; secret: string; url: string; enabled: boolean }
}
const message = async (id: string, c = call) => (await c('GET', `/v1/webhook-messages/${id}`)).body

describe('outbound webhooks', () => {
  test('each message is a signed POST that standardwebhooks verifies; nothing is sent on creation', async () => {
    const rx = receiver()
    try {
      const ep = await endpoint(rx.url(), ['shipment.event', 'shipment.status_changed'], { description: 'orders system' })
      expect(ep.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/)
      expect(Buffer.from(ep.secret.slice(6), 'base64').length).toBeGreaterThanOrEqual(24)
      const tn = await shipment()
      expect(rx.received.length).toBe(0)
      const r = await call('POST', '/v1/events', { events: [ev(tn)] })
      expect(r.body.results[0].outcome).toBe('inserted')
      await waitFor('two messages', () => rx.received.length >= 2)
      const wh = new Webhook(ep.secret)
      const byType = new Map(rx.received.map((m) => [JSON.parse(m.body).type, m]))
      for (const m of rx.received) {
        expect(m.headers['content-type']).toBe('application/json')
        expect(m.id).toMatch(/^msg_[0-9a-f]{32}$/)
        expect(Math.abs(Number(m.headers['webhook-timestamp']) - Date.now() / 1000)).toBeLessThan(60)
        expect(wh.verify(m.body, m.headers)).toEqual(JSON.parse(m.body))
        // A tampered body fails verification: the signature covers the exact bytes.
        expect(() => wh.verify(m.body.replace('in_transit', 'delivered'), m.headers)).toThrow()
      }
      const event = JSON.parse(byType.get('shipment.event')!.body)
      expect(Object.keys(event)).toEqual(['type', 'timestamp', 'data'])
      expect(event.data).toMatchObject({
        carrier: 'dhl',
        trackingNumber: tn,
        seq: 1,
        event: { seq: 1, status: 'in_transit', carrierStatus: `S${n}` },
        shipment: { status: 'in_transit' }
      })
      const changed = JSON.parse(byType.get('shipment.status_changed')!.body)
      expect(changed.data).toMatchObject({ trackingNumber: tn, from: 'pending', to: 'in_transit', event: { seq: 1 } })
      // The receiver answers before the sender records the attempt.
      const msg = await waitFor('recorded', async () =>
        (await message(byType.get('shipment.event')!.id)).state === 'delivered' ? message(byType.get('shipment.event')!.id) : false
      )
      expect(msg).toMatchObject({
        id: byType.get('shipment.event')!.id,
        endpointId: ep.id,
        type: 'shipment.event',
        state: 'delivered',
        attempts: [{ n: 1, status: 200, error: null }]
      })
      expect(msg.payload).toEqual(event)
      expect(typeof msg.deliveredAt).toBe('string')
    } finally {
      rx.stop()
    }
  })

  test('500 twice then 200: delivered on attempt 3, one webhook-id, every attempt recorded', async () => {
    const rx = receiver((_, nth) => ({ status: nth <= 2 ? 500 : 200 }))
    const ep = await endpoint(rx.url())
    try {
      const tn = await shipment()
      await call('POST', '/v1/events', { events: [ev(tn)] })
      await waitFor('three attempts', () => rx.received.length >= 3)
      expect(new Set(rx.received.map((r) => r.id)).size).toBe(1)
      const msg = await waitFor('delivered', async () => ((await message(rx.received[0]!.id)).state === 'delivered' ? message(rx.received[0]!.id) : false))
      expect(msg.attempts.map((a: { n: number; status: number }) => [a.n, a.status])).toEqual([
        [1, 500],
        [2, 500],
        [3, 200]
      ])
      expect(msg.attempts.every((a: { at: string; ms: number }) => /Z$/.test(a.at) && a.ms >= 0)).toBe(true)
      // Each attempt is signed anew, with its own timestamp, and verifies.
      for (const r of rx.received) new Webhook(ep.secret).verify(r.body, r.headers)
      await Bun.sleep(100)
      expect(rx.received.length).toBe(3)
    } finally {
      await call('DELETE', `/v1/webhook-endpoints/${ep.id}`)
      rx.stop()
    }
  })

  test('429 with Retry-After: the next attempt waits at least that long', async () => {
    const rx = receiver((_, nth) => (nth === 1 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 200 }))
    const ep = await endpoint(rx.url())
    try {
      await call('POST', '/v1/events', { events: [ev(await shipment())] })
      await waitFor('two attempts', () => rx.received.length >= 2)
      // The retry base is 20 ms here: only Retry-After explains a second's wait.
      expect(rx.received[1]!.at - rx.received[0]!.at).toBeGreaterThanOrEqual(1000)
      const msg = await waitFor('delivered', async () => ((await message(rx.received[0]!.id)).state === 'delivered' ? message(rx.received[0]!.id) : false))
      expect(msg.attempts.map((a: { status: number }) => a.status)).toEqual([429, 200])
    } finally {
      await call('DELETE', `/v1/webhook-endpoints/${ep.id}`)
      rx.stop()
    }
  })

  test('a receiver slower than WEBHOOK_TIMEOUT_MS: the attempt times out and is retried', async () => {
    const rx = receiver((_, nth) => (nth === 1 ? { delayMs: 1500 } : { status: 204 }))
    const ep = await endpoint(rx.url())
    try {
      await call('POST', '/v1/events', { events: [ev(await shipment())] })
      await waitFor('two attempts', () => rx.received.length >= 2)
      const msg = await waitFor('delivered', async () => ((await message(rx.received[0]!.id)).state === 'delivered' ? message(rx.received[0]!.id) : false))
      expect(msg.attempts[0]).toMatchObject({ n: 1, status: null, error: 'timed out after 400 ms' })
      expect(msg.attempts[1]).toMatchObject({ n: 2, status: 204 })
    } finally {
      await call('DELETE', `/v1/webhook-endpoints/${ep.id}`)
      rx.stop()
    }
  })

  test('a connection refused is retried until WEBHOOK_MAX_ATTEMPTS, then the message is a dead letter', async () => {
    const rx = receiver()
    const url = rx.url()
    rx.stop()
    const ep = await endpoint(url)
    try {
      await call('POST', '/v1/events', { events: [ev(await shipment())] })
      const page = await waitFor('a dead letter', async () => {
        const r = await call('GET', `/v1/dlq?endpointId=${ep.id}`)
        return r.body.items.length > 0 ? r.body : false
      })
      const msg = await message(page.items[0].id)
      expect(msg.state).toBe('failed')
      expect(msg.attempts.length).toBe(4)
      expect(msg.attempts.every((a: { status: number | null; error: string }) => a.status === null && a.error.startsWith('connection failed'))).toBe(true)
      expect(typeof msg.failedAt).toBe('string')
      for (const other of ['bad', crypto.randomUUID()]) {
        const r = await call('GET', `/v1/dlq?endpointId=${other}`)
        expect(r.status).toBe(404)
        expect(r.body.error).toEqual({ code: 'not_found', message: `no webhook endpoint with id "${other}"` })
      }
    } finally {
      await call('DELETE', `/v1/webhook-endpoints/${ep.id}`)
    }
  })

  test('another 4xx or a redirect goes to the dead-letter queue at once; redirects are not followed', async () => {
    const rx = receiver((r) =>
      r.path === '/bad' ? { status: 400 } : r.path === '/moved' ? { status: 302, headers: { location: '/elsewhere' } } : { status: 200 }
    )
    const bad = await endpoint(rx.url('/bad'))
    const moved = await endpoint(rx.url('/moved'))
    try {
      await call('POST', '/v1/events', { events: [ev(await shipment())] })
      const dlq = await waitFor('two dead letters', async () => {
        const r = await call('GET', '/v1/dlq?limit=10')
        const mine = r.body.items.filter((m: { endpointId: string }) => m.endpointId === bad.id || m.endpointId === moved.id)
        return mine.length === 2 ? mine : false
      })
      for (const d of dlq) {
        const msg = await message(d.id)
        expect(msg.attempts.length).toBe(1)
      }
      expect((await message(dlq.find((d: { endpointId: string }) => d.endpointId === bad.id).id)).attempts[0]).toMatchObject({ status: 400 })
      expect((await message(dlq.find((d: { endpointId: string }) => d.endpointId === moved.id).id)).attempts[0]).toMatchObject({
        status: 302,
        error: expect.stringContaining('not followed')
      })
      expect(rx.received.some((r) => r.path === '/elsewhere')).toBe(false)
      // The endpoints stay enabled: a 4xx is about the message.
      expect((await call('GET', `/v1/webhook-endpoints/${bad.id}`)).body.enabled).toBe(true)
    } finally {
      await call('DELETE', `/v1/webhook-endpoints/${bad.id}`)
      await call('DELETE', `/v1/webhook-endpoints/${moved.id}`)
      rx.stop()
    }
  })

  test('replay: one dead letter, and all of an endpoint since a time, delivered with the same webhook-id', async () => {
    let failing = true
    const rx = receiver(() => ({ status: failing ? 422 : 200 }))
    const ep = await endpoint(rx.url())
    try {
      const tn = await shipment()
      await call('POST', '/v1/events', { events: [ev(tn), ev(tn), ev(tn)] })
      const dead = await waitFor('three dead letters', async () => {
        const r = await call('GET', `/v1/dlq?endpointId=${ep.id}&limit=2`)
        return r.body.items.length === 2 && r.body.nextCursor ? r.body : false
      })
      const rest = await call('GET', `/v1/dlq?endpointId=${ep.id}&limit=2&cursor=${dead.nextCursor}`)
      expect(rest.body.items.length).toBe(1)
      const ids = [...dead.items, ...rest.body.items].map((m: { id: string }) => m.id)
      expect(new Set(ids).size).toBe(3)
      failing = false
      // A message that is not a dead letter is not replayed.
      expect((await call('POST', '/v1/dlq/msg_nope/replay')).status).toBe(404)
      const one = await call('POST', `/v1/dlq/${ids[0]}/replay`)
      expect(one.status).toBe(202)
      await waitFor('the replayed one', async () => (await message(ids[0]!)).state === 'delivered')
      expect((await call('POST', `/v1/dlq/${ids[0]}/replay`)).status).toBe(409)
      const all = await call('POST', '/v1/dlq/replay', { endpointId: ep.id, since: '2000-01-01T00:00:00Z' })
      expect(all.status).toBe(202)
      expect(all.body).toEqual({ replayed: 2 })
      for (const id of ids) await waitFor(`${id} delivered`, async () => (await message(id)).state === 'delivered')
      // Four requests per id before (one 422 each), one more after: always the same webhook-id.
      for (const id of ids) expect(rx.received.filter((r) => r.id === id).map((r) => r.id)).toEqual([id, id])
      const m = await message(ids[1]!)
      expect(m.attempts.map((a: { round: number; status: number }) => [a.round, a.status])).toEqual([
        [1, 422],
        [2, 200]
      ])
      expect((await call('GET', `/v1/dlq?endpointId=${ep.id}`)).body.items).toEqual([])
      expect((await call('POST', '/v1/dlq/replay', { endpointId: ep.id, since: 'yesterday' })).body.error.field).toBe('since')
    } finally {
      await call('DELETE', `/v1/webhook-endpoints/${ep.id}`)
      rx.stop()
    }
  })

  test('410 Gone: a dead letter, and the endpoint is disabled at once with its reason', async () => {
    const rx = receiver(() => ({ status: 410 }))
    const ep = await endpoint(rx.url())
    try {
      await call('POST', '/v1/events', { events: [ev(await shipment())] })
      const e = await waitFor('disabled', async () => {
        const r = await call('GET', `/v1/webhook-endpoints/${ep.id}`)
        return r.body.enabled === false ? r.body : false
      })
      expect(e.disabledReason).toContain('410 Gone')
      expect(rx.received.length).toBe(1)
      const ready = await call('GET', '/readyz')
      expect(ready.body.status).toBe('degraded')
      expect(ready.body.webhooks.disabledEndpoints).toContainEqual({ id: ep.id, reason: e.disabledReason })
      expect(ready.body.webhooks.deadLettersLastHour).toBeGreaterThanOrEqual(1)
      // A disabled endpoint gets no new messages, and its dead letters are not replayed until it is resumed.
      await call('POST', '/v1/events', { events: [ev(await shipment())] })
      const dlq = (await call('GET', `/v1/dlq?endpointId=${ep.id}`)).body.items
      expect(dlq.length).toBe(1)
      expect((await call('POST', `/v1/dlq/${dlq[0].id}/replay`)).status).toBe(409)
      const metrics = await (await service.app.handle(new Request('http://local/metrics'))).text()
      expect(metrics).toContain('parcelcast_webhook_attempts_total{result="dead_letter",reason="410"} 1')
      expect(metrics).toContain('parcelcast_webhook_endpoints_disabled_total{by="gone"} 1')
    } finally {
      await call('DELETE', `/v1/webhook-endpoints/${ep.id}`)
      rx.stop()
    }
  })

  test('rotate-secret: both signatures are sent until the previous secret expires, each verifies', async () => {
    const rx = receiver()
    const ep = await endpoint(rx.url())
    try {
      const tn = await shipment()
      const rotated = await call('POST', `/v1/webhook-endpoints/${ep.id}/rotate-secret`)
      expect(rotated.status).toBe(200)
      expect(rotated.body.secret).toMatch(/^whsec_/)
      expect(rotated.body.secret).not.toBe(ep.secret)
      expect(Date.parse(rotated.body.previousSecretExpiresAt) - Date.now()).toBeGreaterThan(23 * 3600_000)
      await call('POST', '/v1/events', { events: [ev(tn)] })
      await waitFor('a message', () => rx.received.length >= 1)
      const m = rx.received[0]!
      expect(m.headers['webhook-signature']!.split(' ').length).toBe(2)
      new Webhook(rotated.body.secret).verify(m.body, m.headers)
      new Webhook(ep.secret).verify(m.body, m.headers)
      expect(() => new Webhook(`whsec_${Buffer.alloc(32, 7).toString('base64')}`).verify(m.body, m.headers)).toThrow()
      expect((await call('POST', '/v1/webhook-endpoints/00000000-0000-0000-0000-000000000000/rotate-secret')).status).toBe(404)
    } finally {
      await call('DELETE', `/v1/webhook-endpoints/${ep.id}`)
      rx.stop()
    }
  })

  test('filters: status_changed exactly when the projected status changes; event types per endpoint', async () => {
    const rx = receiver()
    const changes = await endpoint(rx.url('/changes'), ['shipment.status_changed'])
    const events = await endpoint(rx.url('/events'), ['shipment.event'])
    const notes = await endpoint(rx.url('/notes'), ['notification.created'], { userIds: ['ann', 'bob@example.com'] })
    try {
      const tn = await shipment()
      const base = Date.UTC(2026, 0, 10)
      const first = ev(tn, 'in_transit', base)
      await call('POST', '/v1/events', { events: [first] })
      await call('POST', '/v1/events', {
        events: [
          ev(tn, 'in_transit', base + 1000), // newer, same status: no change
          ev(tn, 'delivered', base - 1000), // older: kept in the timeline, projection does not move
          ev(tn, 'out_for_delivery', base + 2000), // a change
          first // a duplicate
        ]
      })
      await call('POST', '/v1/events', { events: [ev(tn, 'delivered', base + 3000)] })
      await waitFor(
        '5 events and 3 changes',
        () => rx.received.filter((r) => r.path === '/events').length >= 5 && rx.received.filter((r) => r.path === '/changes').length >= 3
      )
      await Bun.sleep(200)
      const bodies = (path: string) => rx.received.filter((r) => r.path === path).map((r) => JSON.parse(r.body))
      expect(bodies('/events').length).toBe(5)
      expect(bodies('/events').every((b) => b.type === 'shipment.event')).toBe(true)
      expect(
        bodies('/changes')
          .map((b) => [b.data.from, b.data.to])
          .sort()
      ).toEqual([
        ['in_transit', 'out_for_delivery'],
        ['out_for_delivery', 'delivered'],
        ['pending', 'in_transit']
      ])
      expect(bodies('/notes')).toEqual([])
      const listed = (await call('GET', `/v1/webhook-endpoints/${notes.id}`)).body
      expect(listed).toMatchObject({ eventTypes: ['notification.created'], userIds: ['ann', 'bob@example.com'], enabled: true })
      expect(listed.secret).toBeUndefined()
    } finally {
      for (const e of [changes, events, notes]) await call('DELETE', `/v1/webhook-endpoints/${e.id}`)
      rx.stop()
    }
  })

  test("records: an endpoint's messages by state, paged; endpoints listed, patched and deleted; bad input named", async () => {
    const rx = receiver()
    const ep = await endpoint(rx.url())
    try {
      const tn = await shipment()
      await call('POST', '/v1/events', { events: [ev(tn), ev(tn), ev(tn)] })
      await waitFor('three delivered', async () => (await call('GET', `/v1/webhook-endpoints/${ep.id}/messages?state=delivered`)).body.items.length === 3)
      const p1 = await call('GET', `/v1/webhook-endpoints/${ep.id}/messages?limit=2`)
      const p2 = await call('GET', `/v1/webhook-endpoints/${ep.id}/messages?limit=2&cursor=${p1.body.nextCursor}`)
      expect([...p1.body.items, ...p2.body.items].length).toBe(3)
      expect(p2.body.nextCursor).toBeNull()
      expect(p1.body.items[0]).toMatchObject({ endpointId: ep.id, type: 'shipment.event', state: 'delivered', attemptCount: 1 })
      expect((await call('GET', `/v1/webhook-endpoints/${ep.id}/messages?state=pending`)).body.items).toEqual([])
      expect((await call('GET', `/v1/webhook-endpoints/${ep.id}/messages?state=lost`)).body.error.field).toBe('state')
      expect((await call('GET', `/v1/webhook-endpoints/${ep.id}/messages?cursor=abc`)).body.error.field).toBe('cursor')
      expect((await call('GET', '/v1/webhook-endpoints')).body.items.map((e: { id: string }) => e.id)).toContain(ep.id)
      const patched = await call('PATCH', `/v1/webhook-endpoints/${ep.id}`, { description: 'renamed', eventTypes: ['shipment.event', 'shipment.event'] })
      expect(patched.body).toMatchObject({ description: 'renamed', eventTypes: ['shipment.event'] })
      expect((await call('POST', '/v1/webhook-endpoints', { url: rx.url(), eventTypes: ['shipment.teleported'] })).body.error.field).toBe('eventTypes[0]')
      expect((await call('POST', '/v1/webhook-endpoints', { url: rx.url(), eventTypes: [] })).status).toBe(400)
      expect(
        (await call('POST', '/v1/webhook-endpoints', { url: rx.url(), eventTypes: ['notification.created'], userIds: ['no spaces'] })).body.error.field
      ).toBe('userIds[0]')
      expect((await call('POST', '/v1/webhook-endpoints', { url: 'not a url', eventTypes: ['shipment.event'] })).body.error.field).toBe('url')
      expect((await call('GET', '/v1/webhook-endpoints/nope')).status).toBe(404)
      expect((await call('GET', '/v1/webhook-messages/msg_nope')).status).toBe(404)
      expect((await call('DELETE', `/v1/webhook-endpoints/${ep.id}`)).status).toBe(204)
      expect((await call('GET', `/v1/webhook-endpoints/${ep.id}`)).status).toBe(404)
      expect((await call('GET', '/v1/webhook-endpoints', undefined, { authorization: 'Bearer wrong-key-000' })).status).toBe(401)
    } finally {
      await call('DELETE', `/v1/webhook-endpoints/${ep.id}`)
      rx.stop()
    }
  })
})

describe('auto-disable and resume', () => {
  test('an endpoint failing for WEBHOOK_DISABLE_AFTER_MS is disabled, shows in /readyz, and PATCH {enabled:true} delivers what waited', async () => {
    const own = await createTestDb()
    const s = testService({ DATABASE_URL: own.url, ...FAST, WEBHOOK_MAX_ATTEMPTS: '50', WEBHOOK_DISABLE_AFTER_MS: '300' })
    const c = api(s)
    let up = false
    const rx = receiver(() => ({ status: up ? 200 : 503 }))
    try {
      await s.start()
      const ep = await endpoint(rx.url(), ['shipment.event'], {}, c)
      const tn = await shipment(c)
      await c('POST', '/v1/events', { events: [ev(tn), ev(tn)] })
      const e = await waitFor('disabled', async () => {
        const r = await c('GET', `/v1/webhook-endpoints/${ep.id}`)
        return r.body.enabled === false ? r.body : false
      })
      expect(e.disabledReason).toContain('every attempt failed')
      expect(e.failingSince).toMatch(/Z$/)
      const ready = (await c('GET', '/readyz')).body
      expect(ready.status).toBe('degraded')
      expect(ready.webhooks.status).toContain('disabled by failures')
      expect(ready.webhooks.disabledEndpoints.map((d: { id: string }) => d.id)).toEqual([ep.id])
      // Disabled: nothing more is sent (once an attempt claimed before the disable has ended);
      // the messages wait, pending.
      await waitFor('no attempt in flight', () => s.webhooks.sender.inFlight() === 0)
      const sent = rx.received.length
      await Bun.sleep(300)
      expect(rx.received.length).toBe(sent)
      const pending = (await c('GET', `/v1/webhook-endpoints/${ep.id}/messages?state=pending`)).body.items
      expect(pending.length).toBe(2)
      up = true
      const resumed = await c('PATCH', `/v1/webhook-endpoints/${ep.id}`, { enabled: true })
      expect(resumed.body).toMatchObject({ enabled: true, disabledReason: null, failingSince: null })
      for (const m of pending) await waitFor('delivered after resume', async () => (await message(m.id, c)).state === 'delivered')
      expect((await c('GET', '/readyz')).body.webhooks.disabledEndpoints).toEqual([])
    } finally {
      rx.stop()
      await s.stop()
      await own.drop()
    }
  })
})

describe('logs', () => {
  test('say what happened — created, failing, dead letter, disabled, resumed, replayed — and never carry a secret', async () => {
    const own = await createTestDb()
    const { log, lines } = capturingLog()
    const s = testService({ DATABASE_URL: own.url, ...FAST, WEBHOOK_MAX_ATTEMPTS: '2' }, { log })
    const c = api(s)
    let status = 500
    const rx = receiver(() => ({ status }))
    try {
      await s.start()
      const ep = await endpoint(rx.url('/secret-path?token=abc'), ['shipment.event'], {}, c)
      const rotated = (await c('POST', `/v1/webhook-endpoints/${ep.id}/rotate-secret`)).body.secret
      await c('POST', '/v1/events', { events: [ev(await shipment(c))] })
      const dead = await waitFor('a dead letter', async () => (await c('GET', `/v1/dlq?endpointId=${ep.id}`)).body.items[0])
      status = 200
      await c('POST', '/v1/dlq/replay', { endpointId: ep.id })
      await waitFor('delivered', async () => (await message(dead.id, c)).state === 'delivered')
      status = 410
      await c('POST', '/v1/events', { events: [ev(await shipment(c))] })
      await waitFor('disabled', async () => (await c('GET', `/v1/webhook-endpoints/${ep.id}`)).body.enabled === false)
      await c('PATCH', `/v1/webhook-endpoints/${ep.id}`, { enabled: true })
      const said = lines.filter((l) => l.component === 'webhooks').map((l) => l.msg)
      for (const what of [
        'webhook endpoint created',
        'webhook secret rotated',
        'webhook endpoint failing',
        'dead-lettered',
        'dead letters replayed',
        'webhook endpoint disabled',
        'webhook endpoint enabled',
        'webhook endpoint recovered'
      ]) {
        expect(
          said.some((m) => m.includes(what)),
          what
        ).toBe(true)
      }
      const text = JSON.stringify(lines)
      for (const secret of [ep.secret, rotated, ep.secret.slice(6), rotated.slice(6)]) expect(text.includes(secret)).toBe(false)
      // The url's path and query may carry a receiver's token: logs name the host only.
      expect(text.includes('token=abc')).toBe(false)
    } finally {
      rx.stop()
      await s.stop()
      await own.drop()
    }
  })
})
