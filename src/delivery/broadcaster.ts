/**
 * The broadcaster: reads a stream as its consumer group — `tracking:events` as `ws-broadcaster`,
 * `notifications:stream` as `notification-workers`, one broadcaster each — and fans every entry
 * out to all service processes over the engine's pub/sub (one message per batch read), then
 * acknowledges it. Entries are `{topic, seq, data}` whatever the kind of topic, so one
 * implementation serves every stream.
 *
 * Guarantees: an entry is acknowledged only after it was handed to pub/sub (or found
 * malformed: logged, counted and acknowledged at once, so it never blocks the group);
 * entries left pending by a consumer that died are reclaimed after `claimIdleMs` (every one of
 * them in one claim pass, page after page); a batch whose publish and acknowledgement failed is
 * handed out again on the next turn, not left for a claim after `claimIdleMs`; the group is
 * created if missing and re-created if the stream vanished (Redis restarted empty). Pub/sub may
 * still lose a message; the per-topic sequencer (gap repair and reconcile from PostgreSQL) is
 * what makes delivery exact.
 *
 * Consumers do not pile up in the group (one per process start otherwise): `stop()` deletes this
 * process's consumer unless it still holds pending entries, and every claim pass deletes the
 * consumers that hold none and have been idle longer than 2 × `claimIdleMs` (left by processes
 * that died, or that stopped holding entries someone has claimed since).
 *
 * Bounded: at most `count` entries per read, one read at a time; `stop()` ends the loop at once
 * (it aborts the blocking read).
 */
import type { Engine, StreamEntry } from '../engine/engine.ts'
import { GroupGoneError } from '../engine/engine.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { STREAM as TRACKING_STREAM } from '../pipeline/stream.ts'

export const GROUP = 'ws-broadcaster'
/** The pub/sub channel every process listens on; each message is a JSON array of FanoutMessage. */
export const FANOUT_CHANNEL = 'tracking:fanout'

/** What travels to every process, whatever the topic's kind: `data` is the frame's body as JSON. */
export interface FanoutMessage {
  topic: string
  seq: number
  data: string
}

const TOPIC_RE = /^[a-z]+:[^\s]{1,300}$/

/** A stream entry as a fan-out message, or null when it is malformed. `check` is the kind's test of `data`. */
export function parseEntry(
  message: Readonly<Record<string, string>> | undefined,
  check: (topic: string, seq: number, data: unknown) => boolean
): FanoutMessage | null {
  if (!message) return null
  const { topic, seq, data } = message
  const n = Number(seq)
  if (!topic || !TOPIC_RE.test(topic) || !Number.isInteger(n) || n < 1 || !data) return null
  try {
    const parsed = JSON.parse(data)
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed) || !check(topic, n, parsed)) return null
  } catch {
    return null
  }
  return { topic, seq: n, data }
}

/** Which stream a broadcaster reads, as which group, and the channel it fans out on. */
export interface BroadcastRoute {
  stream: string
  group: string
  channel: string
}

export const TRACKING_ROUTE: BroadcastRoute = { stream: TRACKING_STREAM, group: GROUP, channel: FANOUT_CHANNEL }

