/**
 * `bun run load ws-storm` — 10,000 users connected and heartbeating for 60 s: each with its own
 * token, subscribed to its `user:` topic (so counting for presence), pinging every PING_MS. The
 * clients live in four swarm processes. Reports the connect rate (sockets subscribed per second,
 * at most 200 connecting at once per swarm), the server's RSS per connection (RSS with every socket
 * subscribed, less before any, over the sockets), p99 ping→pong over the run, and presence.
 * Threshold (issue 18): under 10 KB of server RSS per socket.
 */
import * as hdr from 'hdr-histogram-js'
import { all, finish, fmtMs, mib, scaled, seconds, setup, swarms } from './lib/common.ts'

const USERS = scaled(10_000)
const SECONDS = seconds(60)
const PING_MS = 5000

const s = await setup('ws-storm')
try {
  const users = Array.from({ length: USERS }, (_, i) => `storm-${i}`)
  const clients = swarms(s.ws, users, 4)
  await all(clients, null, 'ready')
  await Bun.sleep(2000)
  const before = await s.rss()
  const t0 = performance.timeOrigin + performance.now()
  const connected = await all<any>(clients, { cmd: 'connect', since: 'none' }, 'connected', 300_000)
  const last = Math.max(...connected.map((c) => c.last))
  const failed = connected.reduce((n, c) => n + c.failed, 0)
  const rate = (USERS - failed) / ((last - t0) / 1000)
  await Bun.sleep(3000)
  const afterConnect = await s.rss()
  const perSocket = (afterConnect - before) / USERS
  // Presence of a sample, through the API (the heartbeat keeps them online past the TTL).
  const sample = users.filter((_, i) => i % Math.max(1, Math.floor(USERS / 1000)) === 0).slice(0, 1000)
  const presence = async () => {
    const res = await fetch(`${s.server.url}/v1/presence?userIds=${sample.join(',')}`, { headers: { authorization: 'Bearer load-key-0123456789' } })
    return ((await res.json()) as { items: { online: boolean }[] }).items.filter((p) => p.online).length
  }
  const onlineAtStart = await presence()

  await all(clients, { cmd: 'ping', everyMs: PING_MS }, 'ping-started', 10_000).catch(() => null)
  await Bun.sleep(SECONDS * 1000)
  const stats = await all<any>(clients, { cmd: 'stats' }, 'stats')
  const rssEnd = await s.rss()
  const onlineAtEnd = await presence()
  const entries = await s.metric('parcelcast_presence_connections')
  const merged = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
  for (const st of stats) merged.add(hdr.decodeFromCompressedBase64(st.pings.histogram))
  const p99 = merged.getValueAtPercentile(99) / 1000
  const open = stats.reduce((n, st) => n + st.open, 0)
  const closed = stats.reduce((n, st) => n + st.closedByServer, 0)
  const violations = stats.reduce((n, st) => n + st.violations, 0)
  await finish(
    'ws-storm',
    `WebSocket storm: ${USERS.toLocaleString('en')} users connected and heartbeating for ${SECONDS} s`,
    [
      {
        what: 'sockets subscribed (snapshot in)',
        value: `${(USERS - failed).toLocaleString('en')} of ${USERS.toLocaleString('en')}`,
        threshold: 'all',
        ok: failed === 0
      },
      {
        what: 'connect rate (token, upgrade, subscribe, snapshot)',
        value: `${Math.round(rate).toLocaleString('en')} sockets/s (${((last - t0) / 1000).toFixed(1)} s for all)`,
        threshold: '≥ 1,000/s',
        ok: rate >= 1000
      },
      {
        what: 'server RSS per socket',
        value: `${(perSocket / 1024).toFixed(2)} KiB (${mib(before)} → ${mib(afterConnect)}; ${mib(rssEnd)} at the end)`,
        threshold: '< 10 KB',
        ok: perSocket < 10_000
      },
      {
        what: `ping → pong, ${merged.totalCount.toLocaleString('en')} pings: p50 / p99 / max`,
        value: `${fmtMs(merged.getValueAtPercentile(50) / 1000)} / ${fmtMs(p99)} / ${fmtMs(merged.maxValue / 1000)}`,
        threshold: 'p99 < 250 ms',
        ok: p99 < 250
      },
      {
        what: 'sockets still open at the end; closed by the server',
        value: `${open.toLocaleString('en')}; ${closed}`,
        threshold: `all; 0`,
        ok: open === USERS && closed === 0
      },
      { what: 'presence entries the server heartbeats', value: String(entries), threshold: String(USERS), ok: entries === USERS },
      {
        what: `online by GET /v1/presence (${sample.length} sampled), at the start / end`,
        value: `${onlineAtStart} / ${onlineAtEnd}`,
        threshold: `${sample.length} / ${sample.length}`,
        ok: onlineAtStart === sample.length && onlineAtEnd === sample.length
      },
      { what: 'snapshot errors or frames out of order', value: String(violations), threshold: '0', ok: violations === 0 }
    ],
    [
      `Four swarm processes of ${Math.ceil(USERS / 4).toLocaleString('en')} sockets each, at most 200 connecting at once per swarm; every socket pings every ${PING_MS / 1000} s (phases spread). The server heartbeats every presence entry every PRESENCE_TTL_MS / 3 (10 s) in one batched engine call.`
    ]
  )
  for (const c of clients) await c.close()
} finally {
  await s.teardown()
}
