/**
 * Presence (contract §8): which users have a socket open, on any process, that cannot stay
 * "online" after its process died. Each socket counts for a user by a per-connection entry in the
 * engine's presence facet that lives `ttlMs` unless touched again:
 *
 *   - a socket counts for user X while it is subscribed to `user:X` (from the subscribe until it
 *     unsubscribes or closes), and for the user its token names (`sub`, when that is a userId)
 *     from the moment its token checked out until it closes;
 *   - this process touches every entry it holds every ttlMs/3, in one batched engine call per
 *     tick (not one per socket); a socket's first entry and its last leave go out at once,
 *     batched with whatever else came meanwhile (one call in flight at a time);
 *   - a process killed outright touches nothing more: its entries expire within ttlMs, so its
 *     users are offline by then. A process that stops cleanly removes its entries.
 *
 * The engine failing (Redis down) fails nothing here: the writes are counted, logged once per
 * outage, and the next tick after the engine is back touches everything again.
 */
import type { Engine } from '../engine/engine.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { createLoop } from '../loop.ts'

/** Entries per engine call: beyond this, a tick is several calls (bounds one script's run in Redis). */
const MAX_PER_CALL = 10_000

interface Entry {
  userId: string
  connId: string
}

export function createPresence({ engine, ttlMs, log, metrics }: { engine: Engine; ttlMs: number; log: Logger; metrics: Metrics }) {
  /** (user NUL connection) → how many reasons the connection counts for the user (sub, subscription). */
  const refs = new Map<string, number>()
  let joins = new Map<string, Entry>()
  let leaves = new Map<string, Entry>()
  let writing: Promise<void> | null = null
  let failing = false

  const key = (userId: string, connId: string) => `${userId}\u0000${connId}`
  const entry = (k: string): Entry => {
    const i = k.indexOf('\u0000')
    return { userId: k.slice(0, i), connId: k.slice(i + 1) }
  }

  async function call(kind: 'touch' | 'leave', entries: Entry[]) {
    for (let i = 0; i < entries.length; i += MAX_PER_CALL) {
      const part = entries.slice(i, i + MAX_PER_CALL)
      try {
        if (!engine.isReady) throw new Error('the engine is not ready')
        await (kind === 'touch' ? engine.presenceTouchMany(part, ttlMs) : engine.presenceLeaveMany(part))
        if (failing) log.info({ component: 'presence' }, 'presence writes go through again')
        failing = false
      } catch (err) {
        metrics.presenceFailures.inc({ kind }, part.length)
        if (!failing) log.warn({ component: 'presence', err: (err as Error).message }, 'presence writes fail; users may show offline until the engine answers')
        failing = true
      }
    }
  }

  // One write in flight; what comes meanwhile goes out together right after it.
  function kick() {
    if (writing || (joins.size === 0 && leaves.size === 0)) return
    const j = [...joins.values()],
      l = [...leaves.values()]
    joins = new Map()
    leaves = new Map()
    writing = (async () => {
      if (j.length > 0) await call('touch', j)
      if (l.length > 0) await call('leave', l)
    })().finally(() => {
      writing = null
      kick()
    })
  }

  // In the same line as joins and leaves: a leave queued meanwhile goes out after the touch, never before it.
  async function heartbeat() {
    while (writing) await writing
    if (refs.size === 0) return
    writing = call('touch', [...refs.keys()].map(entry)).finally(() => {
      writing = null
      kick()
    })
    await writing
  }

  const loop = createLoop(heartbeat, { delay: () => Math.max(1, Math.floor(ttlMs / 3)), busy: undefined })
  let offReady: (() => void) | null = null

  return {
    join(userId: string, connId: string) {
      const k = key(userId, connId)
      const n = refs.get(k) ?? 0
      refs.set(k, n + 1)
      if (n > 0) return
      metrics.presenceConnections.set(refs.size)
      leaves.delete(k)
      joins.set(k, { userId, connId })
      kick()
    },
    leave(userId: string, connId: string) {
      const k = key(userId, connId)
      const n = refs.get(k)
      if (n === undefined) return
      if (n > 1) return void refs.set(k, n - 1)
      refs.delete(k)
      metrics.presenceConnections.set(refs.size)
      joins.delete(k)
      leaves.set(k, { userId, connId })
      kick()
    },
    /** Entries this process holds (tests, metrics). */
    size: () => refs.size,
    heartbeat: loop.runOnce,
    start() {
      loop.start()
      // Back after an outage: touch everything now rather than at the next tick.
      offReady = engine.onReady(() => void loop.runOnce())
    },
    /** Ends the heartbeat and removes this process's entries: its users go offline now, not after the TTL. */
    async stop() {
      offReady?.()
      await loop.stop()
      while (writing) await writing
      const all = [...refs.keys()].map(entry)
      refs.clear()
      metrics.presenceConnections.set(0)
      if (all.length > 0) await call('leave', all)
    }
  }
}

export type PresenceTracker = ReturnType<typeof createPresence>
