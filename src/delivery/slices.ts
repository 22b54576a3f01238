/**
 * Socket work in slices: what connecting and subscribing sockets cost, spread over the event
 * loop's turns so that live delivery runs between them.
 *
 * One process's event loop accepts sockets, checks their tokens, answers their frames — and
 * also takes ingest requests, reads PostgreSQL's replies and sends every event. When 5,000
 * sockets connect at once, Bun hands their callbacks to JavaScript in long runs, and an event
 * committed meanwhile waits for each of its steps (the request, two round trips, the send) to
 * find the loop free: in `bench:e2e`'s storm row (d) the sockets already there saw events up to
 * 0.82–1.11 s late. Here the token check and every frame's handling are queued instead and run
 * for at most `budgetMs` per turn (then `setImmediate` yields to I/O), which brought that to
 * 0.33–0.67 s, median 0.44 s over six runs (a bare Bun server: 0.18–0.34 s), for the same total
 * work: the storm itself is served as fast as before.
 *
 *   - First in, first out: a socket's frames are handled in the order they came.
 *   - Bounded: beyond `maxQueued` waiting tasks a task is refused at once (BusyError), never
 *     run out of order and never queued without limit; the hub answers it `unavailable`.
 *   - A task that throws does not stop the others; its caller's promise rejects.
 */
import { BusyError } from '../errors.ts'

export function createSlices({ budgetMs, maxQueued, onDrain }: { budgetMs: number; maxQueued: number; onDrain?: (queued: number) => void }) {
  let queue: (() => void)[] = []
  let head = 0
  let scheduled = false

  function drain() {
    scheduled = false
    const start = performance.now()
    // At least one task per turn, then as many as fit in the budget.
    do queue[head++]!()
    while (head < queue.length && performance.now() - start < budgetMs)
    if (head === queue.length) {
      queue = []
      head = 0
    } else if (head > 1024 && head * 2 > queue.length) {
      queue = queue.slice(head)
      head = 0
    }
    onDrain?.(queue.length - head)
    if (head < queue.length) schedule()
  }

  function schedule() {
    if (scheduled) return
    scheduled = true
    setImmediate(drain)
  }

  return {
    /** Runs `fn` in a slice; resolves or rejects with its result. */
    later<T>(fn: () => T | Promise<T>): Promise<T> {
      if (queue.length - head >= maxQueued) return Promise.reject(new BusyError('socket tasks', queue.length - head))
      return new Promise<T>((resolve, reject) => {
        queue.push(() => {
          try {
            Promise.resolve(fn()).then(resolve, reject)
          } catch (err) {
            reject(err)
          }
        })
        schedule()
      })
    },
    /** Tasks waiting for a slice. */
    queued: () => queue.length - head
  }
}
