/**
 * `bun run load offline-burst` — 10,000 users offline get 10 notifications each (ten
 * `POST /v1/notifications` of 10,000 users: 100,000 notifications), then all come back within 10
 * s (four swarm processes, connections spread evenly over the 10 s), each subscribing without
 * `since`: its snapshot must list exactly its 10 unread ones. Reports the time to write the
 * burst, the time to drain (from the first reconnect until the last client has all 10, and how
 * long after the last reconnect that was), and that every inbox is complete — in PostgreSQL and
 * at every client — and marked delivered.
 */
import { all, finish, fmtMs, percentile, scaled, setup, swarms } from './lib/common.ts'

const USERS = scaled(10_000)
const EACH = 10
const BACK_WITHIN_MS = 10_000

const s = await setup('offline-burst')
try {
  const users = Array.from({ length: USERS }, (_, i) => `burst-${i}`)
  const clients = swarms(s.ws, users, 4)
  await all(clients, null, 'ready')
  const posts: number[] = []
  const w0 = performance.now()
  for (let i = 1; i <= EACH; i++) {
    const t = performance.now()
    await s.post('/v1/notifications', { userIds: users, type: 'load.burst', title: `#${i}`, data: { n: i } })
    posts.push(performance.now() - t)
  }
  const written = performance.now() - w0

  const t0 = performance.timeOrigin + performance.now()
  const connected = await all<any>(clients, { cmd: 'connect', since: 'none', overMs: BACK_WITHIN_MS }, 'connected', 120_000)
  const lastSnapshot = Math.max(...connected.map((c) => c.last))
  const failed = connected.reduce((n, c) => n + c.failed, 0)
  const settled = await all<any>(clients, { cmd: 'settle', last: Object.fromEntries(users.map((u) => [u, EACH])), timeoutMs: 30_000 }, 'settled', 60_000)
  const complete = settled.reduce((n, x) => n + x.complete, 0)
  const violations = settled.reduce((n, x) => n + x.violations, 0)
  const snapshotP99 = Math.max(...connected.map((c) => c.snapshotMs.p99))

  await Bun.sleep(1000)
  const [db] = await s.db.sql<{ users: number; complete: number; delivered: number }[]>`
    select count(*)::int as users, count(*) filter (where n = ${EACH} and lo = 1 and hi = ${EACH})::int as complete, sum(d)::int as delivered
    from (select user_id, count(*) as n, min(seq) as lo, max(seq) as hi, count(delivered_at) as d from notifications group by user_id) x`
  const drain = lastSnapshot - t0
  const afterLast = lastSnapshot - (t0 + (BACK_WITHIN_MS * (USERS - 1)) / USERS)
  const sorted = [...posts].sort((a, b) => a - b)
  await finish(
    'offline-burst',
    `Offline burst: ${USERS.toLocaleString('en')} users offline, ${EACH} notifications each, all back within ${BACK_WITHIN_MS / 1000} s`,
    [
      {
        what: `the burst written: ${EACH} POSTs of ${USERS.toLocaleString('en')} users`,
        value: `${(written / 1000).toFixed(1)} s (${Math.round((USERS * EACH) / (written / 1000)).toLocaleString('en')} notifications/s; a POST p50 ${fmtMs(percentile(sorted, 50))}, max ${fmtMs(sorted.at(-1)!)})`
      },
      {
        what: 'inboxes complete in PostgreSQL (seq 1–10 each)',
        value: `${db!.complete.toLocaleString('en')} of ${USERS.toLocaleString('en')}`,
        threshold: 'all',
        ok: db!.complete === USERS && db!.users === USERS
      },
      {
        what: 'clients whose snapshot listed exactly their 10 unread',
        value: `${complete.toLocaleString('en')} of ${USERS.toLocaleString('en')} (${failed} failed to subscribe)`,
        threshold: 'all',
        ok: complete === USERS && failed === 0
      },
      { what: 'gaps, repeats or snapshot errors', value: String(violations), threshold: '0', ok: violations === 0 },
      { what: 'time to drain: first reconnect → last client has all 10', value: `${(drain / 1000).toFixed(2)} s` },
      {
        what: 'the last client served after its reconnect began; snapshot p99',
        value: `${fmtMs(afterLast)}; ${fmtMs(snapshotP99)}`,
        threshold: '< 1 s',
        ok: afterLast < 1000
      },
      {
        what: 'notifications marked deliveredAt',
        value: `${db!.delivered.toLocaleString('en')} of ${(USERS * EACH).toLocaleString('en')}`,
        threshold: 'all',
        ok: db!.delivered === USERS * EACH
      }
    ]
  )
  for (const c of clients) await c.close()
} finally {
  await s.teardown()
}
