/**
 * Notifications over REST against the real services (contract §8): watchers and the
 * `shipment.status_changed` notification in the ingest transaction; `POST /v1/notifications`
 * with its validation and idempotency; per-user gap-free seq under concurrent writers; the inbox
 * and acks; presence of users never seen; retention.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import { createTestDb, type TestDb } from '../support/db.ts'
import { api, testService, waitFor } from '../support/service.ts'

setDefaultTimeout(30_000)

let db: TestDb
let service: ReturnType<typeof testService>
let call: ReturnType<typeof api>

beforeAll(async () => {
  db = await createTestDb()
  service = testService({ DATABASE_URL: db.url, API_KEYS: 'test-key-0123456789,other-key-0123456789', POLL_ENABLED: 'false' })
  await service.start()
  call = api(service)
  await waitFor('the engine', () => service.engine.isReady)
})
afterAll(async () => {
  await service.stop()
  await db.drop()
})

let n = 0
const unique = (p: string) => `${p}${Date.now().toString(36)}${n++}`
async function shipment() {
  const tn = unique('N').toUpperCase()
  const res = await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: tn })
  return { id: res.body.id as string, tn }
}
let t0 = Date.UTC(2026, 10, 22)
const ev = (tn: string, status: string, at = (t0 += 60_000)) => ({
  carrier: 'dhl',
  trackingNumber: tn,
  carrierStatus: `S${at}`,
  status,
  occurredAt: new Date(at).toISOString()
})
const rows = async (userId: string) => [
  ...(await db.sql<{ seq: number; type: string; data: any; shipment_id: string | null; title: string | null }[]>`
  select seq, type, data, shipment_id, title from notifications where user_id = ${userId} order by seq`)
]
const outbox = async (userId: string) => [...(await db.sql<{ seq: number }[]>`select seq from notification_outbox where user_id = ${userId} order by seq`)]

describe('watchers', () => {
  test('PUT is 201 then 200, GET lists them in userId order, DELETE removes one (then 404); bad ids are 4xx', async () => {
    const s = await shipment()
    const bob = await call('PUT', `/v1/shipments/${s.id}/watchers/bob@example.com`)
    expect(bob.status).toBe(201)
    expect(bob.body).toMatchObject({ shipmentId: s.id, userId: 'bob@example.com' })
    expect((await call('PUT', `/v1/shipments/${s.id}/watchers/bob@example.com`)).status).toBe(200)
    expect((await call('PUT', `/v1/shipments/${s.id}/watchers/tenant:alice`)).status).toBe(201)
    const list = await call('GET', `/v1/shipments/${s.id}/watchers`)
    expect(list.body.items.map((w: any) => w.userId)).toEqual(['bob@example.com', 'tenant:alice'])
    const page = await call('GET', `/v1/shipments/${s.id}/watchers?limit=1`)
    expect(page.body).toMatchObject({ items: [{ userId: 'bob@example.com' }], nextAfter: 'bob@example.com' })
    expect((await call('GET', `/v1/shipments/${s.id}/watchers?after=bob@example.com`)).body.items.map((w: any) => w.userId)).toEqual(['tenant:alice'])
    expect((await call('DELETE', `/v1/shipments/${s.id}/watchers/bob@example.com`)).body).toMatchObject({ userId: 'bob@example.com' })
    expect((await call('DELETE', `/v1/shipments/${s.id}/watchers/bob@example.com`)).status).toBe(404)
    const bad = await call('PUT', `/v1/shipments/${s.id}/watchers/${'x'.repeat(129)}`)
    expect([bad.status, bad.body.error.field]).toEqual([400, 'userId'])
    expect((await call('PUT', `/v1/shipments/${s.id}/watchers/a%20b`)).body.error.field).toBe('userId')
    expect((await call('PUT', '/v1/shipments/00000000-0000-0000-0000-000000000000/watchers/bob')).status).toBe(404)
    expect((await call('PUT', '/v1/shipments/not-a-uuid/watchers/bob')).status).toBe(404)
    expect((await call('GET', '/v1/shipments/00000000-0000-0000-0000-000000000000/watchers')).status).toBe(404)
  })

  test('a status change notifies every watcher once, in the transaction of its event; duplicates, older and same-status events notify no one', async () => {
    const s = await shipment()
    const [alice, bob] = [unique('alice'), unique('bob')]
    for (const u of [alice, bob]) await call('PUT', `/v1/shipments/${s.id}/watchers/${u}`)
    const pickup = ev(s.tn, 'in_transit')
    const first = await call('POST', '/v1/events', { events: [pickup] })
    expect(first.body.results[0]).toMatchObject({ outcome: 'inserted', seq: 1 })
    for (const u of [alice, bob]) {
      const [r] = await rows(u)
      expect(r).toMatchObject({ seq: 1, type: 'shipment.status_changed', shipment_id: s.id, title: `DHL ${s.tn}: in transit` })
      expect(r!.data).toEqual({
        shipmentId: s.id,
        carrier: 'dhl',
        trackingNumber: s.tn,
        from: 'pending',
        to: 'in_transit',
        event: {
          seq: 1,
          dedupKey: first.body.results[0].dedupKey,
          carrier: 'dhl',
          trackingNumber: s.tn,
          carrierStatus: pickup.carrierStatus,
          status: 'in_transit',
          occurredAt: pickup.occurredAt,
          location: null,
          description: null,
          receivedAt: expect.stringMatching(/Z$/)
        }
      })
    }
    // A duplicate, an older scan, a newer one with the same status: nothing.
    await call('POST', '/v1/events', { events: [pickup, ev(s.tn, 'exception', t0 - 3_600_000), ev(s.tn, 'in_transit')] })
    expect((await rows(alice)).length).toBe(1)
    // Two changes in one batch, and one in the next: one notification per watcher per change, in order.
    await call('POST', '/v1/events', { events: [ev(s.tn, 'out_for_delivery'), ev(s.tn, 'failed_attempt')] })
    await call('POST', '/v1/events', { events: [ev(s.tn, 'delivered')] })
    for (const u of [alice, bob]) {
      expect((await rows(u)).map((r) => [r.seq, r.data.from, r.data.to])).toEqual([
        [1, 'pending', 'in_transit'],
        [2, 'in_transit', 'out_for_delivery'],
        [3, 'out_for_delivery', 'failed_attempt'],
        [4, 'failed_attempt', 'delivered']
      ])
    }
  })

  test('one transaction: a notification PostgreSQL refuses leaves its event unstored too', async () => {
    const s = await shipment()
    const victim = unique('refused')
    await call('PUT', `/v1/shipments/${s.id}/watchers/${victim}`)
    await db.sql.unsafe(`
      create function refuse_${victim}() returns trigger language plpgsql as $$
      begin if new.user_id = '${victim}' then raise exception 'refused' using errcode = 'check_violation'; end if; return new; end $$;
      create trigger refuse_${victim} before insert on notifications for each row execute function refuse_${victim}();`)
    try {
      const res = await call('POST', '/v1/events', { events: [ev(s.tn, 'in_transit')] })
      expect(res.status).toBe(400)
      expect(res.body.error.results[0].outcome).toBe('invalid')
      const [stored] = await db.sql<
        { n: number; last: number }[]
      >`select count(*)::int as n, max(s.last_seq) as last from tracking_events e join shipments s on s.id = e.shipment_id where s.id = ${s.id}`
      expect(stored).toEqual({ n: 0, last: null as never })
      expect(await rows(victim)).toEqual([])
    } finally {
      await db.sql.unsafe(`drop trigger refuse_${victim} on notifications; drop function refuse_${victim}();`)
    }
  })
})

describe('POST /v1/notifications', () => {
  test('202 with {userId, id, seq} in the order given; each user its next seq; every one in the outbox until published', async () => {
    const users = [unique('c'), unique('a'), unique('b')]
    const first = await call('POST', '/v1/notifications', {
      userIds: users,
      type: 'invoice.ready',
      title: 'Your invoice',
      body: 'is ready',
      data: { amount: 12.5, items: [1, 2] }
    })
    expect(first.status).toBe(202)
    expect(first.body.notifications.map((x: any) => [x.userId, x.seq])).toEqual(users.map((u) => [u, 1]))
    const again = await call('POST', '/v1/notifications', { userId: users[1], type: 'invoice.paid' })
    expect(again.body.notifications).toEqual([{ userId: users[1], id: expect.any(String), seq: 2 }])
    const [r] = await rows(users[0]!)
    expect(r).toMatchObject({ seq: 1, type: 'invoice.ready', title: 'Your invoice', data: { amount: 12.5, items: [1, 2] }, shipment_id: null })
    // Published right after the commit: the acks take the rows out within their flush.
    await service.notificationAcks.flush()
    for (const u of users) expect(await outbox(u)).toEqual([])
  })

  test('10,000 users in one call, one statement: every one gets its notification', async () => {
    const prefix = unique('bulk')
    const users = Array.from({ length: 10_000 }, (_, i) => `${prefix}-${i}`)
    const res = await call('POST', '/v1/notifications', { userIds: users, type: 'bulk.test' })
    expect(res.status).toBe(202)
    expect(res.body.notifications.length).toBe(10_000)
    expect(res.body.notifications.every((x: any, i: number) => x.userId === users[i] && x.seq === 1)).toBe(true)
    const [count] = await db.sql<{ n: number }[]>`select count(*)::int as n from notifications where user_id like ${prefix + '-%'}`
    expect(count!.n).toBe(10_000)
    const over = await call('POST', '/v1/notifications', { userIds: [...users, `${prefix}-x`], type: 'bulk.test' })
    expect([over.status, over.body.error.field]).toEqual([400, 'userIds'])
  })

  test('every bad field is a 400 naming it, and nothing is created', async () => {
    const u = unique('v')
    const big = { blob: 'x'.repeat(16 * 1024) }
    const cases: [unknown, string][] = [
      [{ type: 'a' }, 'userIds'],
      [{ userIds: [], type: 'a' }, 'userIds'],
      [{ userIds: 'alice', type: 'a' }, 'userIds'],
      [{ userIds: [u, 'no spaces'], type: 'a' }, 'userIds[1]'],
      [{ userIds: [u, u], type: 'a' }, 'userIds[1]'],
      [{ userIds: ['x'.repeat(129)], type: 'a' }, 'userIds[0]'],
      [{ userIds: [u], userId: u, type: 'a' }, 'userId'],
      [{ userId: 'bad/id', type: 'a' }, 'userId'],
      [{ userId: u }, 'type'],
      [{ userId: u, type: 'Upper' }, 'type'],
      [{ userId: u, type: 'x'.repeat(101) }, 'type'],
      [{ userId: u, type: '' }, 'type'],
      [{ userId: u, type: 'a', title: 'nul\u0000' }, 'title'],
      [{ userId: u, type: 'a', title: 'x'.repeat(201) }, 'title'],
      [{ userId: u, type: 'a', body: '\ud800' }, 'body'],
      [{ userId: u, type: 'a', data: [1, 2] }, 'data'],
      [{ userId: u, type: 'a', data: 'text' }, 'data'],
      [{ userId: u, type: 'a', data: big }, 'data'],
      [{ userId: u, type: 'a', data: { deep: { key: 'nul\u0000' } } }, 'data.deep.key'],
      [{ userId: u, type: 'a', idempotencyKey: '' }, 'idempotencyKey'],
      [{ userId: u, type: 'a', idempotencyKey: 'k\u0000' }, 'idempotencyKey'],
      [[1], 'type']
    ]
    for (const [body, field] of cases) {
      const res = await call('POST', '/v1/notifications', body)
      expect([res.status, res.body.error?.field], JSON.stringify(body).slice(0, 100)).toEqual([400, field])
    }
    expect(await rows(u)).toEqual([])
    // At the limit is fine: 16 KB of JSON.
    const fits = { blob: 'x'.repeat(16 * 1024 - 11) }
    expect(Buffer.byteLength(JSON.stringify(fits))).toBe(16 * 1024)
    expect((await call('POST', '/v1/notifications', { userId: u, type: 'a', data: fits })).status).toBe(202)
  })

  test('the same idempotencyKey returns the first answer and creates nothing — per API key, for 24 hours, also when sent at once', async () => {
    const [u1, u2] = [unique('i'), unique('j')]
    const body = { userIds: [u1, u2], type: 'order.shipped', idempotencyKey: unique('key') }
    const first = await call('POST', '/v1/notifications', body)
    const replay = await call('POST', '/v1/notifications', { ...body, type: 'something.else' })
    expect(replay.status).toBe(202)
    expect(replay.body).toEqual(first.body)
    expect(replay.headers.get('idempotent-replayed')).toBe('true')
    expect((await rows(u1)).length).toBe(1)
    // Another API key has keys of its own.
    const other = await call('POST', '/v1/notifications', body, { authorization: 'Bearer other-key-0123456789' })
    expect(other.body.notifications.map((x: any) => x.seq)).toEqual([2, 2])
    // Ten at once with a fresh key: one creates, nine wait for it and answer the same.
    const concurrent = { userId: u1, type: 'order.shipped', idempotencyKey: unique('key') }
    const answers = await Promise.all(Array.from({ length: 10 }, () => call('POST', '/v1/notifications', concurrent)))
    expect(new Set(answers.map((a) => JSON.stringify(a.body))).size).toBe(1)
    expect((await rows(u1)).length).toBe(3)
    // Older than 24 hours: the key is free again.
    await db.sql`update notification_requests set created_at = now() - interval '25 hours' where idempotency_key = ${body.idempotencyKey}`
    const later = await call('POST', '/v1/notifications', body)
    expect(later.body.notifications.map((x: any) => x.seq)).toEqual([4, 3])
    const [stored] = await db.sql<{ n: number }[]>`select count(*)::int as n from notification_requests where idempotency_key = ${body.idempotencyKey}`
    expect(stored!.n).toBe(2)
  })

  test('seq stays gap-free per user under concurrent calls and status changes over overlapping users', async () => {
    const users = Array.from({ length: 12 }, (_, i) => unique(`gap${i}-`))
    const ships = await Promise.all([shipment(), shipment()])
    for (const s of ships) for (const u of users.slice(0, 6)) await call('PUT', `/v1/shipments/${s.id}/watchers/${u}`)
    const statuses = ['in_transit', 'out_for_delivery', 'failed_attempt', 'available_for_pickup', 'exception', 'delivered']
    const writers = [
      ...Array.from(
        { length: 16 },
        (_, i) => () =>
          call('POST', '/v1/notifications', { userIds: [...users].sort(() => Math.random() - 0.5).slice(0, 8), type: 'race.test', title: `#${i}` })
      ),
      ...ships.flatMap((s) => statuses.map((st) => () => call('POST', '/v1/events', { events: [ev(s.tn, st)] })))
    ]
    const results = await Promise.all(writers.sort(() => Math.random() - 0.5).map((w) => w()))
    expect(results.every((r) => r.status === 202 || r.status === 200)).toBe(true)
    for (const u of users) {
      const seqs = (await rows(u)).map((r) => r.seq)
      const [last] = await db.sql<{ last_seq: number }[]>`select last_seq from user_seqs where user_id = ${u}`
      expect(seqs).toEqual(Array.from({ length: last!.last_seq }, (_, i) => i + 1))
    }
  })
})

describe('the inbox', () => {
  test('GET lists in seq order (all or unread, after, limit); ack by seq or ids marks read, idempotently, with the unread count', async () => {
    const u = unique('inbox')
    for (let i = 1; i <= 5; i++) await call('POST', '/v1/notifications', { userId: u, type: 'note', title: `#${i}` })
    const all = await call('GET', `/v1/users/${u}/notifications`)
    expect(all.body).toMatchObject({ lastSeq: 5, nextAfter: null, unread: 5 })
    expect(all.body.items.map((x: any) => [x.seq, x.title, x.readAt, x.deliveredAt])).toEqual([1, 2, 3, 4, 5].map((s) => [s, `#${s}`, null, null]))
    expect(Object.keys(all.body.items[0]).sort()).toEqual([
      'body',
      'createdAt',
      'data',
      'deliveredAt',
      'id',
      'readAt',
      'seq',
      'shipmentId',
      'title',
      'type',
      'userId'
    ])
    const page = await call('GET', `/v1/users/${u}/notifications?after=1&limit=2`)
    expect([page.body.items.map((x: any) => x.seq), page.body.nextAfter]).toEqual([[2, 3], 3])
    const acked = await call('POST', `/v1/users/${u}/notifications/ack`, { upToSeq: 2 })
    expect(acked.body).toEqual({ acked: 2, unread: 3 })
    expect((await call('POST', `/v1/users/${u}/notifications/ack`, { upToSeq: 2 })).body).toEqual({ acked: 0, unread: 3 })
    const byId = await call('POST', `/v1/users/${u}/notifications/ack`, {
      ids: [all.body.items[4].id, all.body.items[0].id, '00000000-0000-0000-0000-000000000000']
    })
    expect(byId.body).toEqual({ acked: 1, unread: 2 })
    const unread = await call('GET', `/v1/users/${u}/notifications?state=unread`)
    expect(unread.body.items.map((x: any) => x.seq)).toEqual([3, 4])
    const read = (await call('GET', `/v1/users/${u}/notifications`)).body.items.filter((x: any) => x.readAt !== null)
    expect(read.map((x: any) => x.seq)).toEqual([1, 2, 5])
    // A read notification counts as delivered.
    expect(read.every((x: any) => x.deliveredAt !== null)).toBe(true)
    // Another user's ids ack nothing of this one, and nothing of theirs.
    const other = unique('other')
    expect((await call('POST', `/v1/users/${other}/notifications/ack`, { ids: [all.body.items[2].id] })).body).toEqual({ acked: 0, unread: 0 })
    expect((await call('GET', `/v1/users/${other}/notifications`)).body).toEqual({ items: [], lastSeq: 0, nextAfter: null, unread: 0 })
  })

  test('bad parameters are 400s naming them', async () => {
    const cases: [string, string, unknown, string][] = [
      ['GET', '/v1/users/a%20b/notifications', undefined, 'userId'],
      ['GET', '/v1/users/ok/notifications?state=read', undefined, 'state'],
      ['GET', '/v1/users/ok/notifications?after=-1', undefined, 'after'],
      ['GET', '/v1/users/ok/notifications?limit=1001', undefined, 'limit'],
      ['POST', '/v1/users/ok/notifications/ack', {}, 'upToSeq'],
      ['POST', '/v1/users/ok/notifications/ack', { upToSeq: 1.5 }, 'upToSeq'],
      ['POST', '/v1/users/ok/notifications/ack', { upToSeq: 1, ids: [] }, 'upToSeq'],
      ['POST', '/v1/users/ok/notifications/ack', { ids: [] }, 'ids'],
      ['POST', '/v1/users/ok/notifications/ack', { ids: ['nope'] }, 'ids[0]'],
      ['GET', '/v1/presence', undefined, 'userIds'],
      ['GET', `/v1/presence?userIds=${Array.from({ length: 1001 }, (_, i) => `u${i}`).join(',')}`, undefined, 'userIds'],
      ['GET', '/v1/presence?userIds=ok,b%20ad', undefined, 'userIds[1]'],
      ['GET', '/v1/users/b%20ad/presence', undefined, 'userId']
    ]
    for (const [method, path, body, field] of cases) {
      const res = await call(method, path, body)
      expect([res.status, res.body.error?.field], `${method} ${path.slice(0, 80)}`).toEqual([400, field])
    }
  })
})

describe('presence and retention', () => {
  test('a user never seen is offline with no connections; up to 1,000 at once, in the order asked', async () => {
    expect((await call('GET', '/v1/users/nobody@x/presence')).body).toEqual({ userId: 'nobody@x', online: false, connections: 0, lastSeenAt: null })
    const many = Array.from({ length: 1000 }, (_, i) => `p${i}`)
    const res = await call('GET', `/v1/presence?userIds=${many.join(',')},p0`)
    expect(res.body.items.length).toBe(1000)
    expect(res.body.items[999]).toEqual({ userId: 'p999', online: false, connections: 0, lastSeenAt: null })
  })

  test('retention deletes notifications past NOTIFICATION_RETENTION_DAYS (with their outbox rows) and idempotency answers past 24 h, in bounded batches', async () => {
    const u = unique('old')
    for (let i = 0; i < 5; i++) await call('POST', '/v1/notifications', { userId: u, type: 'old.one', idempotencyKey: `${u}-${i}` })
    await db.sql`update notifications set created_at = now() - interval '91 days' where user_id = ${u} and seq <= 3`
    await db.sql`insert into notification_outbox (user_id, seq) values (${u}, 2) on conflict do nothing`
    await db.sql`update notification_requests set created_at = now() - interval '25 hours' where idempotency_key in (${`${u}-0`}, ${`${u}-1`})`
    await service.notificationAcks.flush()
    const result = await service.retention.runOnce()
    expect(result).toMatchObject({ status: 'ok' })
    expect((await rows(u)).map((r) => r.seq)).toEqual([4, 5])
    expect(await outbox(u)).toEqual([])
    const [left] = await db.sql<{ n: number }[]>`select count(*)::int as n from notification_requests where idempotency_key like ${u + '-%'}`
    expect(left!.n).toBe(3)
    // Bounded: a loop of small batches, stopping at the cap.
    const { createRetention } = await import('../../src/notifications/retention.ts')
    const prefix = unique('many')
    await call('POST', '/v1/notifications', { userIds: Array.from({ length: 30 }, (_, i) => `${prefix}-${i}`), type: 'old.many' })
    await db.sql`update notifications set created_at = now() - interval '100 days' where user_id like ${prefix + '-%'}`
    const small = createRetention({ sql: service.sql, log: service.log, metrics: service.metrics, days: 90, intervalMs: 60_000, batchSize: 10, maxBatches: 2 })
    expect(await small.runOnce()).toMatchObject({ status: 'ok', notifications: 20 })
    expect(await small.runOnce()).toMatchObject({ status: 'ok', notifications: 10 })
  })

  test("retention deletes each user's notifications in seq order: never a higher seq while a lower one stays, whatever their created_at says", async () => {
    const u = unique('order')
    for (let i = 0; i < 4; i++) await call('POST', '/v1/notifications', { userId: u, type: 'old.order' })
    // As two transactions racing for one user can leave them: seq 2 has the earlier created_at.
    await db.sql`update notifications set created_at = now() - interval '100 days' - make_interval(secs => case seq when 1 then 1 when 2 then 2 else 0 end)
                 where user_id = ${u} and seq <= 3`
    const { createRetention } = await import('../../src/notifications/retention.ts')
    const one = createRetention({ sql: service.sql, log: service.log, metrics: service.metrics, days: 90, intervalMs: 60_000, batchSize: 1, maxBatches: 1 })
    // The oldest row is seq 2: seq 1 goes with it.
    expect(await one.runOnce()).toMatchObject({ status: 'ok', notifications: 2 })
    expect((await rows(u)).map((r) => r.seq)).toEqual([3, 4])
    expect(await one.runOnce()).toMatchObject({ status: 'ok', notifications: 1 })
    expect((await rows(u)).map((r) => r.seq)).toEqual([4])
  })
})
