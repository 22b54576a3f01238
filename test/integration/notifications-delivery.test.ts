/**
 * Notifications over the WebSocket (contract §8) against the real services: `user:<userId>`
 * snapshots and frames through the same hub as shipments, acks on the socket, deliveredAt,
 * presence; then the guarantees: a user subscribed on process B gets what A created
 * exactly once and in order; the snapshot race loses and repeats nothing; a Redis outage loses
 * nothing; a process killed outright leaves its users offline within PRESENCE_TTL_MS.
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import { createDeliveredMarks } from '../../src/notifications/delivered.ts'
import { NOTIFICATION_GROUP, NOTIFICATION_STREAM } from '../../src/notifications/model.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { outageTest, redisTest, testRedisUrl } from '../support/engine.ts'
import { freePort, privateRedis } from '../support/redis.ts'
import { API_KEY, api, testService, TOKEN_SECRET, waitFor } from '../support/service.ts'
import { connect, type Client } from '../support/ws.ts'

setDefaultTimeout(30_000)

let db: TestDb
let a: ReturnType<typeof testService>
let b: ReturnType<typeof testService>
let call: ReturnType<typeof api>

beforeAll(async () => {
  db = await createTestDb()
  a = testService({ DATABASE_URL: db.url, POLL_ENABLED: 'false', RECONCILE_MS: '200' })
  await a.start()
  // B shares the engine (the same Redis prefix, or the one memory engine) and nothing else; it
  // reconciles rarely, so what reaches its sockets came through the notification workers' fan-out.
  b = testService({ DATABASE_URL: db.url, POLL_ENABLED: 'false', RECONCILE_MS: '3600000' }, { shareEngineWith: a })
  await b.start()
  call = api(a)
  await waitFor('the engine', () => a.engine.isReady && b.engine.isReady)
})
afterAll(async () => {
  await Promise.all([a.stop(), b.stop()])
  await db.drop()
})

let n = 0
const unique = (p: string) => `${p}-${Date.now().toString(36)}${n++}`
const notify = (userIds: string[], extra: Record<string, unknown> = {}, via = call) =>
  via('POST', '/v1/notifications', { userIds, type: 'test.note', ...extra })
const seqs = (c: Client) => c.frames.filter((f) => f.type === 'notification').map((f) => f.seq)
const upTo = (to: number, from = 0) => Array.from({ length: to - from }, (_, i) => from + i + 1)

async function userClient(service: ReturnType<typeof testService>, userId: string, opts: { since?: number; sub?: string; topics?: string[] } = {}) {
  const token = (await api(service)('POST', '/v1/tokens', { topics: opts.topics ?? [`user:${userId}`], ...(opts.sub ? { sub: opts.sub } : {}) })).body.token
  return connect(`ws://127.0.0.1:${service.port}/v1/ws?token=${token}`)
}
async function subscribed(service: ReturnType<typeof testService>, userId: string, since?: number) {
  const c = await userClient(service, userId)
  c.send({ op: 'subscribe', topic: `user:${userId}`, ...(since !== undefined ? { since } : {}) })
  const snap = await c.next()
  expect(snap.type).toBe('snapshot')
  return { c, snap }
}
/** Writes `count` notifications for a user straight into the tables (a long history, fast). */
async function history(userId: string, count: number) {
  await db.sql`
    with s as (insert into user_seqs (user_id, last_seq) values (${userId}, ${count}) returning user_id)
    insert into notifications (user_id, seq, type, title) select ${userId}, g, 'bulk.old', 'n' || g from generate_series(1, ${count}) g`
}

