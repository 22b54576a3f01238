/**
 * Coalesced key lookups: the shipments that subscribing sockets ask for, read in shared queries.
 *
 * Every subscribe reads its shipment before its snapshot goes out. One query per subscribe is
 * right at rest and wrong in a reconnect storm: 5,000 sockets subscribing within a second cost
 * 5,000 round trips, 120–260 ms of this process's CPU in postgres.js alone (and PostgreSQL's
 * own), on the event loop that also delivers every other socket's events. So, as group commit
 * does for ingest (pipeline/group-commit.ts): at most `maxInFlight` queries run at once; a key
 * asked for meanwhile waits, and when a query returns, the next one takes every waiting key
 * (up to `maxBatch`, each distinct key once — 5,000 sockets subscribing to one shipment share
 * a row).
 *
 *   - At rest a lookup starts at once, alone: no timer, no added latency.
 *   - A key never joins a query already sent: it is read by a query that starts after it was
 *     asked for. The hub relies on this — the read must come after the socket has begun
 *     listening for the topic (sequencer.begin), or the snapshot could miss an event.
 *   - Bounded: beyond `maxQueued` waiting lookups a lookup fails at once with BusyError (the
 *     subscribe answers `unavailable`, try again). A failed query fails every lookup it carried, each with its error.
 */
import { BusyError } from '../errors.ts'

export interface LookupBatcherOptions<V> {
  /** Queries running at once. */
  maxInFlight: number
  /** Distinct keys one query may carry. */
  maxBatch: number
  /** Lookups waiting for a query before new ones are refused. */
  maxQueued: number
  /** Reads the given distinct keys; a key missing from the result is `null`. */
  run: (keys: string[]) => Promise<Map<string, V>>
  /** Called with the number of distinct keys of every query sent. */
  onQuery?: (keys: number) => void
}

interface Waiter<V> {
  key: string
  resolve: (v: V | null) => void
  reject: (err: unknown) => void
}

export function createLookupBatcher<V>(opts: LookupBatcherOptions<V>) {
  // A queue read from `head` on: taking a batch moves the index, not the array (a storm queues
  // thousands of lookups, and a copy of the rest per query would be quadratic).
  let queue: Waiter<V>[] = []
  let head = 0
  let inFlight = 0
  const waiting = () => queue.length - head

  function pump() {
    while (head < queue.length && inFlight < opts.maxInFlight) {
      // The longest run of waiters with at most maxBatch distinct keys.
      const keys = new Set<string>()
      const start = head
      while (head < queue.length && (keys.size < opts.maxBatch || keys.has(queue[head]!.key))) keys.add(queue[head++]!.key)
      const waiters = queue.slice(start, head)
      if (head === queue.length) {
        queue = []
        head = 0
      } else if (head > 1024 && head * 2 > queue.length) {
        // Never drained for long: drop the consumed front once it is most of the array.
        queue = queue.slice(head)
        head = 0
      }
      inFlight++
      void send([...keys], waiters)
    }
  }

  async function send(keys: string[], waiters: Waiter<V>[]) {
    opts.onQuery?.(keys.length)
    try {
      const found = await opts.run(keys)
      for (const w of waiters) w.resolve(found.get(w.key) ?? null)
    } catch (err) {
      for (const w of waiters) w.reject(err)
    } finally {
      inFlight--
      pump()
    }
  }

  return {
    get(key: string): Promise<V | null> {
      if (waiting() >= opts.maxQueued) return Promise.reject(new BusyError('shipment reads', waiting()))
      return new Promise<V | null>((resolve, reject) => {
        queue.push({ key, resolve, reject })
        pump()
      })
    },
    /** Lookups waiting for a query, and queries running. */
    state: () => ({ queued: waiting(), inFlight })
  }
}
