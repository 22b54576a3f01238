/**
 * The memory engine: the Engine for one process, with no network — what runs when there is no
 * Redis (contract §7), as Centrifugo's memory broker and Socket.IO's in-memory adapter do. The
 * same guarantees as the Redis engine within the process (engine.ts); nothing survives the
 * process, as nothing in Redis has to (PostgreSQL is the truth, and repairs).
 *
 * Bounded: a stream keeps at most maxLen + maxLen/10 entries (trimmed by the oldest, as Redis's
 * approximate MAXLEN does), and drops the entries every group of it has read and acknowledged
 * (in chunks of RELEASE_CHUNK: one array splice each), so what it holds is what its groups still
 * need — unlike Redis, which keeps maxLen of them for inspection, a process's heap is no place to
 * keep 100,000 delivered entries. A stream without groups keeps its maxLen. Its pending lists
 * only hold entries still in it; presence holds
 * live connections (expired ones are swept at least every PRESENCE_SWEEP_MS) and at most
 * `maxLastSeen` last-seen times (least recently seen forgotten first); a lease key at most
 * `limit` holders; schedules what the caller adds.
 */
import type { Logger } from '../log.ts'
import {
  GroupGoneError,
  LAST_SEEN_TTL_MS,
  type Engine,
  type GroupConsumer,
  type GroupLag,
  type Presence,
  type ScheduleClaim,
  type ScheduledMember,
  type StreamEntry
} from './engine.ts'

const PRESENCE_SWEEP_MS = 10_000
/** Entries every group is done with are dropped once this many have gathered. */
const RELEASE_CHUNK = 1024

interface Entry extends StreamEntry {
  /** Position in the stream since it was created: entries[n - first]. */
  readonly n: number
}
interface PendingEntry {
  n: number
  consumer: string
  deliveredAt: number
}
interface Group {
  /** Position of the last entry delivered to the group. */
  cursor: number
  pending: Map<string, PendingEntry>
  /** Each consumer and when it last read or claimed (Date.now()). */
  consumers: Map<string, number>
}
interface Stream {
  entries: Entry[]
  /** Position of entries[0]; equals `next` when empty. */
  first: number
  next: number
  groups: Map<string, Group>
  /** Blocked readers, woken by an append. */
  waiters: Set<() => void>
  lastMs: number
  lastSeq: number
}
interface Schedule {
  due: Map<string, number>
  /** A min-heap by (dueAt, member); items whose dueAt no longer matches `due` are stale and skipped. */
  heap: ScheduledMember[]
}

export interface MemoryEngineOptions {
  log?: Logger
  /** The clock of presence, schedules and leases (the process's; tests move it). */
  now?: () => number
  maxLastSeen?: number
}

