/**
 * Subscriptions: which socket follows which topic, and the handoff from a topic's snapshot to
 * its live events, for every kind of topic (topic-kind.ts) alike.
 *
 * A subscriber is registered with the sequencer BEFORE its snapshot is read, so every event
 * committed after the read reaches it; once the snapshot is sent, the sequencer delivers what
 * followed (sequencer.ts) and then attaches the socket to Bun's native topic. This file keeps,
 * per topic with local subscribers, its kind and the ref its reads need, and turns the
 * sequencer's output into socket sends.
 */
import { BusyError, ValidationError } from '../errors.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { IdentityError } from '../pipeline/identity.ts'
import { createSequencer } from './sequencer.ts'
import { send, sendError, type Conn, type Publisher } from './socket.ts'
import type { TokenClaims } from './tokens.ts'
import type { Frame, TopicKind, TopicKinds } from './topic-kind.ts'
import { parseTopic, topicAllowed, type Topic } from './topics.ts'

const MAX_TOPICS_PER_SOCKET = 100

/** Kept exactly while the sequencer has the topic: set before its first begin, dropped when it forgets it. */
interface Live {
  kind: TopicKind
  /** Set once a snapshot was read; until then there is nothing to fetch. */
  ref: unknown
}

export function createSubscriptions({ kinds, log, metrics }: { kinds: TopicKinds; log: Logger; metrics: Metrics }) {
  const live = new Map<string, Live>()
  let server: Publisher | null = null

  const sequencer = createSequencer<Frame, Conn>({
    async fetch(topic, after, upto, limit) {
      const l = live.get(topic)
      if (!l || l.ref === undefined) return []
      const frames = await l.kind.fetch(topic, l.ref, after, upto, limit)
      metrics.gapFills.inc(frames.length)
      return frames
    },
    async firstRetained(topic) {
      const l = live.get(topic)
      return l?.kind.firstRetained && l.ref !== undefined ? l.kind.firstRetained(topic, l.ref) : null
    },
    out: {
      publish(topic, e) {
        // Bun answers 0 when the topic has no socket (only handovers, which get `send`).
        if (server?.publish(topic, e.frame)) kinds.of(topic)?.sent?.(topic, e.seq)
        metrics.wsMessages.inc({ path: 'publish' })
      },
      send(c, topic, e) {
        if (!c.closed) {
          c.ws.send(e.frame)
          kinds.of(topic)?.sent?.(topic, e.seq)
        }
        metrics.wsMessages.inc({ path: 'handover' })
      },
      attach(c, topic) {
        const t = c.topics.get(topic)
        // Gone meanwhile: the sequencer has already counted it as attached, so leave as such.
        if (!t || c.closed) return void leave(topic, c, true)
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

  /** The frame's topic, parsed, if the socket's token grants it now; else null, the error frame sent. */
  function granted(c: Conn, claims: TokenClaims, raw: unknown, op: string): Topic | null {
    if (typeof raw !== 'string') return (sendError(c, 'bad_message', `${op} needs a topic`), null)
    let topic: Topic
    try {
      topic = parseTopic(raw)
    } catch (err) {
      if (err instanceof IdentityError) return (sendError(c, 'bad_message', err.message, raw), null)
      throw err
    }
    if (!topicAllowed(claims.topics, topic)) return (sendError(c, 'forbidden_topic', `the token does not grant ${topic.name}`, topic.name), null)
    if (claims.exp * 1000 < Date.now()) return (sendError(c, 'token_expired', 'the token has expired; reconnect with a new one', topic.name), null)
    return topic
  }

  async function subscribe(c: Conn, claims: TokenClaims, frame: { topic?: unknown; since?: unknown }) {
    if (frame.since !== undefined && (!Number.isInteger(frame.since) || (frame.since as number) < 0)) {
      return sendError(c, 'bad_message', 'since must be a whole number ≥ 0', typeof frame.topic === 'string' ? frame.topic : undefined)
    }
    const topic = granted(c, claims, frame.topic, 'subscribe')
    if (!topic) return
    const kind = kinds.get(topic.kind)
    if (!kind) return sendError(c, 'not_supported', `this server serves no ${topic.kind} topics`, topic.name)
    if (c.topics.has(topic.name)) return sendError(c, 'already_subscribed', `already subscribed to ${topic.name}`, topic.name)
    if (c.topics.size >= MAX_TOPICS_PER_SOCKET) return sendError(c, 'too_many_topics', `at most ${MAX_TOPICS_PER_SOCKET} topics per connection`, topic.name)

    const name = topic.name
    // This subscription, as opposed to a later one of the same socket to the same topic (after an
    // unsubscribe) while this one's snapshot is still being read: only the current one goes on.
    const mine = { attached: false }
    c.topics.set(name, mine)
    kind.onSubscribe?.(name, c.id)
    if (!live.has(name)) live.set(name, { kind, ref: undefined })
    // Must come before the snapshot read: every event committed after it reaches this socket.
    sequencer.begin(name, c)
    try {
      const snapshot = await kind.snapshot(topic, frame.since as number | undefined, claims.view)
      if (c.closed || c.topics.get(name) !== mine) return
      if (!snapshot) {
        unsubscribe(c, name)
        return sendError(c, 'not_found', kind.notFound(topic), name)
      }
      const l = live.get(name)
      if (l) l.ref = snapshot.ref
      else live.set(name, { kind, ref: snapshot.ref })
      send(c, { type: 'snapshot', topic: name, ...snapshot.body })
      snapshot.sent?.()
      sequencer.complete(name, c, snapshot.lastSeq)
      if (snapshot.latest !== undefined && snapshot.latest > snapshot.lastSeq) sequencer.reconcile(name, snapshot.latest)
    } catch (err) {
      if (c.closed || c.topics.get(name) !== mine) return
      unsubscribe(c, name)
      // Too many reads waiting (a storm beyond what one process takes): no log line per socket.
      if (err instanceof BusyError) return sendError(c, 'unavailable', err.message, name)
      log.warn({ component: 'hub', topic: name, err: (err as Error).message }, 'snapshot failed')
      sendError(c, 'unavailable', 'could not read the snapshot; try again', name)
    }
  }

  function unsubscribe(c: Conn, topic: string): boolean {
    const t = c.topics.get(topic)
    if (!t) return false
    c.topics.delete(topic)
    if (t.attached && !c.closed) c.ws.unsubscribe(topic)
    kinds.of(topic)?.onUnsubscribe?.(topic, c.id)
    leave(topic, c, t.attached)
    return true
  }

  /** A kind's operation on a topic the token grants (`ack`): its answer frame, or an error frame. */
  async function command(c: Conn, claims: TokenClaims, op: string, frame: Record<string, unknown>) {
    const topic = granted(c, claims, frame.topic, op)
    if (!topic) return
    const run = kinds.get(topic.kind)?.commands?.[op]
    if (!run) return sendError(c, 'bad_message', `${op} is not an operation on ${topic.kind} topics`, topic.name)
    try {
      send(c, await run(topic, frame))
    } catch (err) {
      if (err instanceof ValidationError) return sendError(c, 'bad_message', err.message, topic.name)
      log.warn({ component: 'hub', topic: topic.name, op, err: (err as Error).message }, 'socket operation failed')
      sendError(c, 'unavailable', `could not ${op}; try again`, topic.name)
    }
  }

  function leave(topic: string, c: Conn, attached: boolean) {
    // The last subscriber gone: the topic's kind and ref go with it.
    if (sequencer.leave(topic, c, attached)) live.delete(topic)
  }

  return {
    sequencer,
    subscribe,
    unsubscribe,
    command,
    /** Sends go to this server's native topics from now on. */
    start(s: Publisher) {
      server = s
    },
    /** The kind of a topic someone here subscribes to (undefined: nobody does); one map lookup per event. */
    kindOf(topic: string): TopicKind | undefined {
      return live.get(topic)?.kind
    },
    /** The topics with local subscribers, by kind (reconcile). */
    topicsByKind(): Map<TopicKind, string[]> {
      const out = new Map<TopicKind, string[]>()
      for (const topic of sequencer.topics().keys()) {
        const kind = live.get(topic)?.kind
        if (!kind) continue
        const list = out.get(kind)
        if (list) list.push(topic)
        else out.set(kind, [topic])
      }
      return out
    }
  }
}

export type Subscriptions = ReturnType<typeof createSubscriptions>
