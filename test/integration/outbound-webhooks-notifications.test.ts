/**
 * `notification.created` webhooks (contract §9) against real local receivers, verified with the
 * official `standardwebhooks` package: one message per notification and enabled endpoint that
 * takes the type, filtered by the endpoint's `userIds`, created by the statement that writes the
 * notifications — POST /v1/notifications and the watchers' status-change notifications of the
 * ingest transaction — so a notification is never without its messages, nor a message without
 * its notification; an idempotent replay creates none; a process that died between the commit
 * and the scheduling loses none.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import { Webhook } from 'standardwebhooks'
import { createTestDb, type TestDb } from '../support/db.ts'
import { receiver } from '../support/receiver.ts'
import { api, testService, waitFor } from '../support/service.ts'

setDefaultTimeout(30_000)

const FAST = {
  WEBHOOK_ALLOW_PRIVATE: 'true',
  WEBHOOK_RETRY_BASE_MS: '20',
  WEBHOOK_RETRY_MAX_MS: '200',
  WEBHOOK_MAX_ATTEMPTS: '4',
  WEBHOOK_POLL_MS: '20',
  WEBHOOK_REBUILD_MS: '500',
  WEBHOOK_TIMEOUT_MS: '2000',
  POLL_ENABLED: 'false'
}

let db: TestDb
let service: ReturnType<typeof testService>
let call: ReturnType<typeof api>
beforeAll(async () => {
  db = await createTestDb()
  // No periodic rebuild after the one at start: these messages go out only if scheduled after their commit.
  service = testService({ DATABASE_URL: db.url, ...FAST, WEBHOOK_REBUILD_MS: '3600000' })
  call = api(service)
  await service.start()
})
afterAll(async () => {
  await service.stop()
  await db.drop()
})

let n = 0
const unique = (p: string) => `${p}${Date.now().toString(36)}${n++}`
let t0 = Date.UTC(2026, 10, 23)
const ev = (tn: string, status: string) => ({
  carrier: 'dhl',
  trackingNumber: tn,
  carrierStatus: `S${++n}`,
  status,
  occurredAt: new Date((t0 += 60_000)).toISOString()
})
async function shipment(c = call) {
  const tn = unique('NC').toUpperCase()
  const r = await c('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: tn })
  expect(r.status).toBe(201)
  return { id: r.body.id as string, tn }
}
async function endpoint(url: string, eventTypes: string[], extra: Record<string, unknown> = {}, c = call) {
  const r = await c('POST', '/v1/webhook-endpoints', { url, eventTypes, ...extra })
  expect(r.status).toBe(201)
  return r.body as { id: string; secret: string }
}
/** Every message PostgreSQL holds for these endpoints, by endpoint: what was created, whether sent yet or not. */
async function stored(...endpointIds: string[]) {
  const rows = await db.sql<{ endpoint_id: string; type: string; body: string }[]>`
    select endpoint_id, type, body from webhook_messages where endpoint_id = any(${endpointIds}::uuid[]) order by created_at, id`
  return new Map(endpointIds.map((id) => [id, rows.filter((r) => r.endpoint_id === id)]))
}
const inbox = async (userId: string) => (await call('GET', `/v1/users/${userId}/notifications`)).body.items as { id: string; seq: number }[]
const bodies = (rx: ReturnType<typeof receiver>, path: string) => rx.received.filter((r) => r.path === path)

