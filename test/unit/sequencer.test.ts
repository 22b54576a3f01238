/**
 * The sequencer against a model: events committed in seq order, a stream that duplicates,
 * reorders and drops them, subscribers joining (and leaving) at random moments with the handoff
 * protocol, database reads that fail or take their time. Every subscriber must end with exactly
 * seq lastSeq+1..N, in order; one that left or was cut off, with a gap-free start of that.
 */
import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { createSequencer } from '../../src/delivery/sequencer.ts'

type Ev = { seq: number }
const T = 'shipment:dhl:X1'

/**
 * `strict`: any error fails the test (the sequencer must not fail). Otherwise errors are
 * collected: database reads fail on purpose (`failNext`), and the sequencer must recover.
 * `hold()`: the next database reads wait until released, so that work can happen meanwhile.
 */
function world({ strict = true, maxBuffer, retention = false }: { strict?: boolean; maxBuffer?: number; retention?: boolean } = {}) {
  let committed = 0
  /** Every seq up to this one was deleted (retention): fetch no longer finds it. */
  let deleted = 0
  let failNext = 0
  let held: (() => void)[] | null = null
  const attached = new Set<string>()
  const got = new Map<string, number[]>()
  const snapshots = new Map<string, number>()
  const fetches: [number, number][] = []
  const errors: unknown[] = []
  const overflowed = new Set<string>()
  const seq = createSequencer<Ev, string>({
    async fetch(_topic, after, upto, limit) {
      fetches.push([after, upto])
      if (held) await new Promise<void>((r) => held!.push(r))
      if (failNext > 0) {
        failNext--
        throw new Error('the database read failed')
      }
      const rows: Ev[] = []
      for (let s = Math.max(after, deleted) + 1; s <= Math.min(upto, committed) && rows.length < limit; s++) rows.push({ seq: s })
      return rows
    },
    // The kind's hook: only a kind whose topics lose old events has one.
    firstRetained: retention ? async () => deleted + 1 : undefined,
    out: {
      publish: (_t, e) => {
        for (const s of attached) got.get(s)!.push(e.seq)
      },
      send: (s, _t, e) => got.get(s)!.push(e.seq),
      attach: (s) => attached.add(s),
      overflow: (s) => {
        if (strict) throw new Error(`overflow ${s}`)
        // The hub closes such a socket; the client resumes with since.
        overflowed.add(s)
      }
    },
    onError: (_t, err) => {
      if (strict) throw err
      errors.push(err)
    },
    maxBuffer
  })
  return {
    seq,
    got,
    attached,
    snapshots,
    fetches,
    errors,
    overflowed,
    commit: () => ++committed,
    /** Retention deletes every event up to `seq`. */
    retain(seq: number) {
      deleted = Math.max(deleted, Math.min(seq, committed))
    },
    get deleted() {
      return deleted
    },
    get committed() {
      return committed
    },
    failNext(n = 1) {
      failNext = n
    },
    hold() {
      held = []
    },
    /** Lets the held reads go on, and reads no longer wait. */
    release() {
      const h = held ?? []
      held = null
      for (const r of h) r()
    },
    begin(sub: string) {
      got.set(sub, [])
      seq.begin(T, sub)
    },
    /** Its snapshot: the database as it stands, or a bounded one that stops at `at`. */
    snapshot(sub: string, at = committed) {
      snapshots.set(sub, at)
    },
    complete(sub: string) {
      seq.complete(T, sub, snapshots.get(sub)!)
    },
    leave(sub: string) {
      seq.leave(T, sub, attached.delete(sub))
    }
  }
}

const upTo = (n: number, from = 0) => Array.from({ length: Math.max(0, n - from) }, (_, i) => from + i + 1)
/** How many steps every Map iteration (for-of, entries, values, keys) takes while `f` runs. */
async function countMapSteps(f: () => Promise<void>): Promise<number> {
  const proto = Map.prototype as any
  const names = [Symbol.iterator, 'entries', 'values', 'keys'] as const
  const saved = names.map((n) => proto[n])
  let steps = 0
  names.forEach((n, i) => {
    proto[n] = function (this: Map<unknown, unknown>) {
      const it = saved[i].call(this)
      return {
        next: () => (steps++, it.next()),
        [Symbol.iterator]() {
          return this
        }
      }
    }
  })
  try {
    await f()
  } finally {
    for (const [i, n] of names.entries()) proto[n] = saved[i]
  }
  return steps
}
/** Lets every promise that can settle now settle (a held read stays held). */
const settle = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve()
}

