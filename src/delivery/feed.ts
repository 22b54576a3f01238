/**
 * What feeds this process's sequencer: the fan-out channels (every process's events and
 * notifications, through the engine), this process's own commits straight after they commit, and a reconcile loop that
 * compares every local topic with PostgreSQL — which is what makes delivery exact when the other
 * two lose something (pub/sub drops, Redis restarts, the last events before an outage).
 */
import type { Engine } from '../engine/engine.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { FANOUT_CHANNEL, type FanoutMessage } from './broadcaster.ts'
import type { Subscriptions } from './subscriptions.ts'

const RECONCILE_CHUNK = 500

export function createFeed({
  engine,
  subs,
  log,
  metrics,
  reconcileMs,
  channels = [FANOUT_CHANNEL]
}: {
  engine: Engine
  subs: Subscriptions
  log: Logger
  metrics: Metrics
  reconcileMs: number
  channels?: readonly string[]
}) {
  const { sequencer } = subs
  let timer: ReturnType<typeof setTimeout> | null = null
  let unsubscribes: (() => void)[] = []
  let stopped = true

  function onFanout(raw: string) {
    let batch: FanoutMessage[]
    try {
      batch = JSON.parse(raw)
    } catch {
      return
    }
    if (!Array.isArray(batch)) return
    for (const m of batch) {
      if (typeof m?.topic !== 'string' || !Number.isInteger(m.seq) || typeof m.data !== 'string') continue
      const kind = subs.kindOf(m.topic)
      if (!kind) continue
      metrics.hubOffers.inc({ source: 'fanout' })
      sequencer.offer(m.topic, { seq: m.seq, frame: kind.frame(m.topic, m.seq, m.data) })
    }
  }

  // What this process just committed (events, notifications): its own sockets get it without
  // the Redis round trips (append, broadcaster read, pub/sub). The fan-out copy arrives later and
  // is dropped by seq; if this one is lost or overtaken, the sequencer's gap repair covers it as
  // usual. The frame is made from the message's `data`, the string the stream entry carries too.
  function onCommitted(messages: readonly FanoutMessage[]) {
    for (const m of messages) {
      const kind = subs.kindOf(m.topic)
      if (!kind) continue
      metrics.hubOffers.inc({ source: 'local' })
      sequencer.offer(m.topic, { seq: m.seq, frame: kind.frame(m.topic, m.seq, m.data) })
    }
  }

  async function reconcile() {
    const stop = metrics.reconcileDuration.startTimer()
    metrics.wsTopics.set(sequencer.topics().size)
    try {
      for (const [kind, topics] of subs.topicsByKind()) {
        for (let i = 0; i < topics.length; i += RECONCILE_CHUNK) {
          const latest = await kind.lastSeqs(topics.slice(i, i + RECONCILE_CHUNK))
          for (const [topic, seq] of latest) sequencer.reconcile(topic, seq)
        }
      }
    } finally {
      stop()
    }
  }

  function schedule() {
    if (stopped) return
    timer = setTimeout(async () => {
      try {
        await reconcile()
      } catch (err) {
        log.warn({ component: 'hub', err: (err as Error).message }, 'reconcile failed; will retry')
      }
      schedule()
    }, reconcileMs)
  }

  return {
    onCommitted,
    reconcile,
    start() {
      stopped = false
      // The engine re-subscribes by itself after reconnects; what pub/sub misses, reconcile reads back.
      unsubscribes = channels.map((channel) => engine.subscribe(channel, onFanout))
      schedule()
    },
    stop() {
      stopped = true
      if (timer) clearTimeout(timer)
      for (const off of unsubscribes) off()
      unsubscribes = []
    }
  }
}
