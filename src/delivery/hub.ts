/**
 * The hub: this process's WebSocket side, put together from one part per job —
 * connections.ts (sockets, tokens, frames), subscriptions.ts (who follows which topic, the
 * snapshot handoff), sequencer.ts (order, gaps, exactly once), feed.ts (fan-out, local commits,
 * reconcile) — and the topic kinds it serves (topic-kind.ts; shipment-kind.ts). Bun's native
 * topics do the sending.
 *
 * Guarantees (contract §5): for every topic a socket is subscribed to, every event after its
 * snapshot's lastSeq (or after `since`) exactly once, in seq order, for as long as it stays
 * open — across lost pub/sub messages and Redis outages, because gaps are read back from
 * PostgreSQL and a reconcile loop compares every local topic with it.
 */
import type { Engine } from '../engine/engine.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { createConnections, type ConnectionHooks } from './connections.ts'
import { createFeed } from './feed.ts'
import type { Publisher } from './socket.ts'
import { createSubscriptions } from './subscriptions.ts'
import type { Tokens } from './tokens.ts'
import { createTopicKinds, type TopicKind } from './topic-kind.ts'

export type { Publisher, Socket } from './socket.ts'

export function createHub(deps: {
  kinds: readonly TopicKind[]
  engine: Engine
  tokens: Tokens
  log: Logger
  metrics: Metrics
  reconcileMs: number
  /** The fan-out channels to listen on (default: tracking:fanout). */
  channels?: readonly string[]
  /** Told of sockets whose token names a user (presence). */
  connectionHooks?: ConnectionHooks
  /** Token checks and frames that may wait for a slice (tests make it small). */
  maxQueuedSocketTasks?: number
}) {
  const { engine, tokens, log, metrics, reconcileMs, maxQueuedSocketTasks } = deps
  const kinds = createTopicKinds(deps.kinds)
  const subs = createSubscriptions({ kinds, log, metrics })
  const feed = createFeed({ engine, subs, log, metrics, reconcileMs, channels: deps.channels })
  const connections = createConnections({ tokens, subs, metrics, maxQueuedSocketTasks, hooks: deps.connectionHooks })

  return {
    sequencer: subs.sequencer,
    kinds,
    start(server: Publisher) {
      subs.start(server)
      feed.start()
    },
    async stop() {
      feed.stop()
      await subs.sequencer.idle()
    },
    reconcile: feed.reconcile,
    onCommitted: feed.onCommitted,
    open: connections.open,
    message: connections.message,
    close: connections.close
  }
}

export type Hub = ReturnType<typeof createHub>