export function createMemoryEngine(opts: MemoryEngineOptions = {}): Engine {
  const { log, now = Date.now, maxLastSeen = 200_000 } = opts
  const streams = new Map<string, Stream>()
  const channels = new Map<string, Set<(message: string) => void>>()
  const connections = new Map<string, Map<string, number>>()
  const lastSeen = new Map<string, number>()
  const schedules = new Map<string, Schedule>()
  const leases = new Map<string, Map<string, number>>()
  /** Wakes every blocked reader on close. */
  const blocked = new Set<() => void>()
  const createdGroups = new Set<string>()
  let closed = false
  let lastSweep = now()

  const open = () => {
    if (closed) throw new Error('the memory engine is closed')
  }

  function stream(name: string): Stream {
    let s = streams.get(name)
    if (!s) {
      s = { entries: [], first: 0, next: 0, groups: new Map(), waiters: new Set(), lastMs: 0, lastSeq: 0 }
      streams.set(name, s)
    }
    return s
  }

  function group(streamName: string, groupName: string): [Stream, Group] {
    const s = streams.get(streamName)
    const g = s?.groups.get(groupName)
    if (!s || !g) throw new GroupGoneError(streamName, groupName)
    return [s, g]
  }

  function nextId(s: Stream): string {
    const ms = Date.now()
    if (ms > s.lastMs) {
      s.lastMs = ms
      s.lastSeq = 0
    } else s.lastSeq++
    return `${s.lastMs}-${s.lastSeq}`
  }

  function trim(s: Stream, maxLen: number) {
    const excess = s.entries.length - maxLen
    // Trimming in steps, as Redis's `MAXLEN ~` does, keeps an append O(1) amortized.
    if (excess <= Math.max(1, Math.floor(maxLen / 10))) return
    s.entries.splice(0, excess)
    s.first += excess
    // Pending entries that were trimmed away can never be delivered (XAUTOCLAIM drops them too).
    for (const g of s.groups.values()) for (const [id, p] of g.pending) if (p.n < s.first) g.pending.delete(id)
  }

  /** Drops the entries no group needs any more: before every group's oldest pending entry and first unread one. */
  function release(s: Stream) {
    if (s.groups.size === 0) return
    let low = s.next
    for (const g of s.groups.values()) {
      // Pending entries are kept in delivery order, which is stream order: the first is the oldest.
      const oldest = g.pending.values().next().value
      low = Math.min(low, g.cursor + 1, oldest ? oldest.n : low)
    }
    const k = low - s.first
    if (k < RELEASE_CHUNK) return
    s.entries.splice(0, k)
    s.first = low
  }

  function take(s: Stream, g: Group, consumer: string, count: number): StreamEntry[] {
    const start = Math.max(g.cursor + 1, s.first)
    const end = Math.min(s.next, start + count)
    const out: StreamEntry[] = []
    const at = Date.now()
    for (let n = start; n < end; n++) {
      const e = s.entries[n - s.first]!
      g.pending.set(e.id, { n, consumer, deliveredAt: at })
      out.push(e)
    }
    touchConsumer(g, consumer, at, out.length > 0)
    if (end > start) g.cursor = end - 1
    return out
  }

  /** Resolves after `ms`, or when something is appended to `s`, `signal` aborts or the engine closes. */
  function wait(s: Stream, ms: number, signal?: AbortSignal): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer)
        s.waiters.delete(done)
        blocked.delete(done)
        signal?.removeEventListener('abort', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      s.waiters.add(done)
      blocked.add(done)
      signal?.addEventListener('abort', done, { once: true })
    })
  }

  const ageOf = (id: string) => Date.now() - Number(id.slice(0, id.indexOf('-')))

  /** A consumer read or claimed: as in Redis, it exists from the first entry it is handed. */
  function touchConsumer(g: Group, consumer: string, at: number, handed: boolean) {
    if (handed || g.consumers.has(consumer)) g.consumers.set(consumer, at)
  }

  /** How many pending entries each consumer of the group holds (only consumers holding some). */
  function pendingBy(g: Group): Map<string, number> {
    const out = new Map<string, number>()
    for (const p of g.pending.values()) out.set(p.consumer, (out.get(p.consumer) ?? 0) + 1)
    return out
  }

  // --- presence ---

  function seen(userId: string, at: number) {
    // Re-inserted, so the map's order is least recently seen first.
    lastSeen.delete(userId)
    lastSeen.set(userId, at)
    if (lastSeen.size > maxLastSeen) lastSeen.delete(lastSeen.keys().next().value!)
  }

  function live(userId: string, at: number): number {
    const conns = connections.get(userId)
    if (!conns) return 0
    for (const [id, expiry] of conns) if (expiry <= at) conns.delete(id)
    if (conns.size === 0) connections.delete(userId)
    return conns.size
  }

  function touch(userId: string, connId: string, ttlMs: number, at: number) {
    let conns = connections.get(userId)
    if (!conns) {
      conns = new Map()
      connections.set(userId, conns)
    }
    conns.set(connId, at + ttlMs)
    seen(userId, at)
    sweep(at)
  }

  function leave(userId: string, connId: string, at: number) {
    const conns = connections.get(userId)
    conns?.delete(connId)
    if (conns?.size === 0) connections.delete(userId)
    seen(userId, at)
  }

  function sweep(at: number) {
    if (at - lastSweep < PRESENCE_SWEEP_MS) return
    lastSweep = at
    for (const userId of connections.keys()) live(userId, at)
  }

  // --- schedules: a binary min-heap by (dueAt, member), the order of a Redis sorted set ---

  const before = (a: ScheduledMember, b: ScheduledMember) => a.dueAt < b.dueAt || (a.dueAt === b.dueAt && a.member < b.member)

  function heapPush(h: ScheduledMember[], item: ScheduledMember) {
    h.push(item)
    let i = h.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(h[i]!, h[parent]!)) break
      ;[h[i], h[parent]] = [h[parent]!, h[i]!]
      i = parent
    }
  }

  function heapPop(h: ScheduledMember[]): ScheduledMember | undefined {
    const top = h[0]
    const last = h.pop()
    if (h.length > 0 && last) {
      h[0] = last
      let i = 0
      for (;;) {
        const l = 2 * i + 1,
          r = l + 1
        let m = i
        if (l < h.length && before(h[l]!, h[m]!)) m = l
        if (r < h.length && before(h[r]!, h[m]!)) m = r
        if (m === i) break
        ;[h[i], h[m]] = [h[m]!, h[i]!]
        i = m
      }
    }
    return top
  }

  function schedule(key: string): Schedule {
    let s = schedules.get(key)
    if (!s) {
      s = { due: new Map(), heap: [] }
      schedules.set(key, s)
    }
    return s
  }

  function setDue(s: Schedule, member: string, dueAt: number) {
    s.due.set(member, dueAt)
    heapPush(s.heap, { member, dueAt })
    // Stale items outnumber live ones: rebuild, so the heap stays bounded by the schedule.
    if (s.heap.length > 2 * s.due.size + 64) {
      s.heap = []
      for (const [m, d] of s.due) heapPush(s.heap, { member: m, dueAt: d })
    }
  }

  function holders(key: string, at: number): Map<string, number> | undefined {
    const h = leases.get(key)
    if (!h) return undefined
    for (const [holder, until] of h) if (until <= at) h.delete(holder)
    if (h.size === 0) leases.delete(key)
    return h
  }

  return {
    kind: 'memory',
    get isReady() {
      return !closed
    },
    onReady: () => () => {},
    async ping() {
      open()
    },

    async append(name, entries, { maxLen }) {
      if (closed || entries.length === 0) return 0
      const s = stream(name)
      for (const message of entries) s.entries.push({ n: s.next++, id: nextId(s), message })
      trim(s, maxLen)
      release(s)
      for (const wake of s.waiters) wake()
      return entries.length
    },

    async ensureGroup(name, groupName, opts) {
      open()
      const s = stream(name)
      if (s.groups.has(groupName)) return { created: false }
      const key = `${name}\u0000${groupName}`
      const from = createdGroups.has(key) ? '0' : (opts?.from ?? '$')
      createdGroups.add(key)
      s.groups.set(groupName, { cursor: from === '$' ? s.next - 1 : s.first - 1, pending: new Map(), consumers: new Map() })
      return { created: true, from }
    },

    async readGroup(name, groupName, consumer, { count, blockMs, signal }) {
      open()
      const deadline = Date.now() + blockMs
      for (;;) {
        const [s, g] = group(name, groupName)
        const got = take(s, g, consumer, count)
        const left = deadline - Date.now()
        if (got.length > 0 || left <= 0 || closed || signal?.aborted) return got
        await wait(s, left, signal)
      }
    },

    async claimIdle(name, groupName, consumer, { idleMs, count }) {
      open()
      const [s, g] = group(name, groupName)
      const at = Date.now()
      const out: StreamEntry[] = []
      for (const p of g.pending.values()) {
        if (out.length >= count) break
        if (at - p.deliveredAt < idleMs) continue
        p.consumer = consumer
        p.deliveredAt = at
        out.push(s.entries[p.n - s.first]!)
      }
      touchConsumer(g, consumer, at, out.length > 0)
      return out
    },

    async publishAndAck(name, groupName, ids, channel, message) {
      open()
      if (message !== null) dispatch(channel, message)
      const s = streams.get(name)
      const g = s?.groups.get(groupName)
      let acked = 0
      if (g) for (const id of ids) if (g.pending.delete(id)) acked++
      if (acked > 0) release(s!)
      return acked
    },

    async groupLag(name, groupName): Promise<GroupLag> {
      open()
      const s = streams.get(name)
      const g = s?.groups.get(groupName)
      if (!s || !g) return { pending: 0, oldestMs: null, unread: 0, unreadAgeMs: null }
      let oldest: number | null = null
      for (const p of g.pending.values()) if (oldest === null || p.n < oldest) oldest = p.n
      const firstUnread = Math.max(g.cursor + 1, s.first)
      return {
        pending: g.pending.size,
        oldestMs: oldest === null ? null : ageOf(s.entries[oldest - s.first]!.id),
        unread: s.next - firstUnread,
        unreadAgeMs: firstUnread < s.next ? ageOf(s.entries[firstUnread - s.first]!.id) : null
      }
    },

    async groupConsumers(name, groupName): Promise<GroupConsumer[]> {
      open()
      const g = streams.get(name)?.groups.get(groupName)
      if (!g) return []
      const pending = pendingBy(g)
      const at = Date.now()
      return [...g.consumers].map(([c, seen]) => ({ name: c, pending: pending.get(c) ?? 0, idleMs: at - seen }))
    },

    async deleteConsumer(name, groupName, consumer) {
      open()
      const g = streams.get(name)?.groups.get(groupName)
      if (!g) return true
      if (pendingBy(g).has(consumer)) return false
      g.consumers.delete(consumer)
      return true
    },

    async deleteIdleConsumers(name, groupName, idleMs) {
      open()
      const [, g] = group(name, groupName)
      const pending = pendingBy(g)
      const at = Date.now()
      const removed: string[] = []
      for (const [c, seen] of g.consumers) {
        if (pending.has(c) || at - seen <= idleMs) continue
        g.consumers.delete(c)
        removed.push(c)
      }
      return removed
    },

    async streamRange(name, count) {
      open()
      return (streams.get(name)?.entries ?? []).slice(0, count)
    },

    async publish(channel, message) {
      open()
      dispatch(channel, message)
    },

    subscribe(channel, handler) {
      let handlers = channels.get(channel)
      if (!handlers) {
        handlers = new Set()
        channels.set(channel, handlers)
      }
      handlers.add(handler)
      return () => {
        const hs = channels.get(channel)
        hs?.delete(handler)
        if (hs?.size === 0) channels.delete(channel)
      }
    },

    async presenceTouch(userId, connId, ttlMs) {
      open()
      touch(userId, connId, ttlMs, now())
    },

    async presenceLeave(userId, connId) {
      open()
      leave(userId, connId, now())
    },

    async presenceTouchMany(entries, ttlMs) {
      open()
      const at = now()
      for (const e of entries) touch(e.userId, e.connId, ttlMs, at)
    },

    async presenceLeaveMany(entries) {
      open()
      const at = now()
      for (const e of entries) leave(e.userId, e.connId, at)
    },

    async presenceGet(userIds) {
      open()
      const at = now()
      const out = new Map<string, Presence>()
      for (const userId of userIds) {
        let seenAt = lastSeen.get(userId) ?? null
        if (seenAt !== null && at - seenAt >= LAST_SEEN_TTL_MS) {
          lastSeen.delete(userId)
          seenAt = null
        }
        out.set(userId, { connections: live(userId, at), lastSeenAt: seenAt })
      }
      return out
    },

    async scheduleAdd(key, items, opts) {
      open()
      if (items.length === 0) return
      const s = schedule(key)
      for (const { member, dueAt } of items) if (!opts?.onlyNew || !s.due.has(member)) setDue(s, member, dueAt)
    },

    async scheduleClaim(key, { leaseMs, count }) {
      open()
      const at = now()
      const s = schedules.get(key)
      if (!s) return []
      const out: ScheduleClaim[] = []
      const until = at + leaseMs
      const taken = new Set<string>()
      while (out.length < count && s.heap.length > 0) {
        const top = s.heap[0]!
        if (s.due.get(top.member) !== top.dueAt || taken.has(top.member)) {
          heapPop(s.heap)
          continue
        }
        if (top.dueAt > at) break
        heapPop(s.heap)
        taken.add(top.member)
        out.push({ member: top.member, dueAt: top.dueAt, until })
      }
      for (const { member } of out) setDue(s, member, until)
      return out
    },

    async scheduleRemove(key, claims) {
      open()
      const s = schedules.get(key)
      if (!s) return 0
      let removed = 0
      // Only while the member is as its claim left it (engine.ts); its heap entry goes stale and is skipped.
      for (const c of claims) if (s.due.get(c.member) === c.until && s.due.delete(c.member)) removed++
      if (s.due.size === 0) schedules.delete(key)
      return removed
    },

    async scheduleSize(key) {
      open()
      return schedules.get(key)?.due.size ?? 0
    },

    async scheduleRange(key, limit) {
      open()
      const s = schedules.get(key)
      if (!s) return []
      return [...s.due]
        .map(([member, dueAt]) => ({ member, dueAt }))
        .sort((a, b) => (before(a, b) ? -1 : before(b, a) ? 1 : 0))
        .slice(0, limit)
    },

    async leaseAcquire(key, holder, { limit, leaseMs }) {
      open()
      const at = now()
      const h = holders(key, at) ?? new Map<string, number>()
      if (!h.has(holder) && h.size >= limit) return false
      h.set(holder, at + leaseMs)
      leases.set(key, h)
      return true
    },

    async leaseRelease(key, holder) {
      open()
      const h = leases.get(key)
      h?.delete(holder)
      if (h?.size === 0) leases.delete(key)
    },

    async leaseCount(key) {
      open()
      return holders(key, now())?.size ?? 0
    },

    async close() {
      if (closed) return
      closed = true
      for (const wake of blocked) wake()
      channels.clear()
    }
  }

  // Never inside publish: handlers run on a microtask, as a Redis message would arrive later.
  function dispatch(channel: string, message: string) {
    const handlers = channels.get(channel)
    if (!handlers || handlers.size === 0) return
    queueMicrotask(() => {
      for (const handler of handlers) {
        try {
          handler(message)
        } catch (err) {
          log?.warn({ component: 'engine', channel, err: (err as Error).message }, 'a subscriber of the channel failed on a message')
        }
      }
    })
  }
}
