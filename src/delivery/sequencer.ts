/**
 * Per-topic sequencing for one process: the algorithm behind the delivery guarantee, kept
 * apart from sockets and Redis so it can be tested exhaustively.
 *
 * Guarantees, for every subscriber of a topic, whatever order and multiplicity events are
 * offered in (stream entries arrive twice, late, or never):
 *   - it receives every event with seq > its snapshot's `lastSeq`, exactly once, in seq order:
 *     first through `send` (while it is being handed over), then through `publish` once it is
 *     `attach`ed to the topic;
 *   - a jump in seq is filled from `fetch` (the database) before anything newer goes out;
 *   - per topic, work is serialized; `offer`, `begin`, `complete` and `leave` never block.
 *
 * Handoff protocol (the caller's side): `begin(topic, sub)` BEFORE reading the snapshot, then
 * read it, send it, and call `complete(topic, sub, snapshot.lastSeq)`. Every event committed
 * after the snapshot's read is offered after `begin`, so it reaches the subscriber's buffer.
 */
export interface SeqEvent {
  seq: number
}

export interface SequencerOutput<E extends SeqEvent, S> {
  /** To every subscriber attached to the topic (Bun's native topic publish). */
  publish(topic: string, event: E): void
  /** To one subscriber still being handed over. */
  send(sub: S, topic: string, event: E): void
  /** Put the subscriber on the native topic: from now on it gets `publish`. */
  attach(sub: S, topic: string): void
  /** The subscriber's handover buffer overflowed; the caller should close it (it can resume with `since`). */
  overflow(sub: S, topic: string): void
}

export interface SequencerOptions<E extends SeqEvent, S> {
  /** Events of `topic` with after < seq <= upto, in seq order (at most `limit`). */
  fetch(topic: string, after: number, upto: number, limit: number): Promise<E[]>
  out: SequencerOutput<E, S>
  onError?(topic: string, err: unknown): void
  /** Events buffered per subscriber during its handover; and per topic while a gap is filled. */
  maxBuffer?: number
  fetchLimit?: number
}

interface Pending<E> {
  from: number | null
  buffer: E[]
}

interface TopicState<E, S> {
  last: number | null
  early: E[]
  pending: Map<S, Pending<E>>
  attached: number
  chain: Promise<void>
  queued: number
}

