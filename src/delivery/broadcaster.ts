/**
 * The broadcaster: reads `tracking:events` as consumer group `ws-broadcaster` and fans every
 * entry out to all service processes over Redis pub/sub (one message per batch read), then
 * acknowledges it.
 *
 * Guarantees: an entry is acknowledged only after it was handed to pub/sub (or found
 * malformed: logged, counted and acknowledged at once, so it never blocks the group);
 * entries left pending by a consumer that died are reclaimed with XAUTOCLAIM after
 * `claimIdleMs`; the group is created if missing and re-created if the stream vanished
 * (Redis restarted empty). Pub/sub may still lose a message; the per-topic sequencer
 * (gap repair and reconcile from PostgreSQL) is what makes delivery exact.
 *
 * Bounded: at most `count` entries per read, one read at a time; `stop()` ends the loop after
 * the current read (a blocking read lasts at most `blockMs`).
 */
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { streamKey, type Redis } from '../pipeline/stream.ts'

export const GROUP = 'ws-broadcaster'
/** The pub/sub channel every process listens on; each message is a JSON array of FanoutMessage. */
export const fanoutChannel = (prefix: string) => `${prefix}tracking:fanout`

const FANOUT_ACK = await Bun.file(new URL('./fanout-ack.lua', import.meta.url)).text()

export interface FanoutMessage {
  topic: string
  shipmentId: string
  seq: number
  data: string
}

type Entry = { id: string; message: Record<string, string> }

export function parseEntry(message: Record<string, string> | undefined): FanoutMessage | null {
  if (!message) return null
  const { topic, shipmentId, seq, data } = message
  const n = Number(seq)
  if (!topic || !/^shipment:[a-z][a-z0-9_-]{1,31}:[A-Z0-9._-]{1,64}$/.test(topic) || !shipmentId || !Number.isInteger(n) || n < 1 || !data) return null
  try {
    const parsed = JSON.parse(data)
    if (parsed?.event?.seq !== n || typeof parsed.shipment !== 'object') return null
  } catch {
    return null
  }
  return { topic, shipmentId, seq: n, data }
}

export function createBroadcaster(deps: {
  redis: Redis // a connection of its own: XREADGROUP BLOCK holds it
  publisher: Redis
  prefix: string
  consumer: string
  claimIdleMs: number
  log: Logger
  metrics: Metrics
  blockMs?: number
  count?: number
}) {
  const { redis, publisher, prefix, consumer, claimIdleMs, log, metrics, blockMs = 1000, count = 200 } = deps
  const key = streamKey(prefix)
  const channel = fanoutChannel(prefix)
  let stopped = true
  let loop: Promise<void> | null = null
  let groupReady = false
  let lastClaim = 0
  let startId = '$'

  async function ensureGroup() {
    try {
      await redis.xGroupCreate(key, GROUP, startId, { MKSTREAM: true })
      log.info({ component: 'broadcaster', stream: key, from: startId }, 'consumer group created')
    } catch (err) {
      if (!String((err as Error).message).includes('BUSYGROUP')) throw err
    }
    groupReady = true
    // If the group has to be made again, the stream is new: read it from its start.
    startId = '0'
  }

  async function handle(entries: Entry[]) {
    const ack: string[] = []
    const out: FanoutMessage[] = []
    for (const e of entries) {
      const m = parseEntry(e.message)
      if (!m) {
        metrics.streamMalformed.inc()
        log.warn({ component: 'broadcaster', id: e.id, fields: e.message ? Object.keys(e.message) : null }, 'malformed stream entry acknowledged and skipped')
      } else out.push(m)
      ack.push(e.id)
    }
    if (ack.length === 0) return
    // One command for the batch: one pub/sub message carrying every entry, then the
    // acknowledgement (the group's state lives in Redis, so any connection may acknowledge).
    await publisher.eval(FANOUT_ACK, { keys: [key], arguments: [GROUP, channel, out.length > 0 ? JSON.stringify(out) : '', ...ack] })
    metrics.streamDelivered.inc(out.length)
  }

  async function once() {
    if (!groupReady) await ensureGroup()
    if (Date.now() - lastClaim >= claimIdleMs / 2) {
      lastClaim = Date.now()
      const claimed = (await redis.xAutoClaim(key, GROUP, consumer, claimIdleMs, '0-0', { COUNT: count })) as unknown as { messages: (Entry | null)[] }
      const live = claimed.messages.filter((m): m is Entry => m !== null)
      if (live.length > 0) {
        log.info({ component: 'broadcaster', entries: live.length }, 'reclaimed entries left pending by another consumer')
        metrics.streamReclaimed.inc(live.length)
        await handle(live)
      }
    }
    const res = (await redis.xReadGroup(GROUP, consumer, { key, id: '>' }, { COUNT: count, BLOCK: blockMs })) as unknown as { messages: Entry[] }[] | null
    if (res) for (const s of res) await handle(s.messages)
  }

  async function run() {
    let failures = 0
    while (!stopped) {
      if (!redis.isReady) {
        await Bun.sleep(100)
        continue
      }
      try {
        await once()
        failures = 0
      } catch (err) {
        const message = (err as Error).message ?? String(err)
        if (message.includes('NOGROUP')) {
          groupReady = false
          log.warn({ component: 'broadcaster' }, 'stream or consumer group gone (Redis restarted empty?); re-creating it')
          continue
        }
        failures++
        if (failures === 1) log.warn({ component: 'broadcaster', err: message }, 'broadcaster read failed; retrying')
        await Bun.sleep(Math.min(50 * 2 ** failures, 2000))
      }
    }
  }

  return {
    start() {
      if (!stopped) return
      stopped = false
      loop = run()
      log.info({ component: 'broadcaster', consumer, group: GROUP }, 'broadcaster started')
    },
    async stop() {
      stopped = true
      await loop
    },
    /**
     * How far behind the group is: entries delivered but not acknowledged (`pending`, and the
     * age of the oldest), and entries not read yet (`unread`, and the age of the first).
     */
    async lag(): Promise<{ pending: number; oldestMs: number | null; unread: number; unreadAgeMs: number | null }> {
      const ageOf = (id: string) => Date.now() - Number(id.split('-')[0])
      const groups = (await publisher.xInfoGroups(key).catch(() => [])) as unknown as Record<string, unknown>[]
      const g = groups.find((x) => x.name === GROUP)
      if (!g) return { pending: 0, oldestMs: null, unread: 0, unreadAgeMs: null }
      const pending = Number(g.pending ?? 0)
      const unread = Number(g.lag ?? 0)
      let oldestMs: number | null = null
      let unreadAgeMs: number | null = null
      if (pending > 0) {
        const info = (await publisher.xPending(key, GROUP)) as unknown as { firstId: string | null }
        if (info.firstId) oldestMs = ageOf(info.firstId)
      }
      if (unread > 0) {
        const next = (await publisher.xRange(key, `(${String(g['last-delivered-id'])}`, '+', { COUNT: 1 })) as unknown as { id: string }[]
        if (next[0]) unreadAgeMs = ageOf(next[0].id)
      }
      metrics.broadcasterLag.set({ kind: 'pending' }, pending)
      metrics.broadcasterLag.set({ kind: 'unread' }, unread)
      return { pending, oldestMs, unread, unreadAgeMs }
    }
  }
}

export type Broadcaster = ReturnType<typeof createBroadcaster>
