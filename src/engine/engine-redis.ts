/**
 * The Redis engine: streams with consumer groups, pub/sub across processes, presence, schedules
 * and leases in one Redis shared by every parcelcast process. Redis is the disposable delivery
 * layer, so it never makes a caller wait for it:
 *
 *  - no offline queue: a command while disconnected fails at once (`append` reports 0);
 *  - every command is given up after `commandTimeoutMs` (PUBLISH_TIMEOUT_MS), also when Redis
 *    keeps the connection open and does not answer (node-redis's own timeout stops counting
 *    once a command is written). The engine then counts as not ready, so that nothing more piles
 *    up behind the silent connection, until a PING is answered again — and when PINGs go
 *    unanswered on it twice running, the connection is dropped for a new one: a connection that
 *    went silent for good (a partition, a dead NAT entry: no RST) would otherwise hold the engine
 *    down until the kernel gave up on it, some 15 minutes later;
 *  - the subscriber connection is PINGed every `probeMs` (node-redis's pingInterval: nothing is
 *    added to commands) and dropped for a new one, which subscribes again, when three go
 *    unanswered;
 *  - endless background reconnects with capped backoff; `onReady` listeners run on each return.
 *
 * Presence, schedules and leases read "now" from Redis's own clock (TIME, inside each script),
 * never from the process: two processes whose clocks disagree still never both hold a limit-1
 * lease, claim one schedule member for one lease, or see each other's connections expire early.
 *
 * Connections: one for commands, one per blocking reader (XREADGROUP BLOCK holds its connection;
 * made on the first read, per stream and consumer), one for subscriptions (made on the first
 * subscribe, re-subscribing by itself after reconnects). Lua scripts are files beside this one,
 * sent with EVAL (Redis caches them either way, and a Redis that restarted empty needs no
 * NOSCRIPT dance).
 */
import { createClient, type RedisClientType } from 'redis'
import type { Logger } from '../log.ts'
import {
  GroupGoneError,
  LAST_SEEN_TTL_MS,
  type Engine,
  type GroupConsumer,
  type GroupLag,
  type Presence,
  type ScheduleClaim,
  type StreamEntry
} from './engine.ts'

type Client = RedisClientType<any, any, any, any, any>

const lua = (name: string) => Bun.file(new URL(`./${name}.lua`, import.meta.url)).text()
// One script call per batch: a pipeline of XADDs costs node-redis about 3× more CPU per entry.
const STREAM_APPEND = await lua('stream-append')
const PUBLISH_ACK = await lua('publish-ack')
const GROUP_CREATE = await lua('group-create')
const PRESENCE_TOUCH = await lua('presence-touch')
const PRESENCE_LEAVE = await lua('presence-leave')
const PRESENCE_GET = await lua('presence-get')
const PRESENCE_TOUCH_MANY = await lua('presence-touch-many')
const PRESENCE_LEAVE_MANY = await lua('presence-leave-many')
const SCHEDULE_CLAIM = await lua('schedule-claim')
const SCHEDULE_REMOVE = await lua('schedule-remove')
const LEASE_ACQUIRE = await lua('lease-acquire')
const LEASE_COUNT = await lua('lease-count')
const CONSUMER_DELETE = await lua('consumer-delete')
const CONSUMERS_PRUNE = await lua('consumers-prune')

/** How often a silent Redis is asked whether it answers again. */
const STALL_PROBE_MS = 250
/** Unanswered PINGs in a row after which the command connection is dropped for a new one. */
const SILENT_PROBES = 2
/** Probes in a row that find the command connection still not ready (a handshake nobody answers) before it is made again. */
const OFFLINE_PROBES = 40
/** Unanswered PINGs after which the subscriber connection is dropped for a new one. */
const SUBSCRIBER_SILENT_PINGS = 3