describe('sequencer', () => {
  test('in-order stream: published once each, in order', async () => {
    const w = world()
    w.begin('a')
    w.snapshot('a')
    w.complete('a')
    for (let i = 0; i < 5; i++) w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    expect(w.got.get('a')).toEqual([1, 2, 3, 4, 5])
    expect(w.fetches).toEqual([])
  })

  test('duplicates are dropped; a gap is filled from the database before newer events', async () => {
    const w = world()
    w.begin('a')
    w.snapshot('a')
    w.complete('a')
    for (let i = 0; i < 6; i++) w.commit()
    for (const s of [1, 1, 2, 5, 3, 6, 4, 6]) w.seq.offer(T, { seq: s })
    await w.seq.idle()
    expect(w.got.get('a')).toEqual([1, 2, 3, 4, 5, 6])
    expect(w.fetches).toEqual([[2, 4]])
  })

  test('events lost at the end of the stream arrive through reconcile', async () => {
    const w = world()
    w.begin('a')
    w.snapshot('a')
    w.complete('a')
    w.seq.offer(T, { seq: w.commit() })
    w.commit()
    w.commit()
    await w.seq.idle()
    expect(w.got.get('a')).toEqual([1])
    w.seq.reconcile(T, 3)
    await w.seq.idle()
    expect(w.got.get('a')).toEqual([1, 2, 3])
  })

  test('a subscriber whose snapshot is ahead of the stream waits, then gets only newer events', async () => {
    const w = world()
    w.begin('a')
    w.snapshot('a')
    w.complete('a')
    w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    w.commit()
    w.commit()
    w.begin('b')
    w.snapshot('b')
    w.complete('b')
    await w.seq.idle()
    expect(w.attached.has('b')).toBe(true)
    for (const s of [2, 3]) w.seq.offer(T, { seq: s })
    w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    expect(w.got.get('a')).toEqual([1, 2, 3, 4])
    expect(w.got.get('b')).toEqual([4])
  })

  test('topics nobody subscribes to are ignored; leaving forgets the topic', async () => {
    const w = world()
    w.seq.offer(T, { seq: 1 })
    expect(w.seq.topics().size).toBe(0)
    w.begin('a')
    w.snapshot('a')
    w.complete('a')
    await w.seq.idle()
    w.seq.leave(T, 'a', true)
    expect(w.seq.topics().size).toBe(0)
  })

  test('a catch-up read that fails inside complete() is read again: nothing it was to fill is lost', async () => {
    const w = world({ strict: false })
    w.begin('a')
    w.snapshot('a')
    w.complete('a')
    for (let i = 0; i < 5; i++) w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    // b resumes with a bounded snapshot (it lists events up to 2): 3..5 must come from the database.
    w.begin('b')
    w.snapshot('b', 2)
    w.failNext()
    w.complete('b')
    await w.seq.idle()
    expect(w.errors.length).toBe(1)
    w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    w.seq.offer(T, { seq: w.commit() })
    w.seq.reconcile(T, w.committed)
    await w.seq.idle()
    expect(w.got.get('a')).toEqual(upTo(7))
    expect(w.got.get('b')).toEqual(upTo(7, 2))
    expect(w.attached.has('b')).toBe(true)
  })

  test('a catch-up read that fails is read again by the next reconcile, even when no event follows', async () => {
    const w = world({ strict: false })
    w.begin('a')
    w.snapshot('a')
    w.complete('a')
    for (let i = 0; i < 4; i++) w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    w.begin('b')
    w.snapshot('b', 1)
    w.failNext()
    w.complete('b')
    await w.seq.idle()
    w.seq.reconcile(T, w.committed)
    await w.seq.idle()
    expect(w.got.get('b')).toEqual([2, 3, 4])
    expect(w.attached.has('b')).toBe(true)
  })

  test('leave() while a gap fill is in flight: the next subscriber of the topic gets no stale, repeated or reordered frame', async () => {
    const w = world()
    w.begin('a')
    w.snapshot('a')
    w.complete('a')
    w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    // 2 and 3 are lost on the stream; 4 arrives and its gap is read from the database, slowly.
    w.commit()
    w.commit()
    w.hold()
    w.seq.offer(T, { seq: w.commit() })
    await settle()
    w.leave('a')
    // The topic has nobody now; c subscribes afresh, its snapshot at 4.
    w.begin('c')
    w.snapshot('c')
    w.complete('c')
    await settle()
    expect(w.attached.has('c')).toBe(true)
    w.release()
    await w.seq.idle()
    await settle()
    w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    expect(w.got.get('c')).toEqual([5])
    expect(w.got.get('a')).toEqual([1])
  })

  test("complete() is never dropped when the topic's queue is full: the subscriber is handed over, not left silent", async () => {
    const w = world({ strict: false, maxBuffer: 3 })
    w.begin('a')
    w.snapshot('a')
    w.complete('a')
    w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    // A slow gap fill holds the topic's queue, and copies of old events queue up behind it until it is full.
    w.commit()
    w.hold()
    w.seq.offer(T, { seq: w.commit() })
    for (let i = 0; i < 3; i++) w.seq.offer(T, { seq: 1 })
    await settle()
    expect(w.errors.length).toBe(1)
    w.begin('b')
    w.snapshot('b')
    w.complete('b')
    w.release()
    await w.seq.idle()
    w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    expect(w.got.get('a')).toEqual(upTo(4))
    expect(w.got.get('b')).toEqual([4])
    expect(w.attached.has('b')).toBe(true)
    expect(w.overflowed.size).toBe(0)
  })

  test('a subscriber that leaves and comes back is a new subscriber: the old handover does not complete it', async () => {
    const w = world()
    w.begin('a')
    w.snapshot('a')
    w.complete('a')
    w.seq.offer(T, { seq: w.commit() })
    w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    w.begin('b')
    w.snapshot('b', 0)
    w.leave('b')
    w.begin('b')
    w.snapshot('b')
    w.complete('b')
    w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    expect(w.got.get('b')).toEqual([3])
    expect(w.seq.topics().get(T)).toBe(3)
  })

  test("subscribers handed over before the topic's start is known get each buffered event once, with no database read", async () => {
    const w = world()
    for (let i = 0; i < 7; i++) w.commit()
    w.begin('A')
    w.begin('B')
    // Each event arrives twice (the local hand-off and the stream) while neither snapshot is sent.
    for (const s of [6, 6, 7, 7]) w.seq.offer(T, { seq: s })
    w.snapshot('A', 5)
    w.snapshot('B', 5)
    w.complete('A')
    w.complete('B')
    await w.seq.idle()
    expect(w.got.get('A')).toEqual([6, 7])
    expect(w.got.get('B')).toEqual([6, 7])
    expect(w.fetches).toEqual([])
    expect([...w.attached].sort()).toEqual(['A', 'B'])
  })

  test("a handover costs its own subscriber's work: completing P subscribers of one topic is linear in P, not quadratic", async () => {
    const w = world()
    w.begin('first')
    w.snapshot('first')
    w.complete('first')
    for (let i = 0; i < 3; i++) w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    const P = 2000
    const subs = Array.from({ length: P }, (_, i) => `s${i}`)
    for (const s of subs) {
      w.begin(s)
      w.snapshot(s)
    }
    // Two more events while they are all pending: each is buffered for every one of them.
    for (let i = 0; i < 2; i++) w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    // Counts every step of every Map iteration while the handovers complete (the sequencer keeps
    // a topic's pending subscribers in a Map): a pass over all of them per completion is P² steps.
    const steps = await countMapSteps(async () => {
      for (const s of subs) w.complete(s)
      await w.seq.idle()
    })
    for (const s of subs) expect(w.got.get(s)).toEqual([4, 5])
    expect(w.attached.size).toBe(P + 1)
    expect(w.fetches).toEqual([])
    expect(steps).toBeLessThan(10 * P)
  })

  test('a hole the kind confirms was deleted (retention) is skipped: the topic goes on from the first retained seq', async () => {
    const w = world({ retention: true })
    w.begin('a')
    w.snapshot('a')
    w.complete('a')
    w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    // 2..8 never reach this process; retention deletes everything up to 5; then 9 arrives.
    for (let i = 0; i < 7; i++) w.commit()
    w.retain(5)
    w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    expect(w.got.get('a')).toEqual([1, 6, 7, 8, 9])
    // A subscriber whose snapshot is older than the retained events is handed over past the hole too.
    w.begin('b')
    w.snapshot('b', 2)
    w.complete('b')
    await w.seq.idle()
    expect(w.attached.has('b')).toBe(true)
    expect(w.got.get('b')).toEqual([6, 7, 8, 9])
    // Everything deleted, nothing following: reconcile moves the topic to the last seq, sending nothing.
    w.commit()
    w.commit()
    w.retain(11)
    w.seq.reconcile(T, w.committed)
    await w.seq.idle()
    expect(w.seq.topics().get(T)).toBe(11)
    w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    expect(w.got.get('a')).toEqual([1, 6, 7, 8, 9, 12])
    expect(w.got.get('b')).toEqual([6, 7, 8, 9, 12])
  })

  test('without the hook (shipment topics, which never delete), a gap waits for the database as before', async () => {
    const w = world()
    w.begin('a')
    w.snapshot('a')
    w.complete('a')
    w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    for (let i = 0; i < 7; i++) w.commit()
    w.retain(5)
    w.seq.offer(T, { seq: w.commit() })
    w.seq.reconcile(T, w.committed)
    await w.seq.idle()
    expect(w.got.get('a')).toEqual([1])
    expect(w.seq.topics().get(T)).toBe(1)
  })

  const step = fc.oneof(
    fc.record({ kind: fc.constant('commit' as const), copies: fc.integer({ min: 0, max: 2 }) }),
    fc.record({ kind: fc.constant('replay' as const), back: fc.integer({ min: 1, max: 6 }) }),
    fc.record({ kind: fc.constant('join' as const) }),
    fc.record({ kind: fc.constant('advance' as const), sub: fc.nat(), ticks: fc.integer({ min: 0, max: 3 }), bounded: fc.integer({ min: 0, max: 4 }) }),
    fc.record({ kind: fc.constant('flush' as const) }),
    fc.record({ kind: fc.constant('reconcile' as const) }),
    fc.record({ kind: fc.constant('leave' as const), sub: fc.nat() }),
    fc.record({ kind: fc.constant('rejoin' as const), sub: fc.nat() }),
    fc.record({ kind: fc.constant('fail' as const) }),
    fc.record({ kind: fc.constant('hold' as const) }),
    fc.record({ kind: fc.constant('release' as const) }),
    fc.record({ kind: fc.constant('retain' as const), keep: fc.integer({ min: 0, max: 5 }) })
  )
  type Step = typeof step extends fc.Arbitrary<infer X> ? X : never

  /**
   * Plays `steps`; then heals the database, completes every handover, reconciles, and checks:
   * every subscriber still there has exactly from+1..N, in order; one that left (or was cut off)
   * got a gap-free from+1..m and nothing after it left.
   */
  async function play(steps: Step[], { faults, maxBuffer, retention = false }: { faults: boolean; maxBuffer?: number; retention?: boolean }) {
    const w = world({ strict: !faults, maxBuffer, retention })
    const phase = new Map<string, 'begun' | 'snapshotted' | 'completed'>()
    const left = new Map<string, number[]>()
    let n = 0
    let held = false
    const late: number[] = []
    const leave = (sub: string) => {
      w.leave(sub)
      phase.delete(sub)
      left.set(sub, [...w.got.get(sub)!])
    }
    for (const s of steps) {
      if (s.kind === 'commit') {
        const k = w.commit()
        for (let c = 0; c < s.copies; c++) c === 0 ? w.seq.offer(T, { seq: k }) : late.push(k)
      } else if (s.kind === 'replay') {
        const k = late.splice(Math.max(0, late.length - s.back), 1)[0] ?? w.committed - s.back
        if (k >= 1) w.seq.offer(T, { seq: k })
      } else if (s.kind === 'join') {
        const sub = `s${n++}`
        w.begin(sub)
        phase.set(sub, 'begun')
      } else if (s.kind === 'advance') {
        const subs = [...phase].filter(([, p]) => p !== 'completed')
        if (subs.length > 0) {
          const [sub, p] = subs[s.sub % subs.length]!
          // A resume whose snapshot is bounded stops short of the database's last seq.
          if (p === 'begun') {
            w.snapshot(sub, Math.max(0, w.committed - s.bounded))
            phase.set(sub, 'snapshotted')
          } else {
            w.complete(sub)
            phase.set(sub, 'completed')
          }
        }
        for (let i = 0; i < s.ticks; i++) await Promise.resolve()
      } else if (s.kind === 'flush') {
        if (!held) await w.seq.idle()
      } else if (s.kind === 'reconcile') {
        w.seq.reconcile(T, w.committed)
      } else if (s.kind === 'leave') {
        const subs = [...phase.keys()]
        if (subs.length > 0) leave(subs[s.sub % subs.length]!)
      } else if (s.kind === 'rejoin') {
        // The same subscriber back again (as a socket that unsubscribed and subscribes anew).
        const gone = [...left.keys()]
        if (gone.length > 0) {
          const sub = gone[s.sub % gone.length]!
          left.delete(sub)
          w.snapshots.delete(sub)
          w.begin(sub)
          phase.set(sub, 'begun')
        }
      } else if (faults && s.kind === 'fail') w.failNext()
      else if (faults && s.kind === 'hold' && !held) {
        w.hold()
        held = true
      } else if (s.kind === 'release' && held) {
        w.release()
        held = false
      } else if (retention && s.kind === 'retain') w.retain(w.committed - s.keep)
    }
    w.release()
    w.failNext(0)
    for (const [sub, p] of phase) {
      if (p === 'begun') w.snapshot(sub)
      if (p !== 'completed') w.complete(sub)
    }
    for (let round = 0; round < 2; round++) {
      await w.seq.idle()
      w.seq.reconcile(T, w.committed)
      await w.seq.idle()
    }
    for (const e of w.errors) expect(String(e)).toMatch(/the database read failed|events queued/)
    if (retention) return checkRetained(w, phase.keys(), left)
    for (const sub of phase.keys()) {
      const from = w.snapshots.get(sub)!
      if (w.overflowed.has(sub)) {
        const got = w.got.get(sub)!
        expect(got).toEqual(upTo(from + got.length, from))
      } else expect(w.got.get(sub)).toEqual(upTo(w.committed, from))
    }
    for (const [sub, at] of left) {
      expect(w.got.get(sub)).toEqual(at)
      const from = w.snapshots.get(sub)
      if (from === undefined) expect(at).toEqual([])
      else expect(at).toEqual(upTo(from + at.length, from))
    }
  }

  /**
   * With retention, a subscriber may miss what was deleted before it could be delivered, and
   * nothing else: it gets a rising run of seqs after its snapshot that holds every seq still
   * stored at the end (so it did not stall at a hole); one that left, nothing after it left.
   */
  function checkRetained(w: ReturnType<typeof world>, present: Iterable<string>, left: Map<string, number[]>) {
    const rising = (got: number[], from: number) => got.every((s, i) => s > (i === 0 ? from : got[i - 1]!))
    for (const sub of present) {
      const from = w.snapshots.get(sub)!
      const got = w.got.get(sub)!
      expect(rising(got, from)).toBe(true)
      expect(got.at(-1) ?? from).toBeLessThanOrEqual(w.committed)
      if (!w.overflowed.has(sub)) expect(got.filter((s) => s > w.deleted)).toEqual(upTo(w.committed, Math.max(from, w.deleted)))
    }
    for (const [sub, at] of left) {
      expect(w.got.get(sub)).toEqual(at)
      expect(rising(at, w.snapshots.get(sub) ?? 0)).toBe(true)
    }
  }

  test('property: every subscriber sees lastSeq+1..N exactly once, in order, however the stream behaves', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 80, size: 'max' }), (steps) => play(steps, { faults: false })),
      { numRuns: 500 }
    )
  })

  test('property: the same when subscribers leave and come back, snapshots are bounded, and database reads fail or take their time', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 80, size: 'max' }), (steps) => play(steps, { faults: true })),
      { numRuns: 500 }
    )
  })

  test('property: the same with a topic queue and handover buffers of 3 (work dropped, sockets cut off and resuming)', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 80, size: 'max' }), (steps) => play(steps, { faults: true, maxBuffer: 3 })),
      { numRuns: 500 }
    )
  })

  test('property: with retention deleting old events, holes are skipped and every event still stored arrives, in order, once', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 80, size: 'max' }), (steps) => play(steps, { faults: true, retention: true })),
      { numRuns: 500 }
    )
  })
})