describe('user topics', () => {
  test('snapshot {user, notifications: the unread}, then every new one once, in seq order; ack on the socket answers the unread count', async () => {
    const u = unique('ws')
    await notify([u], { title: 'one' })
    await notify([u], { title: 'two', data: { k: [1, { x: 'y' }] } })
    await call('POST', `/v1/users/${u}/notifications/ack`, { upToSeq: 1 })
    const { c, snap } = await subscribed(a, u)
    expect(snap).toMatchObject({ topic: `user:${u}`, user: { userId: u, lastSeq: 2, unread: 1 } })
    expect(snap.notifications.map((x: any) => [x.seq, x.title, x.data])).toEqual([[2, 'two', { k: [1, { x: 'y' }] }]])
    expect(snap.truncated).toBeUndefined()
    const created = await notify([u], { title: 'three', body: 'text', data: { n: 3 } })
    const frame = await c.next()
    expect(frame).toEqual({
      type: 'notification',
      topic: `user:${u}`,
      seq: 3,
      notification: {
        id: created.body.notifications[0].id,
        userId: u,
        seq: 3,
        type: 'test.note',
        title: 'three',
        body: 'text',
        data: { n: 3 },
        shipmentId: null,
        createdAt: expect.stringMatching(/Z$/)
      }
    })
    await notify([u])
    expect((await c.next()).seq).toBe(4)
    c.send({ op: 'ack', topic: `user:${u}`, seq: 3 })
    expect(await c.next()).toEqual({ type: 'acked', topic: `user:${u}`, upToSeq: 3, unread: 1 })
    c.send({ op: 'ack', topic: `user:${u}`, ids: [created.body.notifications[0].id] })
    expect(await c.next()).toEqual({ type: 'acked', topic: `user:${u}`, ids: [created.body.notifications[0].id], unread: 1 })
    c.send({ op: 'ack', topic: `user:${u}`, seq: -1 })
    expect(await c.next()).toMatchObject({ type: 'error', code: 'bad_message', topic: `user:${u}` })
    c.send({ op: 'ack', topic: 'user:someone-else', seq: 1 })
    expect(await c.next()).toMatchObject({ type: 'error', code: 'forbidden_topic' })
    expect(seqs(c)).toEqual([3, 4])
    c.close()
  })

  test('since: everything after it; more than 1,000 unread hand off at the last one listed and the rest follow as frames; truncated after retention', async () => {
    const u = unique('long')
    await history(u, 1500)
    const { c, snap } = await subscribed(a, u)
    expect(snap.user).toEqual({ userId: u, lastSeq: 1000, unread: 1500 })
    expect(snap.notifications.map((x: any) => x.seq)).toEqual(upTo(1000))
    await waitFor('the rest as frames', () => seqs(c).length >= 500)
    expect(seqs(c)).toEqual(upTo(1500, 1000))
    c.close()
    const resumed = await subscribed(a, u, 1490)
    expect(resumed.snap.notifications.map((x: any) => x.seq)).toEqual(upTo(1500, 1490))
    expect(resumed.snap.user.lastSeq).toBe(1500)
    await notify([u])
    expect((await resumed.c.next()).seq).toBe(1501)
    resumed.c.close()
    // Retention took seq 1-100: a resume from before that says so, and gets what is kept.
    await db.sql`delete from notifications where user_id = ${u} and seq <= 100`
    const truncated = await subscribed(a, u, 50)
    expect(truncated.snap.truncated).toBe(true)
    expect(truncated.snap.notifications[0].seq).toBe(101)
    truncated.c.close()
    expect((await subscribed(a, u, 100)).snap.truncated).toBeUndefined()
  })

  test('retention deletes what a socket has not got yet: it goes on after the hole, in order, nothing twice; a resume from before it is truncated', async () => {
    const u = unique('ret')
    // On B, which never reconciles: what its socket gets came through the stream and gap repair.
    const { c, snap } = await subscribed(b, u)
    expect(snap.user.lastSeq).toBe(0)
    for (let i = 0; i < 3; i++) await notify([u])
    await waitFor('1-3 on the socket', () => seqs(c).length >= 3)
    // 4-6 committed without reaching the stream (a relay behind, a process gone), so the socket
    // stands at 3 with 4-6 to be read; then all of 1-6 is past NOTIFICATION_RETENTION_DAYS and the
    // retention loop deletes it: the gap before the next notification can never be filled.
    await db.sql.begin(async (tx) => {
      await tx`update user_seqs set last_seq = 6 where user_id = ${u}`
      await tx`insert into notifications (user_id, seq, type) select ${u}, g, 'bulk.old' from generate_series(4, 6) g`
      await tx`update notifications set created_at = now() - make_interval(days => ${a.config.NOTIFICATION_RETENTION_DAYS + 1}) where user_id = ${u}`
    })
    const swept = await a.retention.runOnce()
    expect(swept.status).toBe('ok')
    expect((await db.sql`select seq from notifications where user_id = ${u}`).length).toBe(0)
    expect(await a.notificationQueries.firstRetained(u)).toBe(7)
    for (let i = 0; i < 4; i++) await notify([u])
    await waitFor('7-10 on the socket', () => seqs(c).at(-1) === 10)
    expect(seqs(c)).toEqual([1, 2, 3, 7, 8, 9, 10])
    expect(await a.notificationQueries.firstRetained(u)).toBe(7)
    c.close()
    // A resume from before the deleted range gets what is kept, and says something is missing.
    const resumed = await subscribed(b, u, 2)
    expect(resumed.snap.truncated).toBe(true)
    expect(resumed.snap.user).toMatchObject({ userId: u, lastSeq: 10 })
    expect(resumed.snap.notifications.map((x: any) => x.seq)).toEqual([7, 8, 9, 10])
    await notify([u])
    expect((await resumed.c.next()).seq).toBe(11)
    resumed.c.close()
    // From 6 nothing is missing.
    const after = await subscribed(b, u, 6)
    expect(after.snap.truncated).toBeUndefined()
    expect(after.snap.notifications.map((x: any) => x.seq)).toEqual([7, 8, 9, 10, 11])
    after.c.close()
  })

  test('deliveredAt: set for what a socket was sent (snapshot or frame), in batched writes; not for what no socket got', async () => {
    const [u, offline] = [unique('dlv'), unique('off')]
    await notify([u, offline])
    await notify([u, offline])
    const { c } = await subscribed(a, u)
    await notify([u])
    await c.next()
    await a.delivered.flush()
    const state = async (user: string) => (await call('GET', `/v1/users/${user}/notifications`)).body.items.map((x: any) => x.deliveredAt !== null)
    expect(await state(u)).toEqual([true, true, true])
    expect(await state(offline)).toEqual([false, false])
    c.close()
    // One statement for many marks, whatever the number of frames.
    const calls: number[] = []
    const marks = createDeliveredMarks({
      queries: { markDelivered: async (refs) => (calls.push(refs.length), a.notificationQueries.markDelivered(refs)) },
      log: a.log,
      metrics: a.metrics,
      flushMs: 50
    })
    for (let i = 1; i <= 2; i++) for (let k = 0; k < 500; k++) marks.add(offline, i)
    await waitFor('the flush', () => calls.length > 0)
    await marks.stop()
    expect(calls).toEqual([2])
    expect(await state(offline)).toEqual([true, true])
  })

  test("a watcher's socket gets shipment.status_changed when its shipment's status changes", async () => {
    const u = unique('watcher')
    const tn = unique('W').replaceAll('-', '').toUpperCase()
    const s = await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: tn })
    await call('PUT', `/v1/shipments/${s.body.id}/watchers/${u}`)
    const { c } = await subscribed(b, u)
    await call('POST', '/v1/events', {
      events: [{ carrier: 'dhl', trackingNumber: tn, carrierStatus: 'PU', status: 'in_transit', occurredAt: '2026-11-20T08:00:00Z' }]
    })
    const f = await c.next()
    expect(f).toMatchObject({
      type: 'notification',
      seq: 1,
      notification: { type: 'shipment.status_changed', shipmentId: s.body.id, data: { from: 'pending', to: 'in_transit', trackingNumber: tn } }
    })
    c.close()
  })

  test("presence: a socket counts for the user it subscribes to, and for its token's sub, until it closes", async () => {
    const u = unique('here')
    const presence = async () => (await call('GET', `/v1/users/${u}/presence`)).body
    const first = await subscribed(b, u)
    await waitFor('online', async () => (await presence()).connections === 1)
    const second = await userClient(a, u, { sub: u, topics: ['shipment:*'] })
    await waitFor('two connections', async () => (await presence()).connections === 2)
    expect((await call('GET', `/v1/presence?userIds=${u},nobody`)).body.items).toEqual([
      { userId: u, online: true, connections: 2, lastSeenAt: expect.stringMatching(/Z$/) },
      { userId: 'nobody', online: false, connections: 0, lastSeenAt: null }
    ])
    first.c.close()
    await waitFor('one left', async () => (await presence()).connections === 1)
    second.close()
    await waitFor('offline', async () => (await presence()).online === false)
    expect((await presence()).lastSeenAt).not.toBeNull()
  })
})

