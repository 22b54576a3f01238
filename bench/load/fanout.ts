/**
 * `bun run load fanout` — one notification to 1,000 online users: the time from the request to
 * the last socket's frame, over ROUNDS rounds (after WARMUP unmeasured ones), and p50/p99 of every
 * delivery. One parcelcast process on Redis; the 1,000 sockets in a swarm process of their own.
 * Threshold (issue 18): the median round delivers to the last of the 1,000 in under 100 ms.
 */
import { all, finish, fmtMs, percentile, scaled, setup, swarms } from './lib/common.ts'

const USERS = scaled(1000)
const WARMUP = 5
const ROUNDS = 30

const s = await setup('fanout')
try {
  const users = Array.from({ length: USERS }, (_, i) => `fan-${i}`)
  const clients = swarms(s.ws, users, 1)
  await all(clients, null, 'ready')
  const [connected] = await all<any>(clients, { cmd: 'connect', since: 'resume' }, 'connected')
  if (connected.failed > 0) throw new Error(`${connected.failed} sockets did not subscribe`)

  const toLast: number[] = []
  const requestMs: number[] = []
  const every: number[] = []
  for (let r = 0; r < WARMUP + ROUNDS; r++) {
    const t0 = performance.timeOrigin + performance.now()
    await s.post('/v1/notifications', { userIds: users, type: 'load.fanout', title: `round ${r}`, data: { round: r } })
    const answered = performance.timeOrigin + performance.now()
    let times: number[] = []
    const deadline = Date.now() + 10_000
    while (times.length < USERS && Date.now() < deadline) {
      const [d] = await all<any>(clients, { cmd: 'deliveries' }, 'deliveries')
      times = times.concat(d.byRound[r] ?? [])
      if (times.length < USERS) await Bun.sleep(20)
    }
    if (times.length < USERS) throw new Error(`round ${r}: ${times.length} of ${USERS} delivered within 10 s`)
    if (r < WARMUP) continue
    const lat = times.map((t) => t - t0)
    toLast.push(Math.max(...lat))
    requestMs.push(answered - t0)
    every.push(...lat)
    await Bun.sleep(100)
  }
  const [stats] = await all<any>(clients, { cmd: 'stats' }, 'stats')
  const byTime = (a: number[]) => [...a].sort((x, y) => x - y)
  const last = byTime(toLast),
    each = byTime(every),
    req = byTime(requestMs)
  const median = percentile(last, 50)
  await finish(
    'fanout',
    `Fan-out: one notification to ${USERS.toLocaleString('en')} online users`,
    [
      { what: `time to the last of ${USERS} sockets, median of ${ROUNDS} rounds`, value: fmtMs(median), threshold: '< 100 ms', ok: median < 100 },
      { what: 'time to the last socket, fastest / slowest round', value: `${fmtMs(last[0]!)} / ${fmtMs(last.at(-1)!)}` },
      { what: `every delivery (${each.length.toLocaleString('en')}): p50 / p99`, value: `${fmtMs(percentile(each, 50))} / ${fmtMs(percentile(each, 99))}` },
      { what: 'the POST answered (202), median', value: fmtMs(percentile(req, 50)) },
      { what: 'notifications out of order, repeated or missing', value: String(stats.violations), threshold: '0', ok: stats.violations === 0 }
    ],
    [
      "Each round is one `POST /v1/notifications` with the 1,000 userIds, measured from just before the request is sent to each frame's arrival in the swarm process (both clocks: `performance.timeOrigin + now()` on one machine). The sockets are on the process that commits, so its hub has them straight after the commit; the stream and the notification workers carry the same notifications to other processes."
    ]
  )
  for (const c of clients) await c.close()
} finally {
  await s.teardown()
}
