/**
 * Connections with a deadline: `slots` single-connection postgres.js clients, each lent to one
 * call at a time (`run`). A call still running `timeoutMs` after it started has its client
 * destroyed at once — every query on it rejected, its socket closed without waiting for the
 * server — and a fresh client takes the slot; the call rejects with a `DeadlineError`, which is
 * "database unavailable" (503 `database_unavailable`). Calls on the other slots go on. So a
 * PostgreSQL that stops answering (a blackholed host, a lock held for ever) holds a slot for
 * `timeoutMs` at most, and a connection the driver lost track of is replaced by the next deadline.
 *
 * One client per slot is what makes this possible: postgres.js can end a client, but not one
 * connection of a pool. The clients also carry the deadline to the server, as session settings:
 * `statement_timeout` (a statement waiting for a lock gives up by itself, and lets go of the
 * rows it locked, even if the cancel never reaches it) and `idle_in_transaction_session_timeout`
 * (a transaction whose client went silent between two round trips is rolled back by the server,
 * which would otherwise keep its row locks until TCP noticed, hours later).
 *
 * One timer per call; nothing per query. The ingest transactions (INGEST_CONCURRENCY slots) and
 * the outbox relay (one slot) run on these; `probe` is /readyz's look at them.
 */
import { DeadlineError } from '../errors.ts'
import type { Sql } from './client.ts'

export interface GuardedConnections {
  /**
   * `f` on a client of its own, for `timeoutMs` at most (default: the deadline of these
   * connections), after waiting at most `waitMs` for a free slot (default: as long as it takes).
   * A call whose work settles after its deadline fired settles as the work did: a commit whose
   * answer arrives in time for it is a commit.
   */
  run<T>(what: string, f: (sql: Sql) => Promise<T>, opts?: { timeoutMs?: number; waitMs?: number }): Promise<T>
  /** A slot, free within `ms`, answers `select 1` within `ms` more (a slot that does not is replaced). */
  probe(ms: number): Promise<boolean>
  /** Slots, slots in use, and how long the oldest call in use has been running. */
  state(): { slots: number; busy: number; oldestMs: number | null }
  end(opts: { timeout: number }): Promise<void>
}

interface Slot {
  sql: Sql
  since: number
}

const stopping = () => Object.assign(new Error('the service is stopping'), { code: 'CONNECTION_ENDED' })

/** How long after its deadline a call whose queries the driver never settles is given up. */
const SETTLE_MS = 1000

export function createGuardedConnections({
  make,
  slots,
  timeoutMs,
  onDeadline
}: {
  /** A client of one connection, with the deadline as its session settings (`client.ts`, `sessionTimeouts`). */
  make: () => Sql
  slots: number
  timeoutMs: number
  onDeadline?: (what: string, ms: number) => void
}): GuardedConnections {
  const all: Slot[] = Array.from({ length: slots }, () => ({ sql: make(), since: 0 }))
  const free = [...all]
  const busy = new Set<Slot>()
  const waiting: { give: (slot: Slot) => void; fail: (err: Error) => void }[] = []
  const abandoned = new Set<Promise<void>>()
  let ended = false

  function take(what: string, waitMs: number | undefined): Slot | Promise<Slot> {
    const slot = free.pop()
    if (slot) return slot
    return new Promise<Slot>((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | undefined
      const waiter = {
        give: (s: Slot) => {
          clearTimeout(timer)
          resolve(s)
        },
        fail: (err: Error) => {
          clearTimeout(timer)
          reject(err)
        }
      }
      waiting.push(waiter)
      if (waitMs !== undefined) {
        timer = setTimeout(() => {
          waiting.splice(waiting.indexOf(waiter), 1)
          reject(new DeadlineError(`${what}, waiting for a free connection,`, waitMs))
        }, waitMs)
      }
    })
  }

  function giveBack(slot: Slot) {
    busy.delete(slot)
    const next = waiting.shift()
    if (next) next.give(slot)
    else free.push(slot)
  }

  /** The slot's client is destroyed and replaced; what ran on it rejects. */
  function replace(slot: Slot) {
    const old = slot.sql
    slot.sql = make()
    const ending = old.end({ timeout: 0 }).catch(() => {})
    abandoned.add(ending)
    void ending.finally(() => abandoned.delete(ending))
  }

  async function run<T>(what: string, f: (sql: Sql) => Promise<T>, opts: { timeoutMs?: number; waitMs?: number } = {}): Promise<T> {
    if (ended) throw stopping()
    const ms = opts.timeoutMs ?? timeoutMs
    const took = take(what, opts.waitMs)
    const slot = took instanceof Promise ? await took : took
    slot.since = performance.now()
    busy.add(slot)
    let timer: ReturnType<typeof setTimeout> | undefined
    let late: ReturnType<typeof setTimeout> | undefined
    try {
      return await new Promise<T>((resolve, reject) => {
        let expired = false
        f(slot.sql).then(resolve, (err) => reject(expired ? new DeadlineError(what, ms) : err))
        timer = setTimeout(() => {
          expired = true
          onDeadline?.(what, ms)
          replace(slot)
          // Destroying the client rejects its queries; should one never settle, the call still ends.
          late = setTimeout(() => reject(new DeadlineError(what, ms)), SETTLE_MS)
        }, ms)
      })
    } finally {
      clearTimeout(timer)
      clearTimeout(late)
      giveBack(slot)
    }
  }

  return {
    run,
    async probe(ms) {
      try {
        await run('readiness probe', (sql) => sql`select 1`, { waitMs: ms, timeoutMs: ms })
        return true
      } catch {
        return false
      }
    },
    state() {
      let oldest: number | null = null
      for (const s of busy) oldest = oldest === null ? s.since : Math.min(oldest, s.since)
      return { slots, busy: busy.size, oldestMs: oldest === null ? null : Math.round(performance.now() - oldest) }
    },
    async end({ timeout }) {
      ended = true
      for (const w of waiting.splice(0)) w.fail(stopping())
      await Promise.all([...all.map((s) => s.sql.end({ timeout })), ...abandoned])
    }
  }
}
