/**
 * The group commit's scheduling, with a commit function that records what it was given and
 * finishes when the test says so. (What a shared transaction stores is tested against the real
 * PostgreSQL in test/integration/processor.test.ts.)
 */
import { describe, expect, test } from 'bun:test'
import { OverloadedError } from '../../src/errors.ts'
import { createMetrics } from '../../src/metrics.ts'
import type { NormalizedEvent } from '../../src/pipeline/event.ts'
import { createGroupCommit, type GroupCommitOptions, type Indexed } from '../../src/pipeline/group-commit.ts'
import type { IngestResult } from '../../src/pipeline/ingest-query.ts'

function harness(over: Partial<GroupCommitOptions> = {}) {
  const transactions: { keys: string[]; finish: (err?: Error) => void }[] = []
  const metrics = createMetrics({ defaults: false })
  let seq = 0
  const gc = createGroupCommit({
    maxInFlight: 4,
    minEventsToOverlap: 100,
    maxBatchEvents: 1000,
    maxQueuedEvents: 10_000,
    metrics,
    commit: (events) =>
      new Promise<IngestResult>((resolve, reject) => {
        transactions.push({
          keys: events.map((e) => e.event.dedupKey),
          finish: (err) =>
            err
              ? reject(err)
              : resolve({
                  receivedAt: '2026-12-02T00:00:00.000000Z',
                  planned: events.map((e) => ({
                    ord: e.ord,
                    outcome: 'inserted',
                    shipmentId: 's',
                    seq: ++seq,
                    projectionUpdated: true,
                    projection: null,
                    statusChange: null
                  })),
                  webhookMessages: [],
                  notifications: []
                })
        })
      }),
    after: async (events) => new Set(events.map((e) => e.ord)),
    isDataError: (err) => (err as { code?: string }).code === '22P05',
    ...over
  })
  return { gc, transactions, metrics }
}

/** n events of one call, keys `${name}0..`, at ords 0, 2, 4 … (a call's invalid events leave holes). */
const call = (name: string, n: number): Indexed[] =>
  Array.from({ length: n }, (_, i) => ({ ord: 2 * i, event: { dedupKey: `${name}${i}` } as NormalizedEvent }))

const tick = () => Bun.sleep(0)