describe('notification.created', () => {
  test("POST /v1/notifications to several users: once per notification to an endpoint without userIds, only its user's to a filtered one, nothing to others; signed, data as the inbox shows it", async () => {
    const rx = receiver()
    const users = [unique('ann'), unique('bob'), unique('cy')]
    const all = await endpoint(rx.url('/all'), ['notification.created'])
    const onlyBob = await endpoint(rx.url('/bob'), ['notification.created'], { userIds: [users[1], unique('nobody')] })
    const shipments = await endpoint(rx.url('/shipments'), ['shipment.event', 'shipment.status_changed'])
    const disabled = await endpoint(rx.url('/disabled'), ['notification.created'])
    expect((await call('PATCH', `/v1/webhook-endpoints/${disabled.id}`, { enabled: false })).body.enabled).toBe(false)
    try {
      const r = await call('POST', '/v1/notifications', {
        userIds: users,
        type: 'invoice.ready',
        title: 'Your invoice',
        body: 'is ready',
        data: { amount: 12.5, lines: [{ sku: 'A1' }] }
      })
      expect(r.status).toBe(202)
      await waitFor('three to /all and one to /bob', () => bodies(rx, '/all').length >= 3 && bodies(rx, '/bob').length >= 1)
      // What PostgreSQL holds is what was created: exactly these, none for the others.
      const held = await stored(all.id, onlyBob.id, shipments.id, disabled.id)
      expect(held.get(all.id)!.length).toBe(3)
      expect(held.get(onlyBob.id)!.length).toBe(1)
      expect(held.get(shipments.id)).toEqual([])
      expect(held.get(disabled.id)).toEqual([])
      expect([...held.values()].flat().every((m) => m.type === 'notification.created')).toBe(true)

      const wh = new Webhook(all.secret)
      const got = bodies(rx, '/all').map((m) => {
        expect(m.id).toMatch(/^msg_[0-9a-f]{32}$/)
        return wh.verify(m.body, m.headers) as { type: string; timestamp: string; data: { userId: string; id: string } }
      })
      expect(new Set(bodies(rx, '/all').map((m) => m.id)).size).toBe(3)
      expect(got.map((b) => b.data.userId).sort()).toEqual([...users].sort())
      for (const b of got) {
        expect(Object.keys(b)).toEqual(['type', 'timestamp', 'data'])
        expect(b.type).toBe('notification.created')
        expect(b.timestamp).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
        // The notification exactly as the REST inbox shows it.
        const [item] = await inbox(b.data.userId)
        expect(b.data).toEqual(item as never)
        expect(b.data).toMatchObject({
          type: 'invoice.ready',
          title: 'Your invoice',
          body: 'is ready',
          data: { amount: 12.5, lines: [{ sku: 'A1' }] },
          seq: 1,
          shipmentId: null,
          deliveredAt: null,
          readAt: null
        })
      }
      const ids = new Map<string, string>(r.body.notifications.map((x: { userId: string; id: string }) => [x.userId, x.id]))
      expect(got.map((b) => b.data.id).sort()).toEqual([...ids.values()].sort())
      const [bobs] = bodies(rx, '/bob')
      expect((new Webhook(onlyBob.secret).verify(bobs!.body, bobs!.headers) as { data: { userId: string; id: string } }).data).toMatchObject({
        userId: users[1]!,
        id: ids.get(users[1]!)
      })
      expect(rx.received.filter((m) => m.path === '/shipments' || m.path === '/disabled')).toEqual([])
      // The records show them as any other message.
      const listed = await waitFor('delivered', async () => {
        const page = (await call('GET', `/v1/webhook-endpoints/${onlyBob.id}/messages?state=delivered`)).body.items
        return page.length === 1 ? page : false
      })
      expect(listed[0]).toMatchObject({ id: bobs!.id, type: 'notification.created', state: 'delivered' })
    } finally {
      for (const e of [all, onlyBob, shipments, disabled]) await call('DELETE', `/v1/webhook-endpoints/${e.id}`)
      rx.stop()
    }
  })

  test('an idempotent replay of POST /v1/notifications creates no message; the same request with a new key does', async () => {
    const rx = receiver()
    const ep = await endpoint(rx.url('/replay'), ['notification.created'])
    try {
      const users = [unique('r'), unique('s')]
      const body = { userIds: users, type: 'order.shipped', idempotencyKey: unique('key') }
      const first = await call('POST', '/v1/notifications', body)
      await waitFor('two', () => rx.received.length >= 2)
      const replay = await call('POST', '/v1/notifications', body)
      expect(replay.headers.get('idempotent-replayed')).toBe('true')
      expect(replay.body).toEqual(first.body)
      // Ten more at once with the same key: all replays.
      await Promise.all(Array.from({ length: 10 }, () => call('POST', '/v1/notifications', body)))
      expect((await stored(ep.id)).get(ep.id)!.length).toBe(2)
      const fresh = await call('POST', '/v1/notifications', { ...body, idempotencyKey: unique('key') })
      expect(fresh.body.notifications.map((x: { seq: number }) => x.seq)).toEqual([2, 2])
      await waitFor('four', () => rx.received.length >= 4)
      expect((await stored(ep.id)).get(ep.id)!.length).toBe(4)
      await Bun.sleep(200)
      expect(rx.received.length).toBe(4)
    } finally {
      await call('DELETE', `/v1/webhook-endpoints/${ep.id}`)
      rx.stop()
    }
  })

  test("a watcher's status-changed notification is announced as notification.created, beside shipment.status_changed, in the ingest transaction", async () => {
    const rx = receiver()
    const [watcher, other] = [unique('w'), unique('o')]
    const notes = await endpoint(rx.url('/notes'), ['notification.created'])
    const mine = await endpoint(rx.url('/mine'), ['notification.created'], { userIds: [watcher] })
    const changes = await endpoint(rx.url('/changes'), ['shipment.status_changed'])
    try {
      const s = await shipment()
      for (const u of [watcher, other]) expect((await call('PUT', `/v1/shipments/${s.id}/watchers/${u}`)).status).toBe(201)
      const first = await call('POST', '/v1/events', { events: [ev(s.tn, 'in_transit')] })
      expect(first.body.results[0].outcome).toBe('inserted')
      await waitFor(
        'two notes, one for the watcher, one change',
        () => bodies(rx, '/notes').length >= 2 && bodies(rx, '/mine').length >= 1 && bodies(rx, '/changes').length >= 1
      )
      const notesGot = bodies(rx, '/notes').map((m) => new Webhook(notes.secret).verify(m.body, m.headers) as { type: string; data: any })
      expect(notesGot.map((b) => b.data.userId).sort()).toEqual([watcher, other].sort())
      for (const b of notesGot) {
        expect(b.type).toBe('notification.created')
        const [item] = await inbox(b.data.userId)
        expect(b.data).toEqual(item as never)
        expect(b.data).toMatchObject({
          type: 'shipment.status_changed',
          shipmentId: s.id,
          seq: 1,
          data: { shipmentId: s.id, trackingNumber: s.tn, from: 'pending', to: 'in_transit' }
        })
      }
      const [m] = bodies(rx, '/mine')
      expect((new Webhook(mine.secret).verify(m!.body, m!.headers) as { data: { userId: string } }).data.userId).toBe(watcher)
      const [c] = bodies(rx, '/changes')
      expect((new Webhook(changes.secret).verify(c!.body, c!.headers) as { type: string; data: unknown }).data).toMatchObject({
        shipmentId: s.id,
        from: 'pending',
        to: 'in_transit'
      })
      // A same-status event notifies no one and announces nothing; two changes in one batch, two per watcher.
      await call('POST', '/v1/events', { events: [ev(s.tn, 'in_transit')] })
      await call('POST', '/v1/events', { events: [ev(s.tn, 'out_for_delivery'), ev(s.tn, 'delivered')] })
      await waitFor('six notes', () => bodies(rx, '/notes').length >= 6)
      const held = await stored(notes.id, mine.id, changes.id)
      expect(held.get(notes.id)!.length).toBe(6)
      expect(held.get(mine.id)!.length).toBe(3)
      expect(held.get(changes.id)!.length).toBe(3)
      const seqs = (path: string) =>
        bodies(rx, path)
          .map((r) => JSON.parse(r.body).data)
          .filter((d) => d.userId === watcher)
          .map((d) => [d.seq, d.data.to])
          .sort()
      expect(seqs('/notes')).toEqual([
        [1, 'in_transit'],
        [2, 'out_for_delivery'],
        [3, 'delivered']
      ])
      expect(seqs('/mine')).toEqual(seqs('/notes'))
    } finally {
      for (const e of [notes, mine, changes]) await call('DELETE', `/v1/webhook-endpoints/${e.id}`)
      rx.stop()
    }
  })

  test('one transaction: a notification PostgreSQL refuses leaves no message, and a message it refuses leaves no notification', async () => {
    const rx = receiver()
    const ep = await endpoint(rx.url('/tx'), ['notification.created', 'shipment.event', 'shipment.status_changed'])
    const [ok, victim, poison] = [unique('ok'), unique('victim'), unique('poison')]
    await db.sql.unsafe(`
      create function refuse_nc() returns trigger language plpgsql as $$
      begin raise exception 'refused by the test' using errcode = 'check_violation'; end $$;
      create trigger refuse_nc_notification before insert on notifications for each row when (new.user_id = '${victim}') execute function refuse_nc();
      create trigger refuse_nc_message before insert on webhook_messages for each row when (new.body like '%${poison}%') execute function refuse_nc();`)
    try {
      // POST /v1/notifications: the refused notification takes the others and every message with it.
      for (const u of [victim, poison]) {
        const r = await call('POST', '/v1/notifications', { userIds: [ok, u], type: 'refused.test' })
        expect(r.status).toBe(500)
      }
      expect((await inbox(ok)).length).toBe(0)
      expect(await inbox(poison)).toEqual([])
      // Ingest: a watcher's refused notification (or its refused message) leaves the event unstored too.
      for (const u of [victim, poison]) {
        const s = await shipment()
        await call('PUT', `/v1/shipments/${s.id}/watchers/${u}`)
        const r = await call('POST', '/v1/events', { events: [ev(s.tn, 'in_transit')] })
        expect(r.body.error.results[0].outcome).toBe('invalid')
        const [events] = await db.sql<{ n: number }[]>`select count(*)::int as n from tracking_events where shipment_id = ${s.id}`
        expect(events!.n).toBe(0)
      }
      expect(await inbox(victim)).toEqual([])
      expect(await inbox(poison)).toEqual([])
      expect((await stored(ep.id)).get(ep.id)).toEqual([])
      // What commits still announces itself.
      expect((await call('POST', '/v1/notifications', { userId: ok, type: 'refused.test' })).status).toBe(202)
      await waitFor('one', () => rx.received.length >= 1)
      await Bun.sleep(100)
      expect(rx.received.map((m) => JSON.parse(m.body).data.userId)).toEqual([ok])
    } finally {
      await db.sql.unsafe(
        'drop trigger refuse_nc_notification on notifications; drop trigger refuse_nc_message on webhook_messages; drop function refuse_nc();'
      )
      await call('DELETE', `/v1/webhook-endpoints/${ep.id}`)
      rx.stop()
    }
  })

  test("a process that dies between the commit and the scheduling loses nothing: the schedule's rebuild sends it", async () => {
    // A database of its own: this file's running service would otherwise rebuild the schedule itself.
    const own = await createTestDb()
    const rx = receiver()
    // Never started, so its sender and rebuild never run: what it commits reaches no running schedule.
    const dying = testService({ DATABASE_URL: own.url, ...FAST })
    let dead = false
    let next: ReturnType<typeof testService> | null = null
    try {
      const ep = await endpoint(rx.url('/late'), ['notification.created'], {}, api(dying))
      const user = unique('late')
      expect((await api(dying)('POST', '/v1/notifications', { userId: user, type: 'late.one' })).status).toBe(202)
      await Bun.sleep(200)
      expect(rx.received.length).toBe(0)
      await dying.stop()
      dead = true
      next = testService({ DATABASE_URL: own.url, ...FAST })
      await next.start()
      await waitFor('delivered by the next process', () => rx.received.length >= 1)
      expect((new Webhook(ep.secret).verify(rx.received[0]!.body, rx.received[0]!.headers) as { data: { userId: string } }).data.userId).toBe(user)
    } finally {
      rx.stop()
      if (!dead) await dying.stop()
      await next?.stop()
      await own.drop()
    }
  })
})
