/**
 * The delivery engine: everything parcelcast asks of Redis, behind one interface with two
 * implementations — `engine-redis.ts` (several processes share one Redis) and `engine-memory.ts`
 * (one process, no network). PostgreSQL stays the truth either way: an engine may lose what it
 * holds (Redis restarted empty, the process died), and the callers repair from PostgreSQL (the
 * outbox relay, the sequencer's gap fills and reconcile, issue 19's schedule rebuild).
 *
 * Names are unprefixed (`tracking:events`); the engine applies its key prefix (REDIS_PREFIX).
 * Every method but `append`, `subscribe` and `close` may reject when the engine cannot answer
 * (Redis down or not answering within its command timeout); none waits for a reconnect.
 *
 * Guarantees both implementations keep (test/unit/engine-contract.test.ts runs the same cases
 * against both):
 *
 *  - Streams: entries of one stream get strictly increasing ids, in append order; `append` is
 *    atomic per call in the order given (what it reports appended is a prefix of the input,
 *    all of it unless the engine failed). A consumer group hands each entry to one consumer
 *    (`readGroup`), keeps it pending, owned by that consumer, until acknowledged, and lets
 *    another consumer take over entries pending longer than `idleMs` (`claimIdle`). Length is
 *    bounded by `maxLen` (approximately: a little more may be kept for a while).
 *  - `publishAndAck`: the message is handed to every subscriber of the channel (every process,
 *    for Redis) BEFORE the ids are acknowledged, atomically: an entry is never acknowledged
 *    without its publish having happened.
 *  - Pub/sub: at most once; a subscriber that is disconnected meanwhile misses messages (the
 *    sequencer repairs gaps from PostgreSQL). Handlers never run inside `publish`.
 *  - Presence, schedules and leases: each operation is atomic (one Lua script in Redis); their
 *    times are the engine's clock, in epoch milliseconds: Redis's own (TIME, read inside each
 *    script) for the Redis engine, so that leases and claims stay exclusive and presence expires
 *    when it should whatever the processes' clocks say; the process's for the memory engine.
 *  - Everything is bounded: streams by maxLen, pending lists by the stream, presence by TTLs,
 *    schedules by what the caller adds (issue 19: bounded by PostgreSQL's rows), leases by limit.
 */

export type EngineKind = 'redis' | 'memory'

/** A stream entry: its id (`<ms>-<n>`, increasing per stream) and its fields. Read-only: engines hand out what they hold. */
export interface StreamEntry {
  readonly id: string
  readonly message: Readonly<Record<string, string>>
}

/**
 * How far behind a consumer group is: entries delivered but not acknowledged (`pending`, and the
 * age of the oldest by its id's time), and entries not read yet (`unread`, and the age of the first).
 */
export interface GroupLag {
  pending: number
  oldestMs: number | null
  unread: number
  unreadAgeMs: number | null
}

export interface Presence {
  /** Live connections: those whose last touch has not expired. */
  connections: number
  /** The last touch or leave of any of the user's connections (epoch ms), null when never seen or forgotten. */
  lastSeenAt: number | null
}

/** One connection of one user. */
export interface PresenceEntry {
  userId: string
  connId: string
}

/** A consumer of a group: its pending entries, and how long since it last read or claimed. */
export interface GroupConsumer {
  name: string
  pending: number
  idleMs: number
}

export interface ScheduledMember {
  member: string
  /** Epoch ms. */
  dueAt: number
}

/** A member as a claim took it (`scheduleClaim`). */
export interface ScheduleClaim extends ScheduledMember {
  /**
   * The claim's lease end, epoch ms on the engine's clock: the member's due time while this claim
   * holds it. Each claim of a member ends later than the one before, so it is the claim's fence
   * (`scheduleRemove`).
   */
  until: number
}