export function createSequencer<E extends SeqEvent, S>(opts: SequencerOptions<E, S>) {
  const { fetch, out, onError = () => {}, maxBuffer = 10_000, fetchLimit = 1000 } = opts
  const topics = new Map<string, TopicState<E, S>>()

  function state(topic: string): TopicState<E, S> {
    let t = topics.get(topic)
    if (!t) {
      t = { last: null, early: [], pending: new Map(), attached: 0, chain: Promise.resolve(), queued: 0 }
      topics.set(topic, t)
    }
    return t
  }

  function run(topic: string, t: TopicState<E, S>, work: () => Promise<void> | void) {
    if (t.queued >= maxBuffer) {
      // Dropping is safe: the next event's gap, or the next reconcile, reads it back.
      onError(topic, new Error(`more than ${maxBuffer} events queued for ${topic}; dropping one`))
      return false
    }
    t.queued++
    t.chain = t.chain
      .then(work)
      .catch((err) => onError(topic, err))
      .finally(() => t.queued--)
    return true
  }

  // Delivers the next contiguous event to everyone on the topic.
  function emit(topic: string, t: TopicState<E, S>, e: E) {
    out.publish(topic, e)
    t.last = e.seq
    for (const [sub, p] of t.pending) {
      if (p.from === null) {
        if (p.buffer.length >= maxBuffer) {
          t.pending.delete(sub)
          out.overflow(sub, topic)
        } else p.buffer.push(e)
      } else if (e.seq > p.from) out.send(sub, topic, e)
    }
    promote(topic, t)
  }

  // Attaches every handed-over subscriber the topic has caught up with.
  function promote(topic: string, t: TopicState<E, S>) {
    for (const [sub, p] of t.pending) {
      if (p.from !== null && t.last !== null && t.last >= p.from) {
        t.pending.delete(sub)
        t.attached++
        out.attach(sub, topic)
      }
    }
  }

  async function fetchAll(topic: string, after: number, upto: number): Promise<E[]> {
    const all: E[] = []
    while (after < upto) {
      const rows = await fetch(topic, after, upto, fetchLimit)
      if (rows.length === 0) break
      all.push(...rows)
      after = rows.at(-1)!.seq
    }
    return all
  }

  // Brings the topic to `seq - 1` from the database, then delivers `e` (if given).
  async function advance(topic: string, t: TopicState<E, S>, upto: number, e?: E) {
    const target = e ? upto - 1 : upto
    while (t.last !== null && t.last < target) {
      const before: number = t.last
      const rows = await fetch(topic, before, target, fetchLimit)
      for (const r of rows) if (r.seq === t.last + 1) emit(topic, t, r)
      if (t.last === before) break // the database has nothing newer yet
    }
    if (e && t.last !== null && e.seq === t.last + 1) emit(topic, t, e)
  }

  function accept(topic: string, t: TopicState<E, S>, e: E) {
    return async () => {
      if (t.last === null) {
        t.early.push(e)
        for (const p of t.pending.values()) if (p.from === null && p.buffer.length < maxBuffer) p.buffer.push(e)
        return
      }
      if (e.seq <= t.last) return
      if (e.seq === t.last + 1) emit(topic, t, e)
      else await advance(topic, t, e.seq, e)
    }
  }

  return {
    /** Whether anyone here subscribes to the topic (or is being handed over to it). */
    has(topic: string): boolean {
      return topics.has(topic)
    },

    /** An event (from the stream, or from this process's own commit). Ignored for topics nobody here subscribes to. */
    offer(topic: string, e: E): void {
      const t = topics.get(topic)
      if (!t) return
      // With nothing queued for the topic, the common cases need no turn through its queue: a
      // copy already delivered (every event arrives twice in the process that committed it),
      // and the next event in order.
      if (t.queued === 0 && t.last !== null && (e.seq <= t.last || e.seq === t.last + 1)) {
        try {
          if (e.seq === t.last + 1) emit(topic, t, e)
        } catch (err) {
          onError(topic, err)
        }
        return
      }
      run(topic, t, accept(topic, t, e))
    },

    /** Before the subscriber's snapshot is read: from now on its events are kept for it. */
    begin(topic: string, sub: S): void {
      state(topic).pending.set(sub, { from: null, buffer: [] })
    },

    /** After its snapshot (up to `lastSeq`) was sent: deliver what followed, then attach. */
    complete(topic: string, sub: S, lastSeq: number): void {
      const t = state(topic)
      run(topic, t, async () => {
        const p = t.pending.get(sub)
        if (!p) return
        if (t.last === null) {
          // The first subscriber fixes where this process's view of the topic starts.
          t.last = lastSeq
          const early = t.early.sort((a, b) => a.seq - b.seq)
          t.early = []
          p.from = lastSeq
          p.buffer = []
          // Others still being handed over keep their own buffers: their snapshots may be older.
          for (const e of early) await accept(topic, t, e)()
        } else {
          p.from = lastSeq
          // What the topic delivered after this snapshot: from the buffer when it holds all of
          // it, else (the stream lost some) from the database. Nothing is emitted meanwhile:
          // this runs in the topic's queue.
          const last: number = t.last
          const missed = new Map<number, E>()
          for (const e of p.buffer) if (e.seq > lastSeq && e.seq <= last) missed.set(e.seq, e)
          p.buffer = []
          let catchUp = [...missed.values()].sort((a, b) => a.seq - b.seq)
          if (catchUp.length < last - lastSeq) catchUp = await fetchAll(topic, lastSeq, last)
          for (const e of catchUp) out.send(sub, topic, e)
        }
        promote(topic, t)
        // Behind the snapshot: the stream lost or has not yet brought these; read them.
        if (t.pending.has(sub) && (t.last ?? 0) < lastSeq) await advance(topic, t, lastSeq)
      })
    },

    /** The subscriber left (unsubscribed or closed). `attached` tells whether it was on the native topic. */
    leave(topic: string, sub: S, attached: boolean): void {
      const t = topics.get(topic)
      if (!t) return
      if (!t.pending.delete(sub) && attached) t.attached--
      if (t.pending.size === 0 && t.attached <= 0) topics.delete(topic)
    },

    /** The database says the topic is at `lastSeq` (periodic reconcile, or after an outage). */
    reconcile(topic: string, lastSeq: number): void {
      const t = topics.get(topic)
      if (!t || t.last === null || lastSeq <= t.last) return
      run(topic, t, () => advance(topic, t, lastSeq))
    },

    /** Topics with local subscribers and the last seq delivered on each (for reconcile and metrics). */
    topics(): Map<string, number | null> {
      return new Map([...topics].map(([k, t]) => [k, t.last]))
    },

    /** Resolves when all work queued so far on every topic is done (tests, shutdown). */
    async idle(): Promise<void> {
      await Promise.all([...topics.values()].map((t) => t.chain))
    }
  }
}

export type Sequencer<E extends SeqEvent, S> = ReturnType<typeof createSequencer<E, S>>
