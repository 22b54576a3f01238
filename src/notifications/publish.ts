/**
 * After a commit that wrote notifications (POST /v1/notifications, or an ingest whose events
 * changed a watched shipment's status): hand them to this process's sockets at once, append them
 * to `notifications:stream` through the engine, and take what was appended out of the outbox
 * (coalesced, acks.ts). Never throws: what the engine did not take stays in
 * `notification_outbox`, and the relay appends it once the engine answers (rule 1).
 */
import type { Engine } from '../engine/engine.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import type { PublishAcks } from '../pipeline/acks.ts'
import { NOTIFICATION_STREAM, type NotificationMessage } from './model.ts'

/** Entries per engine call: a 10,000-user request is ten appends, each atomic, in order. */
const APPEND_CHUNK = 1000

/** Appends in order; how many were appended (a prefix). Never throws. */
export async function appendNotifications(engine: Engine, messages: readonly NotificationMessage[], maxLen: number): Promise<number> {
  let done = 0
  while (done < messages.length && engine.isReady) {
    const chunk = messages.slice(done, done + APPEND_CHUNK)
    const n = await engine.append(
      NOTIFICATION_STREAM,
      chunk.map((m) => ({ topic: m.topic, seq: String(m.seq), data: m.data })),
      { maxLen }
    )
    done += n
    if (n < chunk.length) break
  }
  return done
}

export interface NotificationPublisher {
  /** Resolves with how many reached the stream. */
  publish(messages: readonly NotificationMessage[], source: 'api' | 'watchers'): Promise<number>
}

export function createNotificationPublisher({
  engine,
  acks,
  log,
  metrics,
  maxLen,
  onCommitted
}: {
  engine: Engine
  acks: PublishAcks
  log: Logger
  metrics: Metrics
  maxLen: number
  /** This process's hub (feed.onCommitted): its sockets get the notifications without the stream. Must not throw. */
  onCommitted?: (messages: readonly NotificationMessage[]) => void
}): NotificationPublisher {
  return {
    async publish(messages, source) {
      if (messages.length === 0) return 0
      metrics.notificationsCreated.inc({ source }, messages.length)
      if (onCommitted) {
        try {
          onCommitted(messages)
        } catch (err) {
          log.error({ component: 'notifications', err: (err as Error).message }, 'local delivery failed; the stream still carries these notifications')
        }
        // Bun writes the frames published above at the end of this turn of the event loop: let
        // them go before encoding the stream append, which for 1,000 notifications is ~15 ms of
        // this process's CPU (measured in `bun run load fanout`'s profile).
        await new Promise<void>((resolve) => setImmediate(resolve))
      }
      const n = await appendNotifications(engine, messages, maxLen)
      metrics.notificationsPublished.inc({ path: 'inline' }, n)
      acks.add(messages.slice(0, n).map((m) => ({ key: m.userId, seq: m.seq })))
      return n
    }
  }
}