/** The stream or its consumer group does not exist (Redis restarted empty): call `ensureGroup` again. */
export class GroupGoneError extends Error {
  readonly code = 'group_gone'
  constructor(stream: string, group: string, cause?: unknown) {
    super(`the stream ${stream} or its consumer group ${group} is gone; create it again`, { cause })
    this.name = 'GroupGoneError'
  }
}

/** How long a user's lastSeenAt is kept after its last touch or leave. */
export const LAST_SEEN_TTL_MS = 30 * 24 * 3600_000

export interface Engine {
  readonly kind: EngineKind
  /** Whether commands can be sent now (memory: always). */
  readonly isReady: boolean
  /**
   * `listener` runs every time the engine becomes ready again after it was not (Redis
   * reconnected); not for the state at registration (read `isReady`). Returns the unregister.
   */
  onReady(listener: () => void): () => void
  /** Resolves when the engine answers (readiness checks); rejects when it does not. */
  ping(): Promise<void>

  // --- streams and consumer groups ---

  /**
   * Appends `entries` to `stream` in order, in one round trip, trimming it to about `maxLen`.
   * Resolves with how many were appended (a prefix of `entries`); never rejects: a failure is
   * logged once per outage and reported as 0. An append that timed out may still land later
   * (Redis answered late): reported 0, appended once more by the outbox relay, dropped by seq by
   * the consumers. Entries must not be changed afterwards.
   */
  append(stream: string, entries: readonly Record<string, string>[], opts: { maxLen: number }): Promise<number>
  /**
   * Creates the group (and the stream) if missing. The first creation by this engine reads from
   * `opts.from`: by default the end of the stream (`$`: what was there before is not this
   * deployment's — a fan-out group), `0` for a work queue, whose entries must each be worked
   * whenever the group was made. A re-creation after the stream vanished reads from its start
   * (`0`: every entry is new). Make a `$` group before anything of this deployment appends
   * (service.start() does, for the fan-out): an entry appended before it is skipped by it.
   */
  ensureGroup(stream: string, group: string, opts?: { from?: '$' | '0' }): Promise<{ created: true; from: '$' | '0' } | { created: false }>
  /**
   * Up to `count` entries never delivered to the group, now pending with `consumer`. With
   * `blockMs` > 0 and nothing to read, waits until something is appended, `blockMs` passes,
   * `signal` aborts or the engine closes (then resolves with what there is, maybe nothing).
   * Each blocking reader gets its own connection in Redis. Rejects with GroupGoneError when the
   * group or the stream does not exist.
   */
  readGroup(stream: string, group: string, consumer: string, opts: { count: number; blockMs: number; signal?: AbortSignal }): Promise<StreamEntry[]>
  /**
   * Up to `count` entries pending longer than `idleMs` (with any consumer), now owned by
   * `consumer` (XAUTOCLAIM). Entries trimmed away meanwhile are dropped from the pending list.
   * Call again while a full page comes back: each call goes on where the previous one stopped.
   */
  claimIdle(stream: string, group: string, consumer: string, opts: { idleMs: number; count: number }): Promise<StreamEntry[]>
  /** Publishes `message` (unless null) on `channel`, then acknowledges `ids`, atomically. Resolves with how many ids were pending. */
  publishAndAck(stream: string, group: string, ids: readonly string[], channel: string, message: string | null): Promise<number>
  groupLag(stream: string, group: string): Promise<GroupLag>
  /** The group's consumers (one exists from the first entry a read or claim hands it, until deleted); [] when the group does not exist. */
  groupConsumers(stream: string, group: string): Promise<GroupConsumer[]>
  /**
   * Deletes `consumer` from the group unless it holds pending entries (a clean stop: then they
   * stay, with it, for another consumer to claim). Resolves true when it is gone (or never was).
   */
  deleteConsumer(stream: string, group: string, consumer: string): Promise<boolean>
  /**
   * Deletes the group's consumers that hold no pending entries and have not read or claimed for
   * longer than `idleMs` (left by processes that died); resolves with their names. A live
   * consumer deleted this way is made again by its next read. Rejects with GroupGoneError when
   * the group or the stream does not exist.
   */
  deleteIdleConsumers(stream: string, group: string, idleMs: number): Promise<string[]>
  /** The first `count` entries of the stream, oldest first (inspection and tests). */
  streamRange(stream: string, count: number): Promise<StreamEntry[]>

