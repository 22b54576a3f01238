/**
 * A kind of topic (`shipment:<carrier>:<trackingNumber>`, shipment-kind.ts; `user:<userId>`,
 * user-kind.ts): everything the hub needs to know about one, so that subscribing, the snapshot
 * handoff, sequencing, gap repair and reconcile are written once for every kind.
 *
 * A kind's topics have a gap-free `seq` in PostgreSQL (1, 2, 3 … in commit order); its events
 * travel as `{topic, seq, data}` (data: the JSON of the frame's body) on the stream and the
 * fan-out, whatever the kind.
 */
import type { TokenView } from './tokens.ts'
import type { Topic } from './topics.ts'

/** An event ready for sockets: its seq and its text frame. */
export interface Frame {
  seq: number
  frame: string
}

export interface Snapshot<Ref> {
  /** What later reads of the topic need (a shipment's id). */
  ref: Ref
  /** The seq the snapshot stands at: events after it follow as frames. */
  lastSeq: number
  /** The snapshot frame's fields beside `type` and `topic`. */
  body: Record<string, unknown>
  /** The topic's last seq when it is past `lastSeq` (a bounded snapshot): the rest is read at once, not at the next reconcile. */
  latest?: number
  /** Called once the snapshot was sent to the socket. */
  sent?(): void
}

export interface TopicKind<Ref = unknown> {
  /** The topic names' prefix, `Topic['kind']` of topics.ts. */
  readonly name: string
  /**
   * The topic's state at subscribe time, read after the subscriber was registered: with `since`,
   * the events after it (bounded; lastSeq is then the last one included). Null: no such topic.
   */
  snapshot(topic: Topic, since: number | undefined, view: TokenView): Promise<Snapshot<Ref> | null>
  /** The error message for a topic that does not exist. */
  notFound(topic: Topic): string
  /** Events with after < seq <= upto, at most `limit`, in seq order, as frames (gap repair). */
  fetch(topic: string, ref: Ref, after: number, upto: number, limit: number): Promise<Frame[]>
  /**
   * Only for kinds whose old events may be deleted (retention: issue 18's user topics): the
   * lowest seq still stored for the topic — every seq below it is gone for good — or, when none
   * is, its last seq + 1. The sequencer asks it only when a gap read finds nothing at the next
   * seq, and then skips the hole instead of waiting for rows that will never come (a socket sees
   * the jump in seq). A kind that never deletes (shipment) leaves it out: a gap then waits for
   * the database, as it must. E.g. `select coalesce(min(seq), <last seq> + 1) … where <topic>`.
   */
  firstRetained?(topic: string, ref: Ref): Promise<number>
  /** The current last seq of each topic that exists (reconcile). */
  lastSeqs(topics: readonly string[]): Promise<Map<string, number>>
  /** The text frame of an event, from its `data`. */
  frame(topic: string, seq: number, data: string): string
  /** Whether a stream entry's parsed `data` is an event of this kind with that seq. */
  check(seq: number, data: object): boolean
  /** Called for every event frame sent to at least one socket (once per publish to the topic, once per handover send). Must not throw or wait. */
  sent?(topic: string, seq: number): void
  /** A socket (its id) subscribed to a topic of this kind (before its snapshot is read), and left it (unsubscribed or closed). */
  onSubscribe?(topic: string, connId: string): void
  onUnsubscribe?(topic: string, connId: string): void
  /**
   * Operations on a topic besides subscribing (`{"op":"ack","topic",…}` for users), allowed to a
   * socket whose token grants the topic. Resolves with the answer frame; a ValidationError is
   * answered as a `bad_message` error frame naming the field.
   */
  commands?: Record<string, (topic: Topic, frame: Record<string, unknown>) => Promise<Record<string, unknown>>>
}

export type TopicKinds = ReturnType<typeof createTopicKinds>

export function createTopicKinds(list: readonly TopicKind[]) {
  const byName = new Map(list.map((k) => [k.name, k]))
  const of = (topic: string): TopicKind | undefined => {
    const i = topic.indexOf(':')
    return i > 0 ? byName.get(topic.slice(0, i)) : undefined
  }
  return {
    get: (name: string): TopicKind | undefined => byName.get(name),
    of,
    /** A stream entry's test (the broadcaster's): a topic of a known kind, and data that fits it. */
    check: (topic: string, seq: number, data: unknown): boolean => {
      const kind = of(topic)
      return kind !== undefined && typeof data === 'object' && data !== null && kind.check(seq, data)
    }
  }
}

/** `{"type":<type>,"topic":…,"seq":N,<data's members>}`, without re-parsing `data` (a JSON object). */
export function seqFrame(type: string, topic: string, seq: number, data: string): string {
  return `{"type":"${type}","topic":${JSON.stringify(topic)},"seq":${seq},${data.slice(1)}`
}