export function createBroadcaster(deps: {
  engine: Engine
  /** Default: tracking:events, ws-broadcaster, tracking:fanout. */
  route?: BroadcastRoute
  consumer: string
  claimIdleMs: number
  log: Logger
  metrics: Metrics
  /** Whether an entry's parsed `data` fits its topic's kind (topic-kinds.ts). */
  check: (topic: string, seq: number, data: unknown) => boolean
  blockMs?: number
  count?: number
}) {
  const { engine, consumer, claimIdleMs, log, metrics, check, blockMs = 1000, count = 200 } = deps
  const { stream, group, channel } = deps.route ?? TRACKING_ROUTE
  const labels = { group }
  let stopped = true
  let loop: Promise<void> | null = null
  let abort = new AbortController()
  let groupReady = false
  let lastClaim = 0
  /** A batch whose publish and acknowledgement failed: still pending with this consumer, handed out again first. */
  let retry: readonly StreamEntry[] | null = null

  async function ensureGroup() {
    const made = await engine.ensureGroup(stream, group)
    if (made.created) log.info({ component: 'broadcaster', stream, from: made.from }, 'consumer group created')
    groupReady = true
  }

  async function handle(entries: readonly StreamEntry[]) {
    const ack: string[] = []
    const out: FanoutMessage[] = []
    for (const e of entries) {
      const m = parseEntry(e.message, check)
      if (!m) {
        metrics.streamMalformed.inc(labels)
        log.warn(
          { component: 'broadcaster', group, id: e.id, fields: e.message ? Object.keys(e.message) : null },
          'malformed stream entry acknowledged and skipped'
        )
      } else out.push(m)
      ack.push(e.id)
    }
    if (ack.length === 0) return
    // One command for the batch: one pub/sub message carrying every entry, then the
    // acknowledgement (the group's state lives in the engine, so any connection may acknowledge).
    try {
      await engine.publishAndAck(stream, group, ack, channel, out.length > 0 ? JSON.stringify(out) : null)
    } catch (err) {
      // The entries stay pending with this consumer: hand them out again on the next turn rather
      // than leave them to a claim after claimIdleMs (and /readyz degraded that long). If the
      // publish did happen, the copies are dropped by seq.
      retry = entries
      throw err
    }
    metrics.streamDelivered.inc(labels, out.length)
  }

  async function once() {
    if (!groupReady) await ensureGroup()
    if (retry) {
      const again = retry
      retry = null
      await handle(again)
    }
    if (Date.now() - lastClaim >= claimIdleMs / 2) {
      lastClaim = Date.now()
      // Page after page while pages come back full: a dead consumer's whole backlog in one pass.
      for (;;) {
        const claimed = await engine.claimIdle(stream, group, consumer, { idleMs: claimIdleMs, count })
        if (claimed.length > 0) {
          log.info({ component: 'broadcaster', group, entries: claimed.length }, 'reclaimed entries left pending by another consumer')
          metrics.streamReclaimed.inc(labels, claimed.length)
          await handle(claimed)
        }
        if (claimed.length < count || stopped) break
      }
      const gone = await engine.deleteIdleConsumers(stream, group, 2 * claimIdleMs)
      if (gone.length > 0)
        log.info({ component: 'broadcaster', group, consumers: gone }, 'removed idle consumers that hold nothing (left by processes that are gone)')
    }
    const read = await engine.readGroup(stream, group, consumer, { count, blockMs, signal: abort.signal })
    if (read.length > 0) await handle(read)
  }

  async function run() {
    let failures = 0
    while (!stopped) {
      if (!engine.isReady) {
        await Bun.sleep(100)
        continue
      }
      try {
        await once()
        failures = 0
      } catch (err) {
        if (stopped) break
        if (err instanceof GroupGoneError) {
          groupReady = false
          retry = null
          log.warn({ component: 'broadcaster', group }, 'stream or consumer group gone (Redis restarted empty?); re-creating it')
          continue
        }
        failures++
        if (failures === 1) log.warn({ component: 'broadcaster', group, err: (err as Error).message ?? String(err) }, 'broadcaster read failed; retrying')
        await Bun.sleep(Math.min(50 * 2 ** failures, 2000))
      }
    }
  }

  return {
    /**
     * Makes the group now, if the engine answers (service.start() calls it before anything of
     * this process appends: the group reads from the end of the stream, so what was appended
     * before it is skipped). Otherwise the loop makes it once the engine is back. Never rejects.
     */
    async prepare(): Promise<boolean> {
      try {
        await ensureGroup()
        return true
      } catch (err) {
        log.warn(
          { component: 'broadcaster', err: (err as Error).message },
          'consumer group not made at start; the broadcaster makes it once the engine answers'
        )
        return false
      }
    },
    start() {
      if (!stopped) return
      stopped = false
      abort = new AbortController()
      loop = run()
      log.info({ component: 'broadcaster', consumer, group }, 'broadcaster started')
    },
    async stop() {
      stopped = true
      abort.abort()
      await loop
      if (!loop || !engine.isReady) return
      loop = null
      // Entries it still holds stay pending with it, for another process to claim.
      const gone = await engine.deleteConsumer(stream, group, consumer).catch((err) => {
        log.warn(
          { component: 'broadcaster', group, consumer, err: (err as Error).message },
          'could not remove this consumer from the group; another process will once it is idle'
        )
        return true
      })
      if (!gone)
        log.info({ component: 'broadcaster', group, consumer }, 'consumer left in the group: it holds pending entries, which another process will claim')
    },
    /** How far behind the group is (engine.ts's GroupLag), also set as gauges. */
    async lag() {
      const lag = await engine.groupLag(stream, group)
      metrics.broadcasterLag.set({ ...labels, kind: 'pending' }, lag.pending)
      metrics.broadcasterLag.set({ ...labels, kind: 'unread' }, lag.unread)
      return lag
    }
  }
}

export type Broadcaster = ReturnType<typeof createBroadcaster>