  // --- pub/sub ---

  publish(channel: string, message: string): Promise<void>
  /**
   * Calls `handler` with every message published on `channel` from now on (Redis: by any
   * process, re-subscribing by itself after reconnects). Returns the unsubscribe.
   */
  subscribe(channel: string, handler: (message: string) => void): () => void

  // --- presence (per-connection entries with a TTL) ---

  /** The connection is present until now + ttlMs; the user's lastSeenAt becomes now. Call it on connect and every ttl/3. */
  presenceTouch(userId: string, connId: string, ttlMs: number): Promise<void>
  /** The connection is gone; the user's lastSeenAt becomes now. */
  presenceLeave(userId: string, connId: string): Promise<void>
  /** `presenceTouch` for many connections in one call (one round trip, atomic): a process's heartbeat tick. */
  presenceTouchMany(entries: readonly PresenceEntry[], ttlMs: number): Promise<void>
  /** `presenceLeave` for many connections in one call (one round trip, atomic). */
  presenceLeaveMany(entries: readonly PresenceEntry[]): Promise<void>
  /** Every user asked for (up to 1,000, one round trip), with only unexpired connections counted. */
  presenceGet(userIds: readonly string[]): Promise<Map<string, Presence>>

  // --- schedules (a sorted set of members by due time) ---

  /**
   * Adds members, or moves existing ones to the new due time. With `onlyNew`, members already in
   * the schedule keep theirs (ZADD NX): a rebuild from PostgreSQL never shortens a claim's lease.
   */
  scheduleAdd(key: string, items: readonly ScheduledMember[], opts?: { onlyNew?: boolean }): Promise<void>
  /**
   * Atomically takes up to `count` members due now (dueAt <= now, earliest first), moves each to
   * now + leaseMs, and returns them with the due time they had and that lease end (`until`). Two claimers never get one member
   * for one lease; a claimer that dies leaves it due again when the lease ends. "Now" is the
   * engine's clock (Redis's with the Redis engine): `opts.now`, the caller's clock, is accepted
   * for compatibility and not used — a caller whose clock ran ahead would take members another
   * process holds.
   */
  scheduleClaim(key: string, opts: { now?: number; leaseMs: number; count: number }): Promise<ScheduleClaim[]>
  /**
   * Removes each claimed member whose due time is still its claim's lease end (`until`), in one
   * atomic step; a member re-added (scheduleAdd) or claimed again since — by this process or
   * another, after the claim ran out — keeps its entry. Resolves with how many were removed.
   */
  scheduleRemove(key: string, claims: readonly Pick<ScheduleClaim, 'member' | 'until'>[]): Promise<number>
  scheduleSize(key: string): Promise<number>
  /** The first `limit` members, earliest first (ties by member). */
  scheduleRange(key: string, limit: number): Promise<ScheduledMember[]>

  // --- leases (at most `limit` live holders per key, across processes) ---

  /**
   * Takes one of `limit` slots of `key` for `holder` until now + leaseMs, if fewer than `limit`
   * unexpired leases are held by others; a holder that already has one renews it. Atomic.
   * A release removes the holder's lease only, so a caller that may outlive its lease gives every
   * acquisition a holder of its own (the webhook sender: one per schedule claim): its late release
   * then frees nothing that was taken since.
   */
  leaseAcquire(key: string, holder: string, opts: { limit: number; leaseMs: number }): Promise<boolean>
  leaseRelease(key: string, holder: string): Promise<void>
  /** Unexpired leases of `key`. */
  leaseCount(key: string): Promise<number>

  /** Ends blocking reads, subscriptions and connections. Idempotent. */
  close(): Promise<void>
}
