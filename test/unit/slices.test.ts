/** Socket work in slices: order, the per-turn budget (other callbacks run between slices), the bound. */
import { describe, expect, test } from 'bun:test'
import { createSlices } from '../../src/delivery/slices.ts'
import { BusyError } from '../../src/errors.ts'

const busy = (ms: number) => {
  const end = performance.now() + ms
  while (performance.now() < end) {}
}

describe('slices', () => {
  test('tasks run in the order they came, each caller getting its own result or error', async () => {
    const s = createSlices({ budgetMs: 4, maxQueued: 100 })
    const order: number[] = []
    const results = await Promise.allSettled(
      Array.from({ length: 20 }, (_, i) =>
        s.later(async () => {
          order.push(i)
          if (i === 7) throw new Error('seven')
          return i * 2
        })
      )
    )
    expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i))
    expect(results[3]).toEqual({ status: 'fulfilled', value: 6 })
    expect(results[7]).toMatchObject({ status: 'rejected', reason: new Error('seven') })
    expect(results[19]).toEqual({ status: 'fulfilled', value: 38 })
  })

  test('a long queue yields to other callbacks after each budget', async () => {
    const s = createSlices({ budgetMs: 4, maxQueued: 1000 })
    let done = 0
    const all = Array.from({ length: 100 }, () => s.later(() => (busy(1), done++)))
    // A timer due at once, scheduled after all 100 ms of work was queued: it must not wait for all of it.
    const timerSawDone = new Promise<number>((resolve) => setTimeout(() => resolve(done), 0))
    const seen = await timerSawDone
    await Promise.all(all)
    expect(done).toBe(100)
    expect(seen).toBeLessThan(20)
  })

  test('beyond maxQueued a task is refused at once; the waiting ones still run', async () => {
    const s = createSlices({ budgetMs: 4, maxQueued: 3 })
    const waiting = [s.later(() => 1), s.later(() => 2), s.later(() => 3)]
    expect(s.queued()).toBe(3)
    await expect(s.later(() => 4)).rejects.toBeInstanceOf(BusyError)
    expect(await Promise.all(waiting)).toEqual([1, 2, 3])
    expect(s.queued()).toBe(0)
    expect(await s.later(() => 5)).toBe(5)
  })
})