export interface RedisEngineOptions {
  url: string
  /** Put before every key and channel name (REDIS_PREFIX). */
  prefix: string
  log: Logger
  /** PUBLISH_TIMEOUT_MS: the longest any command may take (a blocking read: its block time more). */
  commandTimeoutMs: number
}

export function createRedisEngine(opts: RedisEngineOptions): Engine {
  const { url, prefix, log, commandTimeoutMs } = opts
  const k = (name: string) => prefix + name
  const readyListeners = new Set<() => void>()
  const blockers = new Map<string, Client>()
  const createdGroups = new Set<string>()
  /** Where each claimer's next XAUTOCLAIM goes on (stream, group, consumer → cursor). */
  const claimCursors = new Map<string, string>()
  let subscriber: Client | null = null
  let closed = false
  let stalled = false
  let appendFailing = false
  /** How often the subscriber is PINGed (and a silent one looked for). */
  const probeMs = Math.max(STALL_PROBE_MS, Math.min(commandTimeoutMs, 5000))
  let subscriberHeardAt = 0
  let watchdog: ReturnType<typeof setInterval> | null = null

  // Whether Redis was said to be down, per role: kept across the connections a role goes through.
  const commandsDown = { down: false }
  let main = commandConnection()

  function commandConnection(): Client {
    const c = connect('commands', commandsDown, true)
    c.on('ready', () => {
      // A stalled engine is declared ready by the probe, once a PING is answered on this connection.
      if (c !== main || stalled || closed) return
      for (const listener of readyListeners) listener()
    })
    return c
  }

  function connect(role: string, said: { down: boolean }, loud: boolean, extra: { pingInterval?: number } = {}): Client {
    const client = createClient({
      url,
      disableOfflineQueue: true,
      commandOptions: { timeout: commandTimeoutMs },
      socket: { connectTimeout: 2000, reconnectStrategy: (retries: number) => Math.min(100 * 2 ** Math.min(retries, 5), 2000) },
      ...extra
    }) as unknown as Client
    client.on('error', (err: Error) => {
      if (!said.down && loud)
        log.warn({ component: 'engine', engine: 'redis', role, err: err.message }, 'redis unavailable; events stay in the outbox until it is back')
      said.down = true
    })
    client.on('ready', () => {
      if (said.down && loud) log.info({ component: 'engine', engine: 'redis', role }, 'redis is back')
      said.down = false
    })
    // Not awaited: the service starts and ingests with Redis down.
    client.connect().catch(() => {})
    return client
  }

  /** `p`, or a rejection once `ms` have passed; a command that outlives it marks Redis as silent. */
  function timed<T>(p: Promise<T>, ms = commandTimeoutMs): Promise<T> {
    let timer: ReturnType<typeof setTimeout> | undefined
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        stall()
        reject(new Error(`redis did not answer within ${ms} ms`))
      }, ms)
    })
    return Promise.race([p, expired]).finally(() => clearTimeout(timer))
  }

  // Redis holds the connection open but does not answer (paused, partitioned): stop sending
  // until a PING is answered. A PING queues behind what the connection already waits for, so
  // one that goes unanswered twice running means the connection itself may be dead without
  // knowing it: it is dropped, and a new one made (which, if Redis is only paused, waits too).
  function stall() {
    if (stalled || closed) return
    stalled = true
    log.warn({ component: 'engine', engine: 'redis', timeoutMs: commandTimeoutMs }, 'redis does not answer; treating it as down until it does')
    let silent = 0
    let offline = 0
    const probe = async () => {
      if (!stalled || closed) return
      const c = main
      const answer = c.isReady
        ? await Promise.race([
            c.ping().then(
              () => 'ok' as const,
              () => 'error' as const
            ),
            Bun.sleep(commandTimeoutMs).then(() => 'silent' as const)
          ])
        : ('offline' as const)
      if (!stalled || closed) return
      if (answer === 'ok' && c === main) {
        stalled = false
        log.info({ component: 'engine', engine: 'redis' }, 'redis answers again')
        for (const listener of readyListeners) listener()
        return
      }
      silent = answer === 'silent' ? silent + 1 : 0
      offline = answer === 'offline' ? offline + 1 : 0
      if (silent >= SILENT_PROBES || offline >= OFFLINE_PROBES) {
        silent = offline = 0
        log.warn({ component: 'engine', engine: 'redis', role: 'commands' }, 'the connection to redis stays silent; dropping it for a new one')
        main = commandConnection()
        c.destroy()
      }
      setTimeout(probe, STALL_PROBE_MS).unref?.()
    }
    setTimeout(probe, STALL_PROBE_MS).unref?.()
  }

  const ready = () => !closed && !stalled && main.isReady

  const groupGone = (err: unknown, stream: string, group: string) =>
    String((err as Error)?.message).includes('NOGROUP') ? new GroupGoneError(stream, group, err) : err

  /** The connection of one blocking reader; waits for it to connect at most `ms`. */
  async function blocker(key: string, ms: number): Promise<Client | null> {
    let c = blockers.get(key)
    if (!c) {
      c = connect(`reader ${key.replace('\u0000', ' ')}`, { down: false }, false)
      blockers.set(key, c)
    }
    if (c.isReady) return c
    const client = c
    await new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer)
        client.off('ready', done)
        resolve()
      }
      const timer = setTimeout(done, ms)
      client.on('ready', done)
    })
    return client.isReady ? client : null
  }

  // Pub/sub: per channel its handlers and the subscriber connection it is subscribed on (or being
  // subscribed on). A subscribe that fails (Redis down) is tried again on the connection's next
  // 'ready'; after that node-redis re-subscribes by itself on every reconnect. A new subscriber
  // connection (the old one went silent) subscribes every channel again.
  const channels = new Map<string, { handlers: Set<(message: string) => void>; on: Client | null }>()
  const subscriberDown = { down: false }

  function subscriberConnection(): Client {
    const c = connect('subscriber', subscriberDown, false, { pingInterval: probeMs })
    c.on('ready', () => {
      if (c !== subscriber) return
      subscriberHeardAt = Date.now()
      for (const name of channels.keys()) subscriptions.ensure(name)
    })
    c.on('ping-interval', () => {
      if (c === subscriber) subscriberHeardAt = Date.now()
    })
    return c
  }

  // Once per probeMs, not per message: a subscriber whose PINGs go unanswered is made again.
  function watchSubscriber() {
    if (closed || !subscriber?.isReady || Date.now() - subscriberHeardAt <= SUBSCRIBER_SILENT_PINGS * probeMs) return
    log.warn({ component: 'engine', engine: 'redis', role: 'subscriber' }, 'the subscriber connection to redis stays silent; dropping it for a new one')
    const old = subscriber
    subscriber = subscriberConnection()
    old.destroy()
  }

  const subscriptions = {
    add(channel: string, handler: (message: string) => void): () => void {
      let c = channels.get(channel)
      if (!c) {
        c = { handlers: new Set(), on: null }
        channels.set(channel, c)
      }
      c.handlers.add(handler)
      if (!subscriber) {
        subscriber = subscriberConnection()
        watchdog = setInterval(watchSubscriber, probeMs)
        watchdog.unref?.()
      }
      subscriptions.ensure(channel)
      return () => {
        const current = channels.get(channel)
        if (!current?.handlers.delete(handler) || current.handlers.size > 0) return
        channels.delete(channel)
        if (current.on !== null && current.on === subscriber && subscriber.isReady) subscriber.unsubscribe(k(channel)).catch(() => {})
      }
    },
    ensure(channel: string) {
      const c = channels.get(channel)
      const client = subscriber
      if (!c || closed || !client?.isReady || c.on === client) return
      c.on = client
      client
        .subscribe(k(channel), (message: string) => {
          for (const handler of channels.get(channel)?.handlers ?? []) {
            try {
              handler(message)
            } catch (err) {
              log.warn({ component: 'engine', channel, err: (err as Error).message }, 'a subscriber of the channel failed on a message')
            }
          }
        })
        .then(
          () => {
            // Everyone left while the subscribe was on its way.
            if (channels.get(channel) !== c) client.unsubscribe(k(channel)).catch(() => {})
          },
          () => {
            if (c.on === client) c.on = null
          }
        )
    }
  }

  const entries = (res: unknown): StreamEntry[] => (res as { messages: StreamEntry[] }[] | null)?.[0]?.messages ?? []
  const ageOf = (id: string) => Date.now() - Number(id.slice(0, id.indexOf('-')))
  const seenTtl = String(LAST_SEEN_TTL_MS)
  const presenceKeys = (userId: string) => [k(`presence:conns:${userId}`), k(`presence:seen:${userId}`)]

  return {
    kind: 'redis',
    get isReady() {
      return ready()
    },
    onReady(listener) {
      readyListeners.add(listener)
      return () => void readyListeners.delete(listener)
    },
    async ping() {
      await timed(main.ping())
    },

    async append(stream, list, { maxLen }) {
      if (list.length === 0 || !ready()) return 0
      const args = [String(maxLen)]
      for (const e of list) {
        const at = args.length
        args.push('')
        let n = 0
        for (const field in e) {
          args.push(field, e[field]!)
          n++
        }
        args[at] = String(n)
      }
      try {
        const ids = (await timed(main.eval(STREAM_APPEND, { keys: [k(stream)], arguments: args }))) as string[]
        appendFailing = false
        return ids.length
      } catch (err) {
        if (!appendFailing)
          log.warn(
            { component: 'engine', engine: 'redis', stream, err: (err as Error).message, count: list.length },
            'stream append failed; events stay in the outbox'
          )
        appendFailing = true
        return 0
      }
    },

    async ensureGroup(stream, group, opts) {
      const key = `${stream}\u0000${group}`
      // If the group has to be made again, the stream is new: read it from its start.
      const from = createdGroups.has(key) ? '0' : (opts?.from ?? '$')
      try {
        await timed(main.eval(GROUP_CREATE, { keys: [k(stream)], arguments: [group, from] }))
        createdGroups.add(key)
        return { created: true, from }
      } catch (err) {
        if (!String((err as Error).message).includes('BUSYGROUP')) throw err
        createdGroups.add(key)
        return { created: false }
      }
    },

    async readGroup(stream, group, consumer, { count, blockMs, signal }) {
      if (blockMs <= 0) {
        try {
          return entries(await timed(main.xReadGroup(group, consumer, { key: k(stream), id: '>' }, { COUNT: count })))
        } catch (err) {
          throw groupGone(err, stream, group)
        }
      }
      const key = `${stream}\u0000${consumer}`
      const c = await blocker(key, blockMs)
      if (!c || signal?.aborted) return []
      // Aborting drops the connection: the read ends now, not when its block time is up.
      const drop = () => {
        if (blockers.get(key) === c) blockers.delete(key)
        c.destroy()
      }
      signal?.addEventListener('abort', drop, { once: true })
      try {
        return entries(await timed(c.xReadGroup(group, consumer, { key: k(stream), id: '>' }, { COUNT: count, BLOCK: blockMs }), blockMs + commandTimeoutMs))
      } catch (err) {
        if (signal?.aborted || closed) return []
        // A read that timed out still holds the connection: start the next one on a fresh one.
        if (String((err as Error).message).startsWith('redis did not answer')) drop()
        throw groupGone(err, stream, group)
      } finally {
        signal?.removeEventListener('abort', drop)
      }
    },

    async claimIdle(stream, group, consumer, { idleMs, count }) {
      // Each call goes on where the previous one stopped (XAUTOCLAIM scans at most 10 × count
      // pending entries a call): page after page covers the whole pending list, then starts over.
      const key = `${stream}\u0000${group}\u0000${consumer}`
      try {
        const res = (await timed(main.xAutoClaim(k(stream), group, consumer, idleMs, claimCursors.get(key) ?? '0-0', { COUNT: count }))) as unknown as {
          nextId: string
          messages: (StreamEntry | null)[]
        }
        if (res.nextId === '0-0') claimCursors.delete(key)
        else claimCursors.set(key, res.nextId)
        return res.messages.filter((m): m is StreamEntry => m !== null)
      } catch (err) {
        throw groupGone(err, stream, group)
      }
    },

    async publishAndAck(stream, group, ids, channel, message) {
      return (await timed(
        main.eval(PUBLISH_ACK, { keys: [k(stream)], arguments: [group, k(channel), message === null ? '0' : '1', message ?? '', ...ids] })
      )) as number
    },

    async groupLag(stream, group): Promise<GroupLag> {
      const key = k(stream)
      const groups = (await timed(main.xInfoGroups(key)).catch(() => [])) as unknown as Record<string, unknown>[]
      const g = groups.find((x) => x.name === group)
      if (!g) return { pending: 0, oldestMs: null, unread: 0, unreadAgeMs: null }
      const pending = Number(g.pending ?? 0)
      // Redis reports the lag as nil when it cannot tell (entries deleted around the group's
      // position): then at least the next entry, if there is one, is unread.
      const lag = g.lag === null || g.lag === undefined ? null : Number(g.lag)
      let unread = lag ?? 0
      let oldestMs: number | null = null
      let unreadAgeMs: number | null = null
      if (pending > 0) {
        const info = (await timed(main.xPending(key, group))) as unknown as { firstId: string | null }
        if (info.firstId) oldestMs = ageOf(info.firstId)
      }
      if (lag === null || lag > 0) {
        const next = (await timed(main.xRange(key, `(${String(g['last-delivered-id'])}`, '+', { COUNT: 1 }))) as unknown as StreamEntry[]
        if (next[0]) {
          unreadAgeMs = ageOf(next[0].id)
          unread = Math.max(unread, 1)
        }
      }
      return { pending, oldestMs, unread, unreadAgeMs }
    },

    async groupConsumers(stream, group): Promise<GroupConsumer[]> {
      try {
        const list = (await timed(main.xInfoConsumers(k(stream), group))) as unknown as { name: string; pending: number; idle: number }[]
        return list.map((c) => ({ name: String(c.name), pending: Number(c.pending), idleMs: Number(c.idle) }))
      } catch (err) {
        if (String((err as Error).message).includes('NOGROUP')) return []
        throw err
      }
    },

    async deleteConsumer(stream, group, consumer) {
      try {
        return Number(await timed(main.eval(CONSUMER_DELETE, { keys: [k(stream)], arguments: [group, consumer] }))) === 1
      } catch (err) {
        if (String((err as Error).message).includes('NOGROUP')) return true
        throw err
      }
    },

    async deleteIdleConsumers(stream, group, idleMs) {
      try {
        return ((await timed(main.eval(CONSUMERS_PRUNE, { keys: [k(stream)], arguments: [group, String(idleMs)] }))) as string[]).map(String)
      } catch (err) {
        throw groupGone(err, stream, group)
      }
    },

    async streamRange(stream, count) {
      return (await timed(main.xRange(k(stream), '-', '+', { COUNT: count }))) as unknown as StreamEntry[]
    },

    async publish(channel, message) {
      await timed(main.publish(k(channel), message))
    },

    subscribe(channel, handler) {
      return subscriptions.add(channel, handler)
    },

    async presenceTouch(userId, connId, ttlMs) {
      await timed(main.eval(PRESENCE_TOUCH, { keys: presenceKeys(userId), arguments: [connId, String(ttlMs), seenTtl] }))
    },

    async presenceLeave(userId, connId) {
      await timed(main.eval(PRESENCE_LEAVE, { keys: presenceKeys(userId), arguments: [connId, seenTtl] }))
    },

    async presenceTouchMany(entries, ttlMs) {
      if (entries.length === 0) return
      await timed(
        main.eval(PRESENCE_TOUCH_MANY, {
          keys: entries.flatMap((e) => presenceKeys(e.userId)),
          arguments: [String(ttlMs), seenTtl, ...entries.map((e) => e.connId)]
        })
      )
    },

    async presenceLeaveMany(entries) {
      if (entries.length === 0) return
      await timed(
        main.eval(PRESENCE_LEAVE_MANY, { keys: entries.flatMap((e) => presenceKeys(e.userId)), arguments: [seenTtl, ...entries.map((e) => e.connId)] })
      )
    },

    async presenceGet(userIds) {
      const out = new Map<string, Presence>()
      if (userIds.length === 0) return out
      const keys = userIds.flatMap(presenceKeys)
      const res = (await timed(main.eval(PRESENCE_GET, { keys, arguments: [] }))) as (number | string)[]
      userIds.forEach((userId, i) => {
        const seen = res[2 * i + 1]
        out.set(userId, { connections: Number(res[2 * i]), lastSeenAt: seen === '' || seen === undefined ? null : Number(seen) })
      })
      return out
    },

    async scheduleAdd(key, items, opts) {
      if (items.length === 0) return
      await timed(
        main.zAdd(
          k(`schedule:${key}`),
          items.map((i) => ({ score: i.dueAt, value: i.member })),
          opts?.onlyNew ? { condition: 'NX' } : undefined
        )
      )
    },

    async scheduleClaim(key, { leaseMs, count }) {
      const res = (await timed(main.eval(SCHEDULE_CLAIM, { keys: [k(`schedule:${key}`)], arguments: [String(leaseMs), String(count)] }))) as (string | number)[]
      const until = Number(res[0])
      const out: ScheduleClaim[] = []
      for (let i = 1; i < res.length; i += 2) out.push({ member: String(res[i]), dueAt: Number(res[i + 1]), until })
      return out
    },

    async scheduleRemove(key, claims) {
      if (claims.length === 0) return 0
      return Number(await timed(main.eval(SCHEDULE_REMOVE, { keys: [k(`schedule:${key}`)], arguments: claims.flatMap((c) => [c.member, String(c.until)]) })))
    },

    async scheduleSize(key) {
      return Number(await timed(main.zCard(k(`schedule:${key}`))))
    },

    async scheduleRange(key, limit) {
      if (limit <= 0) return []
      const res = (await timed(main.zRangeWithScores(k(`schedule:${key}`), 0, limit - 1))) as { value: string; score: number }[]
      return res.map((r) => ({ member: r.value, dueAt: Number(r.score) }))
    },

    async leaseAcquire(key, holder, { limit, leaseMs }) {
      const res = await timed(main.eval(LEASE_ACQUIRE, { keys: [k(`lease:${key}`)], arguments: [holder, String(limit), String(leaseMs)] }))
      return Number(res) === 1
    },

    async leaseRelease(key, holder) {
      await timed(main.zRem(k(`lease:${key}`), holder))
    },

    async leaseCount(key) {
      return Number(await timed(main.eval(LEASE_COUNT, { keys: [k(`lease:${key}`)], arguments: [] })))
    },

    async close() {
      if (closed) return
      closed = true
      if (watchdog) clearInterval(watchdog)
      readyListeners.clear()
      channels.clear()
      // Blocking readers hold nothing worth waiting for; the others finish what they sent, briefly.
      for (const c of blockers.values()) c.destroy()
      blockers.clear()
      await Promise.all([main, ...(subscriber ? [subscriber] : [])].map((c) => quit(c, commandTimeoutMs)))
    }
  }
}

async function quit(client: Client, ms: number) {
  try {
    if (client.isOpen) await Promise.race([client.close(), Bun.sleep(ms).then(() => Promise.reject(new Error('close timed out')))])
  } catch {
    client.destroy()
  }
}