describe('exactly once, in order', () => {
  test('a user subscribed on process B gets the notifications created through A exactly once, in order', async () => {
    const u = unique('cross')
    await notify([u])
    const { c, snap } = await subscribed(b, u)
    expect(snap.user.lastSeq).toBe(1)
    for (let i = 0; i < 20; i++) await notify([u, unique('other')])
    await waitFor('21 notifications on B', () => seqs(c).length >= 20)
    await Bun.sleep(100)
    expect(seqs(c)).toEqual(upTo(21, 1))
    // They came through notification-workers on notifications:stream, and nothing is left pending.
    await waitFor('the group caught up', async () => (await a.engine.groupLag(NOTIFICATION_STREAM, NOTIFICATION_GROUP)).pending === 0)
    expect((await b.metrics.hubOffers.get()).values.find((v) => v.labels.source === 'fanout')?.value).toBeGreaterThanOrEqual(20)
    c.close()
  })

  test('the snapshot race: sockets subscribing while notifications are created every few ms lose and repeat nothing', async () => {
    const u = unique('race')
    const tn = unique('R').replaceAll('-', '').toUpperCase()
    const s = await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: tn })
    await call('PUT', `/v1/shipments/${s.body.id}/watchers/${u}`)
    let creating = true
    let at = Date.UTC(2026, 10, 23)
    const producer = (async () => {
      // Through A and B, and every fourth one a status change of a watched shipment.
      for (let i = 0; creating; i++) {
        if (i % 4 === 3)
          await call('POST', '/v1/events', {
            events: [
              {
                carrier: 'dhl',
                trackingNumber: tn,
                carrierStatus: `S${i}`,
                status: i % 8 === 3 ? 'in_transit' : 'out_for_delivery',
                occurredAt: new Date((at += 60_000)).toISOString()
              }
            ]
          })
        else await notify([u], {}, api(i % 2 ? b : a))
        await Bun.sleep(3)
      }
    })()
    const clients: { c: Client; from: number; listed: number[] }[] = []
    await Promise.all(
      Array.from({ length: 60 }, async (_, i) => {
        await Bun.sleep(Math.random() * 1500)
        const { c, snap } = await subscribed(i % 2 ? b : a, u, i % 3 === 0 ? 0 : undefined)
        clients.push({ c, from: snap.user.lastSeq, listed: snap.notifications.map((x: any) => x.seq) })
      })
    )
    creating = false
    await producer
    const [{ last }] = (await db.sql`select last_seq as last from user_seqs where user_id = ${u}`) as any
    for (const { c, from, listed } of clients) {
      // Nothing was read, so the snapshot lists every one up to its lastSeq (unread, or after since 0).
      expect(listed).toEqual(upTo(from))
      await waitFor(`a client from ${from} to reach ${last}`, () => from === last || seqs(c).at(-1) === last, 10_000)
      expect(seqs(c)).toEqual(upTo(last, from))
      c.close()
    }
  }, 60_000)
})

