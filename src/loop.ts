/**
 * A background loop: one run at a time (a run asked for while one is going answers `busy`),
 * the next run `delay()` ms after the previous one ended, and `stop()` waits for the run in
 * progress. Every periodic worker (outbox relay, pollers) is one of these.
 */
export function createLoop<R>(run: () => Promise<R>, opts: { delay: () => number; busy: R }) {
  let running: Promise<R> | null = null
  let timer: ReturnType<typeof setTimeout> | null = null
  let stopped = true

  function runOnce(): Promise<R> {
    if (running) return Promise.resolve(opts.busy)
    running = run().finally(() => (running = null))
    return running
  }

  function schedule(delayMs: number) {
    if (stopped) return
    timer = setTimeout(async () => {
      await runOnce()
      schedule(opts.delay())
    }, delayMs)
  }

  return {
    runOnce,
    /** Starts the loop; the first run after `firstDelayMs` (default: `delay()`). Returns false if already started. */
    start(firstDelayMs = opts.delay()): boolean {
      if (!stopped) return false
      stopped = false
      schedule(firstDelayMs)
      return true
    },
    async stop() {
      stopped = true
      if (timer) clearTimeout(timer)
      timer = null
      await running
    }
  }
}
