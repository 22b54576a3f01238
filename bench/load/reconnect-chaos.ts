/**
 * `bun run load reconnect-chaos` — 1,000 clients (one user each, in two swarm processes) up for a
 * random 0.2–3 s, then gone for 0–0.5 s, again and again for 60 s, each coming back with `since`
 * = the last seq it has, while notifications flow (every 50 ms, one to 20 random users). Then
 * every client reconnects once more and must reach its user's last seq. Every snapshot and frame
 * is checked as it comes (swarm.ts): the seqs of each user, across all its reconnects, must be
 * 1, 2, 3 … with no gap and no repeat. Afterwards, with every client gone, the server's sockets,
 * topics and presence entries must be back to none, and its RSS back near the baseline: the RSS
 * after a warm-up of the same chaos (WARMUP_SECONDS), once its clients left. The allocator keeps
 * what a process once used (measured in-process with forced GCs: the JS heap went back to its
 * size, RSS stayed at a high-water mark that did not grow with 8,000, then 33,000 reconnects), so
 * only growth beyond the warm-up's mark says something leaks; both are read once the idle
 * process has given back what it will (settledRss).
 */
import { all, finish, mib, scaled, seconds, setup, swarms } from './lib/common.ts'

const USERS = scaled(1000)
const SECONDS = seconds(60)
const WARMUP_SECONDS = Math.min(15, SECONDS)
const EVERY_MS = 50
const PER_POST = Math.min(20, USERS)

const s = await setup('reconnect-chaos', { RECONCILE_MS: '1000' })
try {
  const users = Array.from({ length: USERS }, (_, i) => `chaos-${i}`)
  const clients = swarms(s.ws, users, 2)
  await all(clients, null, 'ready')
  // An idle Bun process gives memory back some seconds after its last garbage (GC, then the
  // allocator's scavenger: seen here as RSS falling by 30 MiB 7-9 s after the clients left).
  async function settledRss() {
    const seen: number[] = []
    for (let i = 0; i < 30; i++) {
      await Bun.sleep(1000)
      seen.push(await s.rss())
      const last = seen.slice(-4)
      if (i >= 12 && Math.max(...last) - Math.min(...last) < 2 ** 20) break
    }
    return seen.at(-1)!
  }

  let created = 0
  async function chaos(seconds: number) {
    let producing = true
    const producer = (async () => {
      for (let r = 0; producing; r++) {
        const t = Date.now()
        const chosen = new Set<string>()
        while (chosen.size < PER_POST) chosen.add(users[Math.floor(Math.random() * USERS)]!)
        await s.post('/v1/notifications', { userIds: [...chosen], type: 'load.chaos', data: { round: r } })
        created += PER_POST
        await Bun.sleep(Math.max(0, EVERY_MS - (Date.now() - t)))
      }
    })()
    const done = await all<any>(clients, { cmd: 'chaos', ms: seconds * 1000, upMs: [200, 3000], downMs: [0, 500] }, 'chaos-done', (seconds + 120) * 1000)
    producing = false
    await producer
    return done.reduce((n, x) => n + x.reconnects, 0)
  }
  // Warm-up: the same chaos, its clients gone; the server's RSS then is the baseline.
  const warmupReconnects = await chaos(WARMUP_SECONDS)
  await all(clients, { cmd: 'disconnect' }, 'disconnected')
  const baseline = await settledRss()

  const reconnects = (await chaos(SECONDS)) - warmupReconnects
  const peak = await s.rss()

  const rows = await s.db.sql<{ user_id: string; last_seq: number }[]>`select user_id, last_seq from user_seqs`
  const last = Object.fromEntries(rows.map((r) => [r.user_id, r.last_seq]))
  const settled = await all<any>(clients, { cmd: 'settle', last, timeoutMs: 60_000 }, 'settled', 120_000)
  const complete = settled.reduce((n, x) => n + x.complete, 0)
  const violations = settled.reduce((n, x) => n + x.violations, 0)
  const frames = settled.reduce((n, x) => n + x.frames, 0)

  await all(clients, { cmd: 'disconnect' }, 'disconnected')
  // The server forgets topics at the next reconcile and presence entries right away.
  const deadline = Date.now() + 15_000
  let sockets = NaN,
    topics = NaN,
    entries = NaN
  while (Date.now() < deadline) {
    ;[sockets = NaN, topics = NaN, entries = NaN] = await Promise.all(
      ['parcelcast_ws_connections', 'parcelcast_ws_topics', 'parcelcast_presence_connections'].map((m) => s.metric(m))
    )
    if (sockets === 0 && topics === 0 && entries === 0) break
    await Bun.sleep(250)
  }
  const after = await settledRss()
  const grown = after - baseline
  const presence = await fetch(`${s.server.url}/v1/presence?userIds=${users.slice(0, 1000).join(',')}`, {
    headers: { authorization: 'Bearer load-key-0123456789' }
  })
  const online = ((await presence.json()) as { items: { online: boolean }[] }).items.filter((p) => p.online).length
  await finish(
    'reconnect-chaos',
    `Reconnect chaos: ${USERS.toLocaleString('en')} clients dropping and coming back at random for ${SECONDS} s`,
    [
      {
        what: 'notifications created; reconnects (after the warm-up); frames received',
        value: `${created.toLocaleString('en')}; ${reconnects.toLocaleString('en')}; ${frames.toLocaleString('en')}`
      },
      {
        what: 'clients with every seq of their user, once, in order',
        value: `${complete.toLocaleString('en')} of ${USERS.toLocaleString('en')}`,
        threshold: 'all',
        ok: complete === USERS
      },
      {
        what: 'gaps, repeats or frames out of order (every snapshot and frame checked)',
        value: `${violations}${settled
          .flatMap((x) => x.samples)
          .slice(0, 3)
          .map((x: string) => `; ${x}`)
          .join('')}`,
        threshold: '0',
        ok: violations === 0
      },
      {
        what: 'server sockets / topics / presence entries after every client left',
        value: `${sockets} / ${topics} / ${entries}`,
        threshold: '0 / 0 / 0',
        ok: sockets === 0 && topics === 0 && entries === 0
      },
      { what: 'users online after every client left (GET /v1/presence)', value: String(online), threshold: '0', ok: online === 0 },
      { what: 'server RSS: baseline / peak / after', value: `${mib(baseline)} / ${mib(peak)} / ${mib(after)}` },
      {
        what: 'RSS after, over the baseline',
        value: `${mib(grown)} (${(Math.max(0, grown) / reconnects).toFixed(0)} bytes per reconnect)`,
        threshold: '< 16 MiB',
        ok: grown < 16 * 2 ** 20
      }
    ],
    [
      `The baseline is the server's RSS once settled (at least 13 s, then 4 samples a second apart within 1 MiB) after a ${WARMUP_SECONDS} s warm-up of the same chaos ended and its clients left; "after" is the same after the measured ${SECONDS} s. A leak of 1 KiB per reconnect would show as ${mib(1024 * reconnects)}.`
    ]
  )
  for (const c of clients) await c.close()
} finally {
  await s.teardown()
}