describe('failures', () => {
  outageTest('Redis stopped while notifications are created: every one is delivered, in order, after it returns', async () => {
    const redis = await privateRedis()
    await redis.start()
    const env = { DATABASE_URL: db.url, REDIS_URL: redis.url, POLL_ENABLED: 'false', OUTBOX_GRACE_MS: '0', OUTBOX_INTERVAL_MS: '100' }
    const creator = testService({ ...env, RECONCILE_MS: '200' })
    // The subscriber's process learns of them only from the stream: no reconcile.
    const reader = testService({ ...env, RECONCILE_MS: '3600000' }, { shareEngineWith: creator })
    try {
      await Promise.all([creator.start(), reader.start()])
      await waitFor('redis', () => creator.engine.isReady && reader.engine.isReady)
      const u = unique('outage')
      const { c } = await subscribed(reader, u)
      for (let i = 0; i < 5; i++) expect((await notify([u], {}, api(creator))).status).toBe(202)
      await waitFor('5 before the outage', () => seqs(c).length >= 5)
      await redis.stop()
      for (let i = 0; i < 10; i++) expect((await notify([u], { title: `down ${i}` }, api(creator))).status).toBe(202)
      // Accepted, and waiting in the outbox (the first five may still wait for their acks' flush).
      expect((await db.sql<{ n: number }[]>`select count(*)::int as n from notification_outbox where user_id = ${u} and seq > 5`)[0]!.n).toBe(10)
      await redis.start()
      await waitFor('all 15 after Redis is back', () => seqs(c).length >= 15, 15_000)
      expect(seqs(c)).toEqual(upTo(15))
      await waitFor(
        'the outbox drained',
        async () => (await db.sql<{ n: number }[]>`select count(*)::int as n from notification_outbox where user_id = ${u}`)[0]!.n === 0
      )
      c.close()
    } finally {
      await Promise.all([creator.stop(), reader.stop()])
      await redis.stop()
    }
  })

  redisTest(
    'the presence of another OS process is shared only through Redis',
    'a process killed with SIGKILL: its sockets got every notification once, in order, and its users are offline within PRESENCE_TTL_MS',
    async () => {
      const ttl = 1500
      const port = await freePort()
      const child = Bun.spawn([process.execPath, `${import.meta.dir}/../../src/main.ts`], {
        env: {
          ...process.env,
          DATABASE_URL: db.url,
          ENGINE: 'redis',
          REDIS_URL: testRedisUrl!,
          REDIS_PREFIX: a.config.REDIS_PREFIX,
          API_KEYS: API_KEY,
          TOKEN_SECRET,
          LOG_LEVEL: 'warn',
          MIGRATE_ON_BOOT: 'false',
          POLL_ENABLED: 'false',
          PORT: String(port),
          PRESENCE_TTL_MS: String(ttl),
          RECONCILE_MS: '3600000'
        },
        stdout: 'inherit',
        stderr: 'inherit'
      })
      try {
        await waitFor('the child ready', async () => (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => null))?.ok, 15_000)
        const u = unique('killed')
        const { token } = await a.tokens.mint({ sub: null, topics: [`user:${u}`], ttlSeconds: 60 })
        const c = await connect(`ws://127.0.0.1:${port}/v1/ws?token=${token}`)
        c.send({ op: 'subscribe', topic: `user:${u}` })
        expect((await c.next()).type).toBe('snapshot')
        const presence = async () => (await call('GET', `/v1/users/${u}/presence`)).body
        await waitFor('online through the child', async () => (await presence()).online)
        for (let i = 0; i < 10; i++) await notify([u])
        await waitFor('10 on the child', () => seqs(c).length >= 10)
        await Bun.sleep(100)
        expect(seqs(c)).toEqual(upTo(10))
        child.kill('SIGKILL')
        const killedAt = Date.now()
        await child.exited
        // Its last heartbeat was before the kill, so by then its entry has expired, however loaded the machine.
        await Bun.sleep(Math.max(0, killedAt + ttl + 20 - Date.now()))
        expect(await presence()).toMatchObject({ userId: u, online: false, connections: 0 })
      } finally {
        child.kill('SIGKILL')
        await child.exited
      }
    }
  )
})
