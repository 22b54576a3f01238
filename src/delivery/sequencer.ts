/**
 * Per-topic sequencing for one process: the algorithm behind the delivery guarantee, kept
 * apart from sockets and Redis so it can be tested exhaustively.
 *
 * Guarantees, for every subscriber of a topic, whatever order and multiplicity events are
 * offered in (stream entries arrive twice, late, or never):
 *   - it receives every event with seq > its snapshot's `lastSeq`, exactly once, in seq order:
 *     first through `send` (while it is being handed over), then through `publish` once it is
 *     `attach`ed to the topic;
 *   - a jump in seq is filled from `fetch` (the database) before anything newer goes out; only
 *     a hole that `firstRetained` says was deleted for good (retention) is skipped;
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
  /**
   * For topics whose old events may be deleted (topic-kind.ts's `firstRetained`): the lowest seq
   * still stored (every seq below it is gone for good), or null when the topic cannot tell. Asked
   * only when a gap read finds nothing at the next seq; without it, or with null, the gap waits
   * for the database.
   */
  firstRetained?(topic: string): Promise<number | null>
  out: SequencerOutput<E, S>
  onError?(topic: string, err: unknown): void
  /** Events buffered per subscriber during its handover; and per topic while a gap is filled. */
  maxBuffer?: number
  fetchLimit?: number
}

interface Pending<E> {
  /** The last seq this subscriber has: null until its snapshot was sent, then its lastSeq, then each event sent to it. */
  sent: number | null
  /** Events of the topic it does not have yet, while it cannot be sent them in order (any order; copies possible). */
  buffer: E[]
}

interface TopicState<E, S> {
  last: number | null
  early: E[]
  pending: Map<S, Pending<E>>
  attached: number
  chain: Promise<void>
  queued: number
  /** A subscriber's catch-up read failed: work on the topic tries it again (and offers take the queue). */
  lagging: boolean
  /** Nobody subscribes any more: work still running on this state must not deliver anything. */
  dead: boolean
}

const bySeq = (a: SeqEvent, b: SeqEvent) => a.seq - b.seq

