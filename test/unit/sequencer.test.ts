/**
 * The sequencer against a model: events committed in seq order, a stream that duplicates,
 * reorders and drops them, subscribers joining at random moments with the handoff protocol.
 * Every subscriber must end with exactly seq lastSeq+1..N, in order.
 */
import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { createSequencer } from '../../src/delivery/sequencer.ts'

type Ev = { seq: number }
const T = 'shipment:dhl:X1'

function world() {
  let committed = 0
  const attached = new Set<string>()
  const got = new Map<string, number[]>()
  const snapshots = new Map<string, number>()
  const fetches: [number, number][] = []
  const seq = createSequencer<Ev, string>({
    async fetch(_topic, after, upto, limit) {
      fetches.push([after, upto])
      const rows: Ev[] = []
      for (let s = after + 1; s <= Math.min(upto, committed) && rows.length < limit; s++) rows.push({ seq: s })
      return rows
    },
    out: {
      publish: (_t, e) => { for (const s of attached) got.get(s)!.push(e.seq) },
      send: (s, _t, e) => got.get(s)!.push(e.seq),
      attach: (s) => attached.add(s),
      overflow: (s) => { throw new Error(`overflow ${s}`) }
    },
    onError: (_t, err) => { throw err }
  })
  return {
    seq, got, attached, snapshots, fetches,
    commit: () => ++committed,
    get committed() { return committed },
    begin(sub: string) { got.set(sub, []); seq.begin(T, sub) },
    snapshot(sub: string) { snapshots.set(sub, committed) },
    complete(sub: string) { seq.complete(T, sub, snapshots.get(sub)!) }
  }
}

describe('sequencer', () => {
  test('in-order stream: published once each, in order', async () => {
    const w = world()
    w.begin('a'); w.snapshot('a'); w.complete('a')
    for (let i = 0; i < 5; i++) w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    expect(w.got.get('a')).toEqual([1, 2, 3, 4, 5])
    expect(w.fetches).toEqual([])
  })

  test('duplicates are dropped; a gap is filled from the database before newer events', async () => {
    const w = world()
    w.begin('a'); w.snapshot('a'); w.complete('a')
    for (let i = 0; i < 6; i++) w.commit()
    for (const s of [1, 1, 2, 5, 3, 6, 4, 6]) w.seq.offer(T, { seq: s })
    await w.seq.idle()
    expect(w.got.get('a')).toEqual([1, 2, 3, 4, 5, 6])
    expect(w.fetches).toEqual([[2, 4]])
  })

  test('events lost at the end of the stream arrive through reconcile', async () => {
    const w = world()
    w.begin('a'); w.snapshot('a'); w.complete('a')
    w.seq.offer(T, { seq: w.commit() }); w.commit(); w.commit()
    await w.seq.idle()
    expect(w.got.get('a')).toEqual([1])
    w.seq.reconcile(T, 3)
    await w.seq.idle()
    expect(w.got.get('a')).toEqual([1, 2, 3])
  })

  test('a subscriber whose snapshot is ahead of the stream waits, then gets only newer events', async () => {
    const w = world()
    w.begin('a'); w.snapshot('a'); w.complete('a')
    w.seq.offer(T, { seq: w.commit() })
    await w.seq.idle()
    w.commit(); w.commit()
    w.begin('b'); w.snapshot('b'); w.complete('b')
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
    w.begin('a'); w.snapshot('a'); w.complete('a')
    await w.seq.idle()
    w.seq.leave(T, 'a', true)
    expect(w.seq.topics().size).toBe(0)
  })

  test('property: every subscriber sees lastSeq+1..N exactly once, in order, however the stream behaves', async () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('commit' as const), copies: fc.integer({ min: 0, max: 2 }) }),
      fc.record({ kind: fc.constant('replay' as const), back: fc.integer({ min: 1, max: 6 }) }),
      fc.record({ kind: fc.constant('join' as const) }),
      fc.record({ kind: fc.constant('advance' as const), sub: fc.nat(), ticks: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ kind: fc.constant('flush' as const) })
    )
    await fc.assert(
      fc.asyncProperty(fc.array(step, { minLength: 1, maxLength: 80 }), async (steps) => {
        const w = world()
        const phase = new Map<string, 'begun' | 'snapshotted' | 'completed'>()
        let n = 0
        const late: number[] = []
        for (const s of steps) {
          if (s.kind === 'commit') {
            const k = w.commit()
            for (let c = 0; c < s.copies; c++) (c === 0 ? w.seq.offer(T, { seq: k }) : late.push(k))
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
              if (p === 'begun') { w.snapshot(sub); phase.set(sub, 'snapshotted') }
              else { w.complete(sub); phase.set(sub, 'completed') }
            }
            for (let i = 0; i < s.ticks; i++) await Promise.resolve()
          } else await w.seq.idle()
        }
        for (const [sub, p] of phase) {
          if (p === 'begun') w.snapshot(sub)
          if (p !== 'completed') w.complete(sub)
        }
        await w.seq.idle()
        w.seq.reconcile(T, w.committed)
        await w.seq.idle()
        for (const sub of phase.keys()) {
          const from = w.snapshots.get(sub)!
          expect(w.got.get(sub)).toEqual(Array.from({ length: w.committed - from }, (_, i) => from + i + 1))
        }
      }),
      { numRuns: 500 }
    )
  })
})
