/**
 * A swarm of WebSocket clients in a process of its own (the load scenarios run several): one
 * socket per user, each with its own token (minted here with the server's TOKEN_SECRET, as the
 * integrating backend would), subscribed to `user:<userId>`. Driven by JSON lines on stdin,
 * answering JSON lines on stdout:
 *
 *   {"cmd":"connect","overMs":N,"since":"none"|"resume"}  open every socket (spread over N ms, at
 *        most CONNECTING at once), subscribe; answers {"event":"connected",…} once every snapshot is in
 *   {"cmd":"ping","everyMs":N}      every socket pings every N ms (phases spread); pong RTTs are kept
 *   {"cmd":"stats"}                 {"event":"stats", pings: {count, histogram (hdr, base64)}, frames, violations, closedByServer, open}
 *   {"cmd":"deliveries"}            {"event":"deliveries", byRound: {round: [receipt epoch ms, …]}} (and forgets them)
 *   {"cmd":"chaos","ms":N,"upMs":[a,b],"downMs":[a,b]}  each socket stays up a random while, drops,
 *        comes back after a random while with `since` = the last seq it has; {"event":"chaos-done", reconnects}
 *   {"cmd":"settle","last":{user: lastSeq},"timeoutMs":N}  every socket connected, until each has its
 *        user's last seq; {"event":"settled", complete, incomplete, violations, …}
 *   {"cmd":"disconnect"}            closes every socket; {"event":"disconnected"}
 *   {"cmd":"close"}                 closes every socket; {"event":"closed"} and exits
 *
 * Every user's notifications are checked as they come: a snapshot must list exactly the seqs
 * after `since` (or, without since, after nothing: 1, 2, …), each frame must be the next seq.
 * Anything else — a gap, a repeat, a frame out of order — is a violation, counted and sampled.
 * Times are epoch milliseconds with sub-ms precision (performance.timeOrigin + now), comparable
 * between processes of one machine.
 */
import * as hdr from 'hdr-histogram-js'
import { createTokens } from '../../../src/delivery/tokens.ts'

interface Spec {
  ws: string
  secret: string
  users: string[]
}

const spec = JSON.parse(process.argv[2]!) as Spec
const CONNECTING = 200
const now = () => performance.timeOrigin + performance.now()
const out = (m: unknown) => process.stdout.write(JSON.stringify(m) + '\n')

const tokens = createTokens(spec.secret)
interface User {
  id: string
  token: string
  ws: WebSocket | null
  /** The last seq this user's sockets have had, contiguous from 1 (or from where a snapshot without since started). */
  have: number
  subscribed: boolean
  pings: number[]
  pingTimer: ReturnType<typeof setTimeout> | null
}
const users: User[] = []
for (const id of spec.users)
  users.push({
    id,
    token: (await tokens.mint({ sub: id, topics: [`user:${id}`], ttlSeconds: 7200 })).token,
    ws: null,
    have: 0,
    subscribed: false,
    pings: [],
    pingTimer: null
  })

const rtt = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
const snapshotMs = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 })
let frames = 0
let violations = 0
const samples: string[] = []
let closedByServer = 0
let reconnects = 0
let byRound: Record<string, number[]> = {}
let pingEveryMs = 0

function violation(u: User, what: string) {
  violations++
  if (samples.length < 10) samples.push(`${u.id}: ${what}`)
}

function onFrame(u: User, text: string) {
  const at = now()
  if (text === '{"type":"pong"}') {
    const sent = u.pings.shift()
    if (sent !== undefined) rtt.recordValue(Math.max(1, Math.round((at - sent) * 1000)))
    return
  }
  const m = JSON.parse(text)
  if (m.type === 'notification') {
    frames++
    if (m.seq !== u.have + 1) violation(u, `frame ${m.seq} after ${u.have}`)
    else u.have = m.seq
    const round = m.notification?.data?.round
    if (round !== undefined) (byRound[round] ??= []).push(at)
  } else if (m.type === 'snapshot') {
    u.subscribed = true
    const seqs: number[] = m.notifications.map((x: { seq: number }) => x.seq)
    const expected = Array.from({ length: m.user.lastSeq - u.have }, (_, i) => u.have + i + 1)
    if (seqs.join() !== expected.join()) violation(u, `snapshot after ${u.have} listed ${seqs.slice(0, 5).join(',')}… to ${m.user.lastSeq}`)
    u.have = m.user.lastSeq
    for (const x of m.notifications) {
      const round = x.data?.round
      if (round !== undefined) (byRound[round] ??= []).push(at)
    }
  } else if (m.type === 'error') violation(u, `error ${m.code}: ${m.message}`)
}

let inFlight = 0
const waiting: (() => void)[] = []
async function slot() {
  while (inFlight >= CONNECTING) await new Promise<void>((r) => waiting.push(r))
  inFlight++
}
const release = () => {
  inFlight--
  waiting.shift()?.()
}

