/**
 * The hub: this process's WebSocket side. It verifies tokens, answers subscribe / unsubscribe
 * / ping, reads snapshots, and feeds the fan-out channel — and, straight after the commit, the
 * events this process ingested itself — into the sequencer, which decides what each socket gets;
 * Bun's native topics do the sending.
 *
 * Guarantees (with the sequencer's): for every topic a socket is subscribed to, every event
 * after its snapshot's lastSeq (or after `since`) exactly once, in seq order, for as long as
 * it stays open — across lost pub/sub messages and Redis outages, because gaps are read back
 * from PostgreSQL and a reconcile loop compares every local topic with `shipments.last_seq`.
 * A bad frame is answered with an error frame; only a bad token closes the socket.
 * Token checks and frames are handled in slices of the event loop (slices.ts), in arrival order,
 * so that a reconnect storm does not hold up the delivery of everyone else's events.
 */
import type { Sql } from '../db/client.ts'
import { BusyError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { IdentityError } from '../pipeline/identity.ts'
import type { Engine } from '../engine/engine.ts'
import type { StreamMessage } from '../pipeline/stream.ts'
import { FANOUT_CHANNEL, type FanoutMessage } from './broadcaster.ts'
import { createDeliveryQueries } from './queries.ts'
import { createSequencer } from './sequencer.ts'
import { createSlices } from './slices.ts'
import { TokenError, type TokenClaims, type Tokens } from './tokens.ts'
import { parseTopic, topicAllowed } from './topics.ts'

export const SNAPSHOT_EVENT_LIMIT = 1000
const MAX_TOPICS_PER_SOCKET = 100
/** Socket work (token checks, frames) per turn of the event loop, and how much may wait (slices.ts). */
const SLICE_BUDGET_MS = 4
const MAX_QUEUED_SOCKET_TASKS = 50_000

/** What the hub needs of a Bun WebSocket and of the server (kept narrow: tests and Elysia's types). */
export interface Socket {
  send(data: string): number
  subscribe(topic: string): void
  unsubscribe(topic: string): void
  close(code?: number, reason?: string): void
}
export interface Publisher {
  publish(topic: string, data: string): number
}

interface Frame {
  seq: number
  frame: string
}

interface Conn {
  ws: Socket
  claims: Promise<TokenClaims | null>
  topics: Map<string, { attached: boolean }>
  closed: boolean
}

export function createHub(deps: {
  sql: Sql
  engine: Engine
  tokens: Tokens
  log: Logger
  metrics: Metrics
  reconcileMs: number
  /** Token checks and frames that may wait for a slice (tests make it small). */
  maxQueuedSocketTasks?: number
}) {
  const { sql, engine, tokens, log, metrics, reconcileMs, maxQueuedSocketTasks = MAX_QUEUED_SOCKET_TASKS } = deps
  const queries = createDeliveryQueries(sql, { onLookupQuery: (n) => metrics.subscribeLookups.observe(n) })
  const slices = createSlices({ budgetMs: SLICE_BUDGET_MS, maxQueued: maxQueuedSocketTasks, onDrain: (n) => metrics.wsTasksQueued.set(n) })
  const conns = new WeakMap<object, Conn>()
  const shipmentIds = new Map<string, string>()
  let server: Publisher | null = null
  let timer: ReturnType<typeof setTimeout> | null = null
  let unsubscribeFanout: (() => void) | null = null
  let stopped = true

  const sequencer = createSequencer<Frame, Conn>({
    async fetch(topic, after, upto, limit) {
      const id = shipmentIds.get(topic)
      if (!id) return []
      const rows = await queries.events(id, topic, after, upto, limit)
      metrics.gapFills.inc(rows.length)
      return rows.map((m) => ({ seq: m.seq, frame: eventFrame(topic, m.seq, JSON.stringify({ event: m.event, shipment: m.shipment })) }))
    },
    out: {
      publish(topic, e) {
        server?.publish(topic, e.frame)
        metrics.wsMessages.inc({ path: 'publish' })
      },
      send(c, _topic, e) {
        if (!c.closed) c.ws.send(e.frame)
        metrics.wsMessages.inc({ path: 'handover' })
      },
      attach(c, topic) {
        const t = c.topics.get(topic)
        // Gone meanwhile: the sequencer has already counted it as attached, so leave as such.
        if (!t || c.closed) return sequencer.leave(topic, c, true)
        c.ws.subscribe(topic)
        t.attached = true
      },
      overflow(c, topic) {
        log.warn({ component: 'hub', topic }, 'socket fell too far behind during its handover; closing it')
        c.ws.close(4008, 'too slow: reconnect and subscribe with since')
      }
    },
    onError(topic, err) {
      log.warn({ component: 'hub', topic, err: (err as Error).message }, 'delivery work failed; the next event or reconcile will repair it')
    }
  })

  function onFanout(raw: string) {
    let batch: FanoutMessage[]
    try {
      batch = JSON.parse(raw)
    } catch {
      return
    }
    if (!Array.isArray(batch)) return
    for (const m of batch) {
      if (typeof m?.topic !== 'string' || !Number.isInteger(m.seq) || typeof m.data !== 'string' || !sequencer.has(m.topic)) continue
      metrics.hubOffers.inc({ source: 'fanout' })
      sequencer.offer(m.topic, { seq: m.seq, frame: eventFrame(m.topic, m.seq, m.data) })
    }
  }

  // Events this process just committed: its own sockets get them without the Redis round
  // trips (append, broadcaster read, pub/sub). The fan-out copy arrives later and is dropped
  // by seq; if this one is lost or overtaken, the sequencer's gap repair covers it as usual.
  function onCommitted(messages: StreamMessage[]) {
    for (const m of messages) {
      if (!sequencer.has(m.topic)) continue
      metrics.hubOffers.inc({ source: 'local' })
      sequencer.offer(m.topic, { seq: m.seq, frame: eventFrame(m.topic, m.seq, JSON.stringify({ event: m.event, shipment: m.shipment })) })
    }
  }

  const send = (c: Conn, body: unknown) => {
    if (!c.closed) c.ws.send(JSON.stringify(body))
  }
  const error = (c: Conn, code: string, message: string, topic?: string) => send(c, { type: 'error', code, message, ...(topic ? { topic } : {}) })

  async function subscribe(c: Conn, claims: TokenClaims, frame: { topic?: unknown; since?: unknown }) {
    if (typeof frame.topic !== 'string') return error(c, 'bad_message', 'subscribe needs a topic')
    if (frame.since !== undefined && (!Number.isInteger(frame.since) || (frame.since as number) < 0)) return error(c, 'bad_message', 'since must be a whole number ≥ 0', frame.topic)
    let topic
    try {
      topic = parseTopic(frame.topic)
    } catch (err) {
      if (err instanceof IdentityError) return error(c, 'bad_message', err.message, frame.topic)
      throw err
    }
    if (!topicAllowed(claims.topics, topic)) return error(c, 'forbidden_topic', `the token does not grant ${topic.name}`, topic.name)
    if (claims.exp * 1000 < Date.now()) return error(c, 'token_expired', 'the token has expired; reconnect with a new one', topic.name)
    if (topic.kind !== 'shipment') return error(c, 'not_supported', 'user topics come with notifications, which are not built yet', topic.name)
    if (c.topics.has(topic.name)) return error(c, 'already_subscribed', `already subscribed to ${topic.name}`, topic.name)
    if (c.topics.size >= MAX_TOPICS_PER_SOCKET) return error(c, 'too_many_topics', `at most ${MAX_TOPICS_PER_SOCKET} topics per connection`, topic.name)

    const name = topic.name
    c.topics.set(name, { attached: false })
    // Must come before the snapshot read: every event committed after it reaches this socket.
    sequencer.begin(name, c)
    try {
      const shipment = await queries.shipment(topic.carrier, topic.trackingNumber)
      if (!shipment) {
        unsubscribe(c, name)
        return error(c, 'not_found', `no shipment ${topic.carrier} ${topic.trackingNumber}`, name)
      }
      shipmentIds.set(name, shipment.id)
      const since = frame.since as number | undefined
      let lastSeq = shipment.lastSeq
      let events: unknown[] = []
      if (since !== undefined && since < shipment.lastSeq) {
        // The snapshot lists the events; the shipment it carries is the current one.
        const rows = await queries.payloads(shipment.id, since, shipment.lastSeq, SNAPSHOT_EVENT_LIMIT)
        events = rows
        // A bounded snapshot: what did not fit follows as event frames.
        lastSeq = rows.at(-1)?.seq ?? since
      }
      if (c.closed || !c.topics.has(name)) return
      send(c, { type: 'snapshot', topic: name, shipment: { ...shipment, lastSeq }, events })
      sequencer.complete(name, c, lastSeq)
    } catch (err) {
      unsubscribe(c, name)
      // Too many reads waiting (a storm beyond what one process takes): no log line per socket.
      if (err instanceof BusyError) return error(c, 'unavailable', err.message, name)
      log.warn({ component: 'hub', topic: name, err: (err as Error).message }, 'snapshot failed')
      error(c, 'unavailable', 'could not read the snapshot; try again', name)
    }
  }

  function handle(c: Conn, claims: TokenClaims, raw: string | Uint8Array) {
    let frame: Record<string, unknown>
    try {
      // Text frames arrive as strings; a binary frame is read as UTF-8 text too.
      frame = JSON.parse(typeof raw === 'string' ? raw : Buffer.from(raw as Uint8Array).toString('utf8'))
      if (!frame || typeof frame !== 'object' || Array.isArray(frame)) throw new Error('not an object')
    } catch {
      return error(c, 'bad_message', 'frames are JSON objects with an op: subscribe, unsubscribe or ping')
    }
    switch (frame.op) {
      case 'subscribe':
        return subscribe(c, claims, frame)
      case 'unsubscribe': {
        const topic = typeof frame.topic === 'string' ? frame.topic : ''
        let name = topic
        try {
          name = parseTopic(topic).name
        } catch {}
        if (!unsubscribe(c, name)) error(c, 'not_subscribed', `not subscribed to ${topic}`, topic)
        return
      }
      case 'ping':
        return send(c, { type: 'pong' })
      default:
        return error(c, 'bad_message', `unknown op ${JSON.stringify(frame.op ?? null)}: use subscribe, unsubscribe or ping`)
    }
  }

  function unsubscribe(c: Conn, topic: string) {
    const t = c.topics.get(topic)
    if (!t) return false
    c.topics.delete(topic)
    if (t.attached && !c.closed) c.ws.unsubscribe(topic)
    sequencer.leave(topic, c, t.attached)
    return true
  }

  async function reconcile() {
    const stop = metrics.reconcileDuration.startTimer()
    const topics = sequencer.topics()
    // A map lookup per cached id: this runs every RECONCILE_MS over every topic of the process.
    for (const topic of shipmentIds.keys()) if (!topics.has(topic)) shipmentIds.delete(topic)
    const local = [...topics.keys()]
    try {
      for (let i = 0; i < local.length; i += 500) {
        const chunk = local.slice(i, i + 500).map((t) => t.split(':') as [string, string, string])
        const latest = await queries.lastSeqs(chunk.map(([, carrier, tn]) => [carrier, tn]))
        for (const [topic, seq] of latest) sequencer.reconcile(topic, seq)
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
    sequencer,
    start(s: Publisher) {
      server = s
      stopped = false
      // The engine re-subscribes by itself after reconnects; what pub/sub misses, reconcile reads back.
      unsubscribeFanout = engine.subscribe(FANOUT_CHANNEL, onFanout)
      schedule()
    },
    async stop() {
      stopped = true
      if (timer) clearTimeout(timer)
      unsubscribeFanout?.()
      unsubscribeFanout = null
      await sequencer.idle()
    },
    reconcile,
    onCommitted,

    open(ws: Socket, token: string | undefined) {
      metrics.wsConnections.inc()
      const c: Conn = { ws, topics: new Map(), closed: false, claims: Promise.resolve(null) }
      conns.set(ws, c)
      const checked = token ? slices.later(() => tokens.verify(token)) : Promise.reject(new TokenError('token_invalid', 'connect with ?token=<token from POST /v1/tokens>'))
      c.claims = checked.catch((err) => {
        if (err instanceof BusyError) {
          error(c, 'unavailable', 'the server is busy; reconnect in a moment')
          ws.close(1013, 'unavailable')
          return null
        }
        const code = err instanceof TokenError ? err.code : 'token_invalid'
        error(c, code, err instanceof TokenError ? err.message : 'the token is not valid')
        ws.close(4401, code)
        return null
      })
    },

    async message(ws: Socket, raw: string | Uint8Array) {
      const c = conns.get(ws)
      if (!c) return
      const claims = await c.claims
      if (!claims) return
      // In arrival order, in a slice; a socket that closed meanwhile has nothing left to do.
      try {
        await slices.later(() => (c.closed ? undefined : handle(c, claims, raw)))
      } catch (err) {
        if (!(err instanceof BusyError)) throw err
        error(c, 'unavailable', 'the server is busy; send the frame again in a moment')
      }
    },

    close(ws: Socket) {
      const c = conns.get(ws)
      if (!c) return
      metrics.wsConnections.dec()
      c.closed = true
      for (const topic of [...c.topics.keys()]) unsubscribe(c, topic)
      conns.delete(ws)
    }
  }
}

export type Hub = ReturnType<typeof createHub>

/** `{"type":"event","topic",...,"seq":N,"event":{...},"shipment":{...}}` without re-parsing `data`. */
function eventFrame(topic: string, seq: number, data: string): string {
  return `{"type":"event","topic":${JSON.stringify(topic)},"seq":${seq},${data.slice(1)}`
}