describe('group commit', () => {
  test('a call that finds the database idle starts at once, alone', async () => {
    const { gc, transactions } = harness()
    const p = gc.submit(call('a', 3))
    expect(transactions.map((t) => t.keys)).toEqual([['a0', 'a1', 'a2']])
    transactions[0]!.finish()
    const r = await p
    expect(r.planned.map((x) => [x.ord, x.seq])).toEqual([
      [0, 1],
      [2, 2],
      [4, 3]
    ])
    expect([...r.published]).toEqual([0, 2, 4])
  })

  test('calls arriving during a transaction share the next one, in arrival order, each getting its own results back', async () => {
    const { gc, transactions, metrics } = harness()
    const first = gc.submit(call('a', 1))
    const later = [gc.submit(call('b', 2)), gc.submit(call('c', 1)), gc.submit(call('d', 3))]
    expect(transactions.length).toBe(1)
    expect(gc.state()).toEqual({ queued: 6, inFlight: 1 })
    transactions[0]!.finish()
    await first
    expect(transactions.map((t) => t.keys)).toEqual([['a0'], ['b0', 'b1', 'c0', 'd0', 'd1', 'd2']])
    transactions[1]!.finish()
    const [b, c, d] = await Promise.all(later)
    expect(b!.planned.map((x) => [x.ord, x.seq])).toEqual([
      [0, 2],
      [2, 3]
    ])
    expect(c!.planned.map((x) => [x.ord, x.seq])).toEqual([[0, 4]])
    expect(d!.planned.map((x) => [x.ord, x.seq])).toEqual([
      [0, 5],
      [2, 6],
      [4, 7]
    ])
    expect([...d!.published]).toEqual([0, 2, 4])
    const calls = (await metrics.ingestCalls.get()).values.find((v) => v.metricName?.endsWith('_sum'))
    expect(calls!.value).toBe(1 + 3)
  })

  test('a second transaction starts beside a running one only once enough events wait, up to maxInFlight', async () => {
    const { gc, transactions } = harness({ maxInFlight: 2, minEventsToOverlap: 10 })
    void gc.submit(call('a', 1))
    void gc.submit(call('b', 4))
    void gc.submit(call('c', 5))
    // 9 waiting: not worth a transaction of its own beside `a`. The tenth event starts one.
    expect(transactions.length).toBe(1)
    void gc.submit(call('d', 1))
    expect(transactions.map((t) => t.keys.length)).toEqual([1, 10])
    // Both slots busy: everything else waits, whatever its size.
    void gc.submit(call('e', 50))
    expect(transactions.length).toBe(2)
    transactions[0]!.finish()
    await tick()
    expect(transactions.map((t) => t.keys.length)).toEqual([1, 10, 50])
  })

  test('calls are merged whole: what does not fit waits for the next transaction, and a call above the cap runs alone', async () => {
    const { gc, transactions } = harness({ maxInFlight: 1, maxBatchEvents: 10 })
    void gc.submit(call('a', 1))
    void gc.submit(call('b', 6))
    void gc.submit(call('c', 6))
    void gc.submit(call('d', 4))
    void gc.submit(call('e', 25))
    for (let i = 0; i < 4; i++) {
      transactions[i]!.finish()
      await tick()
    }
    expect(transactions.map((t) => t.keys.map((k) => k[0]).join(''))).toEqual(['a', 'bbbbbb', 'ccccccdddd', 'e'.repeat(25)])
  })

  test('a failed transaction fails every call in it, and the next ones still run', async () => {
    const { gc, transactions } = harness()
    const a = gc.submit(call('a', 1))
    const b = gc.submit(call('b', 1))
    const c = gc.submit(call('c', 1))
    transactions[0]!.finish()
    await a
    const boom = new Error('connection lost')
    const settled = Promise.allSettled([b, c])
    transactions[1]!.finish(boom)
    expect(await settled).toEqual([
      { status: 'rejected', reason: boom },
      { status: 'rejected', reason: boom }
    ])
    const d = gc.submit(call('d', 1))
    expect(transactions.length).toBe(3)
    transactions[2]!.finish()
    expect((await d).planned.length).toBe(1)
  })

  test('when the queue is full a call is refused at once and never reaches the database', async () => {
    const { gc, transactions, metrics } = harness({ maxInFlight: 1, maxQueuedEvents: 10 })
    void gc.submit(call('a', 1))
    void gc.submit(call('b', 8))
    const refused = gc.submit(call('c', 3))
    await expect(refused).rejects.toBeInstanceOf(OverloadedError)
    expect(transactions.length).toBe(1)
    expect((await metrics.ingestRefused.get()).values[0]!.value).toBe(3)
    // Still room for two.
    void gc.submit(call('d', 2))
    transactions[0]!.finish()
    await tick()
    expect(transactions.map((t) => t.keys.map((k) => k[0]).join(''))).toEqual(['a', 'bbbbbbbbdd'])
    // An idle database takes any call, whatever the bound.
    transactions[1]!.finish()
    await tick()
    const big = gc.submit(call('e', 50))
    expect(transactions.length).toBe(3)
    transactions[2]!.finish()
    expect((await big).planned.length).toBe(50)
  })

  test('the slot is free once the commit is done: a slow publish does not hold up the next transaction', async () => {
    let release!: () => void
    const publishing = new Promise<void>((r) => (release = r))
    const { gc, transactions } = harness({
      maxInFlight: 1,
      after: async (events) => {
        await publishing
        return new Set(events.map((e) => e.ord))
      }
    })
    const a = gc.submit(call('a', 1))
    const b = gc.submit(call('b', 1))
    transactions[0]!.finish()
    await tick()
    expect(transactions.length).toBe(2)
    transactions[1]!.finish()
    release()
    expect((await a).published.size).toBe(1)
    expect((await b).published.size).toBe(1)
  })

  describe('data one call gets wrong', () => {
    /** A database that refuses, as data, any transaction holding a key that starts with "bad". */
    function refusing(over: Partial<GroupCommitOptions> = {}) {
      const transactions: string[][] = []
      let seq = 0
      const gc = createGroupCommit({
        maxInFlight: 1,
        minEventsToOverlap: 100,
        maxBatchEvents: 1000,
        maxQueuedEvents: 10_000,
        metrics: createMetrics({ defaults: false }),
        isDataError: (err) => (err as { code?: string }).code === '22P05',
        async commit(events) {
          transactions.push(events.map((e) => e.event.dedupKey))
          if (events.some((e) => e.event.dedupKey.startsWith('bad'))) throw Object.assign(new Error('untranslatable character'), { code: '22P05' })
          return {
            receivedAt: 'now',
            planned: events.map((e) => ({
              ord: e.ord,
              outcome: 'inserted' as const,
              shipmentId: 's',
              seq: ++seq,
              projectionUpdated: true,
              projection: null,
              statusChange: null
            })),
            webhookMessages: [],
            notifications: []
          }
        },
        after: async (events) => new Set(events.map((e) => e.ord)),
        ...over
      })
      return { gc, transactions }
    }

    test('is found by retrying in halves: only the refused events fail, every other call commits in order', async () => {
      const { gc, transactions } = refusing()
      const first = gc.submit(call('a', 1))
      const group = [
        gc.submit(call('b', 3)),
        gc.submit(call('bad', 1)),
        gc.submit(call('c', 2)),
        gc.submit([...call('d', 2), { ord: 9, event: { dedupKey: 'bad-d' } as NormalizedEvent }])
      ]
      await first
      const [b, bad, c, d] = await Promise.all(group)
      expect(b!.planned.map((p) => p.ord)).toEqual([0, 2, 4])
      expect([...bad!.refused.keys()]).toEqual([0])
      expect(bad!.planned).toEqual([])
      expect(c!.planned.map((p) => p.ord)).toEqual([0, 2])
      // A call whose own event was refused keeps the rest of it.
      expect(d!.planned.map((p) => p.ord)).toEqual([0, 2])
      expect([...d!.refused.keys()]).toEqual([9])
      expect([...d!.published]).toEqual([0, 2])
      // Seq follows arrival order across the retried parts; each refused event ended alone.
      const seqs = [b, c, d].flatMap((r) => r!.planned.map((p) => p.seq))
      expect(seqs).toEqual([...seqs].sort((x, y) => x! - y!))
      expect(transactions.filter((t) => t.length === 1 && t[0]!.startsWith('bad')).sort()).toEqual([['bad-d'], ['bad0']])
      expect(transactions.length).toBeLessThan(2 * 9)
    })

    test('a failure that is not about the data fails every call of the group, and nothing is retried for it', async () => {
      const boom = Object.assign(new Error('disk full'), { code: '53100' })
      let n = 0
      const { gc, transactions } = refusing({
        async commit(events) {
          transactions.push(events.map((e) => e.event.dedupKey))
          if (n++ > 0) throw boom
          return { receivedAt: 'now', planned: [], webhookMessages: [], notifications: [] }
        }
      })
      const a = gc.submit(call('a', 1))
      const settled = Promise.allSettled([gc.submit(call('b', 1)), gc.submit(call('bad', 1))])
      await a
      expect(await settled).toEqual([
        { status: 'rejected', reason: boom },
        { status: 'rejected', reason: boom }
      ])
      expect(transactions).toEqual([['a0'], ['b0', 'bad0']])
    })
  })
})
