/**
 * The lookup batcher's scheduling, with a query function that records the keys it was given and
 * answers when the test says so. (The real query, against PostgreSQL, is tested in
 * test/integration/delivery-queries.test.ts.)
 */
import { describe, expect, test } from 'bun:test'
import { createLookupBatcher, type LookupBatcherOptions } from '../../src/delivery/lookup-batcher.ts'
import { BusyError } from '../../src/errors.ts'

function harness(over: Partial<LookupBatcherOptions<string>> = {}) {
  const queries: { keys: string[]; answer: (err?: Error) => void }[] = []
  const b = createLookupBatcher<string>({
    maxInFlight: 2,
    maxBatch: 500,
    maxQueued: 1000,
    run: (keys) =>
      new Promise((resolve, reject) => {
        // Every key but those starting with "missing" is found, with the value `v:<key>@<query number>`.
        const n = queries.length
        queries.push({
          keys,
          answer: (err) => (err ? reject(err) : resolve(new Map(keys.filter((k) => !k.startsWith('missing')).map((k) => [k, `v:${k}@${n}`]))))
        })
      }),
    ...over
  })
  return { b, queries }
}

describe('lookup batcher', () => {
  test('at rest a lookup is sent at once, alone', async () => {
    const { b, queries } = harness()
    const p = b.get('a')
    expect(queries.map((q) => q.keys)).toEqual([['a']])
    queries[0]!.answer()
    expect(await p).toBe('v:a@0')
  })

  test('lookups made while the queries run share the next one, each distinct key once, each caller getting its own value', async () => {
    const { b, queries } = harness()
    const first = [b.get('a'), b.get('b')]
    const waiting = [b.get('c'), b.get('missing1'), b.get('c'), b.get('d')]
    expect(queries.map((q) => q.keys)).toEqual([['a'], ['b']])
    expect(b.state()).toEqual({ queued: 4, inFlight: 2 })
    queries[0]!.answer()
    expect(await first[0]).toBe('v:a@0')
    expect(queries[2]!.keys).toEqual(['c', 'missing1', 'd'])
    queries[2]!.answer()
    expect(await Promise.all(waiting)).toEqual(['v:c@2', null, 'v:c@2', 'v:d@2'])
    queries[1]!.answer()
    expect(await first[1]).toBe('v:b@1')
    expect(b.state()).toEqual({ queued: 0, inFlight: 0 })
  })

  test('a key asked for after its query was sent is read again, by a later query', async () => {
    const { b, queries } = harness({ maxInFlight: 1 })
    const early = b.get('a')
    const late = b.get('a')
    expect(queries.map((q) => q.keys)).toEqual([['a']])
    queries[0]!.answer()
    expect(await early).toBe('v:a@0')
    expect(queries.map((q) => q.keys)).toEqual([['a'], ['a']])
    queries[1]!.answer()
    expect(await late).toBe('v:a@1')
  })

  test('a query carries at most maxBatch distinct keys; repeats of a key it carries ride along', async () => {
    const { b, queries } = harness({ maxInFlight: 1, maxBatch: 2 })
    const all = [b.get('x'), b.get('a'), b.get('b'), b.get('a'), b.get('b'), b.get('c')]
    queries[0]!.answer()
    await all[0]
    expect(queries[1]!.keys).toEqual(['a', 'b'])
    queries[1]!.answer()
    await Promise.all(all.slice(1, 5))
    expect(queries[2]!.keys).toEqual(['c'])
    queries[2]!.answer()
    expect(await Promise.all(all)).toEqual(['v:x@0', 'v:a@1', 'v:b@1', 'v:a@1', 'v:b@1', 'v:c@2'])
  })

  test('beyond maxQueued waiting lookups a lookup fails at once; the waiting ones still complete', async () => {
    const { b, queries } = harness({ maxInFlight: 1, maxQueued: 2 })
    const running = b.get('a')
    const waiting = [b.get('b'), b.get('c')]
    await expect(b.get('d')).rejects.toBeInstanceOf(BusyError)
    queries[0]!.answer()
    await running
    queries[1]!.answer()
    expect(await Promise.all(waiting)).toEqual(['v:b@1', 'v:c@1'])
  })

  test('a failed query fails every lookup it carried, and the next query still runs', async () => {
    const { b, queries } = harness({ maxInFlight: 1 })
    const running = b.get('a')
    const carried = [b.get('b'), b.get('c')].map((p) =>
      p.then(
        () => 'resolved',
        (e: Error) => e.message
      )
    )
    queries[0]!.answer(new Error('connection lost'))
    await expect(running).rejects.toThrow('connection lost')
    const after = b.get('d')
    queries[1]!.answer(new Error('still down'))
    expect(await Promise.all(carried)).toEqual(['still down', 'still down'])
    queries[2]!.answer()
    expect(await after).toBe('v:d@2')
  })
})