/** Opens the user's socket and subscribes; resolves once its snapshot is in (or it failed). */
function open(u: User, since: boolean): Promise<void> {
  return new Promise<void>((resolve) => {
    const t0 = now()
    const ws = new WebSocket(`${spec.ws}?token=${u.token}`)
    u.ws = ws
    u.subscribed = false
    u.pings = []
    let settled = false
    const done = () => {
      if (settled) return
      settled = true
      resolve()
    }
    ws.onopen = () => ws.send(JSON.stringify({ op: 'subscribe', topic: `user:${u.id}`, ...(since ? { since: u.have } : {}) }))
    ws.onmessage = (e) => {
      const text = String(e.data)
      const was = u.subscribed
      onFrame(u, text)
      if (!was && u.subscribed) {
        snapshotMs.recordValue(Math.max(1, Math.round((now() - t0) * 1000)))
        done()
      }
    }
    ws.onclose = () => {
      if (u.ws === ws) {
        closedByServer++
        u.ws = null
        u.subscribed = false
      }
      done()
    }
    ws.onerror = () => done()
  })
}

/** Closes the user's socket; nothing it still receives counts (it is gone for the user). */
function drop(u: User) {
  const ws = u.ws
  if (!ws) return
  u.ws = null
  u.subscribed = false
  ws.onmessage = null
  ws.onclose = null
  ws.close()
}

function startPings(u: User) {
  if (!pingEveryMs) return
  const tick = () => {
    if (u.ws && u.subscribed) {
      u.pings.push(now())
      u.ws.send('{"op":"ping"}')
    }
    u.pingTimer = setTimeout(tick, pingEveryMs)
  }
  u.pingTimer = setTimeout(tick, Math.random() * pingEveryMs)
}

const rand = ([a, b]: [number, number]) => a + Math.random() * (b - a)

const handlers: Record<string, (m: any) => Promise<void>> = {
  async connect({ overMs = 0, since = 'none' }) {
    const start = now()
    let last = 0
    await Promise.all(
      users.map(async (u, i) => {
        if (overMs > 0) await Bun.sleep(Math.max(0, start + (overMs * i) / users.length - now()))
        await slot()
        try {
          await open(u, since === 'resume')
        } finally {
          release()
        }
        last = Math.max(last, now())
      })
    )
    const failed = users.filter((u) => !u.subscribed).length
    out({
      event: 'connected',
      n: users.length - failed,
      failed,
      start,
      last,
      snapshotMs: { p50: snapshotMs.getValueAtPercentile(50) / 1000, p99: snapshotMs.getValueAtPercentile(99) / 1000, max: snapshotMs.maxValue / 1000 }
    })
  },
  async ping({ everyMs }) {
    pingEveryMs = everyMs
    for (const u of users) startPings(u)
    out({ event: 'ping-started' })
  },
  async stats() {
    out({
      event: 'stats',
      pings: { count: rtt.totalCount, histogram: hdr.encodeIntoCompressedBase64(rtt) },
      frames,
      violations,
      samples,
      closedByServer,
      open: users.filter((u) => u.ws).length
    })
  },
  async deliveries() {
    out({ event: 'deliveries', byRound })
    byRound = {}
  },
  async chaos({ ms, upMs, downMs }) {
    const end = now() + ms
    await Promise.all(
      users.map(async (u) => {
        while (now() < end) {
          if (!u.ws) {
            reconnects++
            await slot()
            try {
              await open(u, true)
            } finally {
              release()
            }
          }
          await Bun.sleep(Math.min(rand(upMs), Math.max(0, end - now())))
          if (now() >= end) break
          drop(u)
          await Bun.sleep(rand(downMs))
        }
      })
    )
    out({ event: 'chaos-done', reconnects })
  },
  async settle({ last, timeoutMs }) {
    const deadline = now() + timeoutMs
    await Promise.all(
      users.map(async (u) => {
        if (!u.ws || !u.subscribed) {
          drop(u)
          await slot()
          try {
            await open(u, true)
          } finally {
            release()
          }
        }
      })
    )
    const target = (u: User) => last[u.id] ?? 0
    while (now() < deadline && users.some((u) => u.have < target(u))) await Bun.sleep(20)
    const incomplete = users.filter((u) => u.have !== target(u))
    out({
      event: 'settled',
      complete: users.length - incomplete.length,
      incomplete: incomplete.slice(0, 5).map((u) => `${u.id}: ${u.have} of ${target(u)}`),
      incompleteCount: incomplete.length,
      violations,
      samples,
      frames,
      reconnects
    })
  },
  async disconnect() {
    for (const u of users) {
      if (u.pingTimer) clearTimeout(u.pingTimer)
      u.pingTimer = null
      drop(u)
    }
    out({ event: 'disconnected' })
  },
  async close() {
    for (const u of users) {
      if (u.pingTimer) clearTimeout(u.pingTimer)
      drop(u)
    }
    out({ event: 'closed' })
    await Bun.sleep(200)
    process.exit(0)
  }
}

out({ event: 'ready', users: users.length })
for await (const line of console) {
  if (!line.trim()) continue
  const m = JSON.parse(line)
  const h = handlers[m.cmd]
  if (!h) out({ event: 'error', message: `unknown cmd ${m.cmd}` })
  else void h(m).catch((err) => out({ event: 'error', message: String(err) }))
}