export function createSequencer<E extends SeqEvent, S>(opts: SequencerOptions<E, S>) {
  const { fetch, firstRetained, out, onError = () => {}, maxBuffer = 10_000, fetchLimit = 1000 } = opts
  const topics = new Map<string, TopicState<E, S>>()
  /** Work still running on states of topics already forgotten (idle() waits for it). */
  const retired = new Set<Promise<void>>()

  function state(topic: string): TopicState<E, S> {
    let t = topics.get(topic)
    if (!t) {
      t = { last: null, early: [], pending: new Map(), attached: 0, chain: Promise.resolve(), queued: 0, lagging: false, dead: false }
      topics.set(topic, t)
    }
    return t
  }

  /**
   * Queues work on the topic. Offers and reconciles are dropped past `maxBuffer` queued (safe: the
   * next event's gap, or the next reconcile, reads them back); a subscriber's completion never is.
   * After the work, subscribers whose catch-up failed are tried again.
   */
  function run(topic: string, t: TopicState<E, S>, work: () => Promise<void> | void, droppable = true) {
    if (t.dead) return false
    if (droppable && t.queued >= maxBuffer) {
      onError(topic, new Error(`more than ${maxBuffer} events queued for ${topic}; dropping one`))
      return false
    }
    t.queued++
    t.chain = t.chain
      .then(() => (t.dead ? undefined : work()))
      .then(() => (t.lagging && !t.dead ? catchUpAll(topic, t) : undefined))
      .catch((err) => onError(topic, err))
      .finally(() => t.queued--)
    return true
  }

  /**
   * Delivers the next contiguous event to everyone on the topic, and attaches every handed-over
   * subscriber that now has exactly what the topic delivered. `replay`: an event of the topic's
   * early list (offered before its start was known), which every subscriber still waiting for its
   * snapshot already holds in its buffer — it is not buffered for them twice.
   */
  function emit(topic: string, t: TopicState<E, S>, e: E, replay = false) {
    if (t.dead) return
    out.publish(topic, e)
    t.last = e.seq
    for (const [sub, p] of t.pending) {
      if (p.sent !== null && e.seq === p.sent + 1) {
        out.send(sub, topic, e)
        p.sent = e.seq
      } else if (p.sent === null ? !replay : e.seq > p.sent) {
        if (p.buffer.length >= maxBuffer) {
          t.pending.delete(sub)
          out.overflow(sub, topic)
          continue
        }
        p.buffer.push(e)
      }
      if (p.sent === t.last) attach(topic, t, sub)
    }
  }

  function attach(topic: string, t: TopicState<E, S>, sub: S) {
    t.pending.delete(sub)
    t.attached++
    out.attach(sub, topic)
  }

  // Attaches every handed-over subscriber that has exactly what the topic delivered.
  function promote(topic: string, t: TopicState<E, S>) {
    for (const [sub, p] of t.pending) if (p.sent !== null && p.sent === t.last) attach(topic, t, sub)
  }

  /**
   * Sends a handed-over subscriber what the topic delivered after what it has: from its buffer
   * while that holds the next events, else from the database. Runs in the topic's queue, so
   * nothing is emitted meanwhile. A failed read leaves it as it was (buffer and all), to be
   * tried again.
   */
  async function catchUp(topic: string, t: TopicState<E, S>, sub: S, p: Pending<E>) {
    p.buffer.sort(bySeq)
    for (;;) {
      if (t.dead || t.pending.get(sub) !== p || p.sent === null || t.last === null || p.sent >= t.last) return
      // Sorted: copies of what it has are passed over, the next events sent, up to the first missing one.
      let i = 0
      for (; i < p.buffer.length; i++) {
        const e = p.buffer[i]!
        if (e.seq === p.sent + 1) {
          out.send(sub, topic, e)
          p.sent = e.seq
        } else if (e.seq > p.sent) break
      }
      if (i > 0) p.buffer = p.buffer.slice(i)
      if (p.sent >= t.last) return
      const from: number = p.sent
      const rows = await fetch(topic, from, t.last, fetchLimit)
      if (t.dead || t.pending.get(sub) !== p) return
      const send = () => {
        for (const r of rows) {
          if (r.seq !== p.sent! + 1) continue
          out.send(sub, topic, r)
          p.sent = r.seq
        }
      }
      send()
      if (p.sent === from) {
        const to = await hole(topic, from, t.last)
        if (to === null || t.dead || t.pending.get(sub) !== p || p.sent !== from) return // the database has nothing newer yet
        p.sent = to
        send()
      }
    }
  }

  /**
   * Every seq up to `to` is deleted for good: the topic goes on after the hole (attached sockets
   * see the jump in seq), and so do the handed-over subscribers that were in it.
   */
  function skip(topic: string, t: TopicState<E, S>, to: number) {
    t.last = to
    for (const [sub, p] of t.pending) {
      if (p.sent === null || p.sent > to) continue
      p.sent = to
      attach(topic, t, sub)
    }
  }

  /**
   * Nothing is stored at `after + 1`: not yet (wait for it), or never again (deleted by the
   * topic's retention, which `firstRetained` tells). The seq to go on from, at most `upto`, or null.
   */
  async function hole(topic: string, after: number, upto: number): Promise<number | null> {
    if (!firstRetained) return null
    const first = await firstRetained(topic)
    return first !== null && first > after + 1 ? Math.min(first - 1, upto) : null
  }

  async function catchUpAll(topic: string, t: TopicState<E, S>) {
    // Stays set if a read fails: the topic's next work (an event, a reconcile) tries again.
    t.lagging = true
    for (const [sub, p] of t.pending) if (p.sent !== null && t.last !== null && p.sent < t.last) await catchUp(topic, t, sub, p)
    promote(topic, t)
    t.lagging = false
    for (const p of t.pending.values()) if (p.sent !== null && t.last !== null && p.sent < t.last) t.lagging = true
  }

  // Brings the topic to `upto` (to `e.seq - 1`, then delivers `e`, when given) from the database.
  async function advance(topic: string, t: TopicState<E, S>, upto: number, e?: E, replay = false) {
    const target = e ? upto - 1 : upto
    while (!t.dead && t.last !== null && t.last < target) {
      const before: number = t.last
      const rows = await fetch(topic, before, target, fetchLimit)
      if (t.dead) return
      for (const r of rows) if (r.seq === t.last + 1) emit(topic, t, r)
      if (t.last === before) {
        const to = await hole(topic, before, target)
        if (to === null || t.dead || t.last !== before) break // the database has nothing newer yet
        skip(topic, t, to)
        for (const r of rows) if (r.seq === t.last + 1) emit(topic, t, r)
      }
    }
    if (e && t.last !== null && e.seq === t.last + 1) emit(topic, t, e, replay)
  }

  function accept(topic: string, t: TopicState<E, S>, e: E, replay = false) {
    return async () => {
      if (t.last === null) {
        // Bounded: what is dropped here is read back as a gap once the topic's start is known.
        if (t.early.length < maxBuffer) t.early.push(e)
        for (const p of t.pending.values()) if (p.sent === null && p.buffer.length < maxBuffer) p.buffer.push(e)
        return
      }
      if (e.seq <= t.last) return
      if (e.seq === t.last + 1) emit(topic, t, e, replay)
      else await advance(topic, t, e.seq, e, replay)
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
      if (t.queued === 0 && !t.lagging && t.last !== null && (e.seq <= t.last || e.seq === t.last + 1)) {
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
      state(topic).pending.set(sub, { sent: null, buffer: [] })
    },

    /** After its snapshot (up to `lastSeq`) was sent: deliver what followed, then attach. Never dropped. */
    complete(topic: string, sub: S, lastSeq: number): void {
      const t = topics.get(topic)
      const p = t?.pending.get(sub)
      if (!t || !p) return
      run(
        topic,
        t,
        async () => {
          // Left (and perhaps came back: then that is another handover).
          if (t.pending.get(sub) !== p || p.sent !== null) return
          p.sent = lastSeq
          if (t.last === null) {
            // The first subscriber fixes where this process's view of the topic starts.
            t.last = lastSeq
            const early = t.early.sort(bySeq)
            t.early = []
            // Others still being handed over keep their own buffers (their snapshots may be
            // older), which already hold these.
            for (const e of early) await accept(topic, t, e, true)()
          }
          // What the topic delivered after this snapshot, then attach: this subscriber only, so
          // that a topic's handovers cost each its own work, not a pass over all the others.
          const lagging = t.lagging
          // Stays set if the read fails: the topic's next work tries again.
          t.lagging = true
          await catchUp(topic, t, sub, p)
          t.lagging = lagging
          if (t.pending.get(sub) !== p || t.last === null) return
          if (p.sent === t.last) attach(topic, t, sub)
          // Behind the snapshot: the stream lost or has not yet brought these; read them (the
          // subscriber is attached when the topic reaches its snapshot).
          else if (p.sent > t.last) await advance(topic, t, lastSeq)
          else t.lagging = true
        },
        false
      )
    },

    /**
     * The subscriber left (unsubscribed or closed). `attached` tells whether it was on the native
     * topic. Returns true when nobody is left and the topic was forgotten: work still running on it
     * delivers nothing, and a new subscriber starts afresh.
     */
    leave(topic: string, sub: S, attached: boolean): boolean {
      const t = topics.get(topic)
      if (!t) return false
      if (!t.pending.delete(sub) && attached) t.attached--
      if (t.pending.size > 0 || t.attached > 0) return false
      topics.delete(topic)
      t.dead = true
      if (t.queued > 0) {
        const done: Promise<void> = t.chain.finally(() => retired.delete(done))
        retired.add(done)
      }
      return true
    },

    /** The database says the topic is at `lastSeq` (periodic reconcile, or after an outage); also retries failed catch-ups. */
    reconcile(topic: string, lastSeq: number): void {
      const t = topics.get(topic)
      if (!t || t.last === null) return
      if (lastSeq > t.last) run(topic, t, () => advance(topic, t, lastSeq))
      else if (t.lagging) run(topic, t, () => {})
    },

    /** Topics with local subscribers and the last seq delivered on each (for reconcile and metrics). */
    topics(): Map<string, number | null> {
      return new Map([...topics].map(([k, t]) => [k, t.last]))
    },

    /** Resolves when all work queued so far on every topic is done (tests, shutdown). */
    async idle(): Promise<void> {
      await Promise.all([...[...topics.values()].map((t) => t.chain), ...retired])
    }
  }
}

export type Sequencer<E extends SeqEvent, S> = ReturnType<typeof createSequencer<E, S>>
