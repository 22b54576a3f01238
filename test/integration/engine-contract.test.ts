/**
 * The Engine interface's contract (src/engine/engine.ts), one table of cases run against both
 * implementations: the memory engine always, the Redis engine whenever the run has a Redis
 * (each case with its own key prefix). Then what only the Redis engine can be put through: a
 * stream that vanished, and a Redis that stops answering.
 */
import { afterEach, describe, expect, setDefaultTimeout, setSystemTime, test } from 'bun:test'
import { createClient } from 'redis'
import { GroupGoneError, type Engine } from '../../src/engine/engine.ts'
import { createMemoryEngine } from '../../src/engine/engine-memory.ts'
import { createRedisEngine } from '../../src/engine/engine-redis.ts'
import { silentLog } from '../support/db.ts'
import { hasRedisServer, testRedisUrl } from '../support/engine.ts'
import { privateRedis, uniquePrefix } from '../support/redis.ts'
import { waitFor } from '../support/service.ts'
import { tcpProxy } from '../support/tcp-proxy.ts'

setDefaultTimeout(20_000)

const opened: Engine[] = []
afterEach(async () => {
  await Promise.all(opened.splice(0).map((e) => e.close()))
})

type Make = () => Promise<Engine>
const implementations: [string, Make | null][] = [
  ['memory', async () => createMemoryEngine()],
  [
    'redis',
    testRedisUrl === null
      ? null
      : async () => {
          const e = createRedisEngine({ url: testRedisUrl!, prefix: uniquePrefix(), log: silentLog, commandTimeoutMs: 2000 })
          await waitFor('redis engine ready', () => e.isReady)
          return e
        }
  ]
]

const S = 'contract:stream'
const G = 'contract-group'
const row = (i: number) => ({ topic: `shipment:dhl:T${i}`, seq: String(i), data: `{"i":${i}}` })
const rows = (from: number, n: number) => Array.from({ length: n }, (_, i) => row(from + i))
const seqs = (entries: { message: Readonly<Record<string, string>> }[]) => entries.map((e) => Number(e.message.seq))

for (const [name, make] of implementations) {
  const engine = async () => {
    const e = await make!()
    opened.push(e)
    return e
  }
  const cases = make === null ? describe.skip : describe
  cases(`${name} engine${make === null ? ' — skipped: this run has no Redis (TEST_ENGINE=memory)' : ''}`, () => {
    test('append keeps order, gives increasing ids, and reports how many it appended', async () => {
      const e = await engine()
      expect(await e.append(S, [], { maxLen: 1000 })).toBe(0)
      expect(await e.append(S, rows(1, 3), { maxLen: 1000 })).toBe(3)
      expect(await e.append(S, [{ only: 'one field' }, row(4)], { maxLen: 1000 })).toBe(2)
      const all = await e.streamRange(S, 100)
      expect(all.map((x) => x.message)).toEqual([row(1), row(2), row(3), { only: 'one field' }, row(4)])
      const ids = all.map((x) => x.id.split('-').map(Number) as [number, number])
      for (let i = 1; i < ids.length; i++) expect(ids[i]![0] > ids[i - 1]![0] || (ids[i]![0] === ids[i - 1]![0] && ids[i]![1] > ids[i - 1]![1])).toBe(true)
      expect((await e.streamRange(S, 2)).length).toBe(2)
    })

    test('a stream stays near maxLen, keeping the newest entries', async () => {
      const e = await engine()
      for (let b = 0; b < 100; b++) await e.append(S, rows(b * 10 + 1, 10), { maxLen: 100 })
      const kept = seqs(await e.streamRange(S, 10_000))
      expect(kept.length).toBeGreaterThanOrEqual(100)
      // Approximate: Redis trims whole nodes (100 entries by default), so up to about twice.
      expect(kept.length).toBeLessThanOrEqual(300)
      expect(kept.at(-1)).toBe(1000)
      expect(kept).toEqual(Array.from({ length: kept.length }, (_, i) => 1001 - kept.length + i))
    })

    test('a new group reads from the end; each entry goes to one consumer and stays pending until acknowledged', async () => {
      const e = await engine()
      await e.append(S, rows(1, 2), { maxLen: 1000 })
      expect(await e.ensureGroup(S, G)).toEqual({ created: true, from: '$' })
      expect(await e.ensureGroup(S, G)).toEqual({ created: false })
      expect(await e.readGroup(S, G, 'a', { count: 10, blockMs: 0 })).toEqual([])
      await e.append(S, rows(3, 5), { maxLen: 1000 })
      expect(await e.groupLag(S, G)).toMatchObject({ pending: 0, unread: 5, oldestMs: null })
      const a = await e.readGroup(S, G, 'a', { count: 2, blockMs: 0 })
      const b = await e.readGroup(S, G, 'b', { count: 10, blockMs: 0 })
      expect([seqs(a), seqs(b)]).toEqual([
        [3, 4],
        [5, 6, 7]
      ])
      const lag = await e.groupLag(S, G)
      expect(lag).toMatchObject({ pending: 5, unread: 0, unreadAgeMs: null })
      expect(lag.oldestMs).toBeGreaterThanOrEqual(0)
      expect(
        await e.publishAndAck(
          S,
          G,
          a.map((x) => x.id),
          'contract:none',
          null
        )
      ).toBe(2)
      expect(
        await e.publishAndAck(
          S,
          G,
          a.map((x) => x.id),
          'contract:none',
          null
        )
      ).toBe(0)
      expect((await e.groupLag(S, G)).pending).toBe(3)
      expect(await e.readGroup(S, G, 'a', { count: 10, blockMs: 0 })).toEqual([])
    })

    test('a work-queue group made with from 0 reads what was appended before it existed', async () => {
      const e = await engine()
      await e.append(S, rows(1, 3), { maxLen: 1000 })
      expect(await e.ensureGroup(S, 'workers', { from: '0' })).toEqual({ created: true, from: '0' })
      expect(await e.ensureGroup(S, 'workers', { from: '0' })).toEqual({ created: false })
      await e.append(S, rows(4, 1), { maxLen: 1000 })
      expect(seqs(await e.readGroup(S, 'workers', 'w', { count: 10, blockMs: 0 }))).toEqual([1, 2, 3, 4])
      expect(await e.ensureGroup(S, 'fan-out')).toEqual({ created: true, from: '$' })
      expect(await e.readGroup(S, 'fan-out', 'f', { count: 10, blockMs: 0 })).toEqual([])
    })

    test('a group or stream that does not exist is a GroupGoneError', async () => {
      const e = await engine()
      await expect(e.readGroup('contract:nothing', G, 'a', { count: 1, blockMs: 0 })).rejects.toBeInstanceOf(GroupGoneError)
      await e.append(S, rows(1, 1), { maxLen: 100 })
      await expect(e.readGroup(S, 'no-such-group', 'a', { count: 1, blockMs: 0 })).rejects.toBeInstanceOf(GroupGoneError)
      await expect(e.claimIdle(S, 'no-such-group', 'a', { idleMs: 0, count: 1 })).rejects.toBeInstanceOf(GroupGoneError)
      expect(await e.groupLag(S, 'no-such-group')).toEqual({ pending: 0, oldestMs: null, unread: 0, unreadAgeMs: null })
    })

    test('a blocking read returns as soon as something is appended, or empty when its time is up, aborted or closed', async () => {
      const e = await engine()
      await e.ensureGroup(S, G)
      const t0 = performance.now()
      const reading = e.readGroup(S, G, 'a', { count: 10, blockMs: 15_000 })
      await Bun.sleep(50)
      await e.append(S, rows(1, 2), { maxLen: 100 })
      expect(seqs(await reading)).toEqual([1, 2])
      expect(performance.now() - t0).toBeLessThan(15_000)
      expect(await e.readGroup(S, G, 'a', { count: 10, blockMs: 100 })).toEqual([])
      const abort = new AbortController()
      const aborted = e.readGroup(S, G, 'a', { count: 10, blockMs: 15_000, signal: abort.signal })
      await Bun.sleep(50)
      abort.abort()
      expect(await aborted).toEqual([])
      const closing = e.readGroup(S, G, 'b', { count: 10, blockMs: 15_000 })
      await Bun.sleep(50)
      await e.close()
      await e.close()
      expect(await closing.catch(() => [])).toEqual([])
      expect(performance.now() - t0).toBeLessThan(15_000)
    })

    test('entries pending longer than idleMs are claimed by another consumer', async () => {
      const e = await engine()
      await e.ensureGroup(S, G)
      await e.append(S, rows(1, 3), { maxLen: 100 })
      expect(seqs(await e.readGroup(S, G, 'dead', { count: 10, blockMs: 0 }))).toEqual([1, 2, 3])
      expect(await e.claimIdle(S, G, 'alive', { idleMs: 60_000, count: 10 })).toEqual([])
      await Bun.sleep(30)
      const claimed = await e.claimIdle(S, G, 'alive', { idleMs: 20, count: 2 })
      expect(seqs(claimed)).toEqual([1, 2])
      expect(seqs(await e.claimIdle(S, G, 'alive', { idleMs: 20, count: 10 }))).toEqual([3])
      // Claimed again just now: not idle any more.
      expect(await e.claimIdle(S, G, 'other', { idleMs: 20, count: 10 })).toEqual([])
      expect(
        await e.publishAndAck(
          S,
          G,
          claimed.map((x) => x.id),
          'contract:none',
          null
        )
      ).toBe(2)
      expect((await e.groupLag(S, G)).pending).toBe(1)
    })

    test('consumers: one deleted on a clean stop unless it holds pending entries; idle ones holding nothing are swept', async () => {
      const e = await engine()
      await e.ensureGroup(S, G)
      await e.append(S, rows(1, 3), { maxLen: 100 })
      expect(seqs(await e.readGroup(S, G, 'holder', { count: 1, blockMs: 0 }))).toEqual([1])
      for (const name of ['empty', 'stopping']) {
        const done = await e.readGroup(S, G, name, { count: 1, blockMs: 0 })
        await e.publishAndAck(
          S,
          G,
          done.map((x) => x.id),
          'contract:none',
          null
        )
      }
      const names = async () => (await e.groupConsumers(S, G)).map((c) => c.name).sort()
      const listed = (await e.groupConsumers(S, G)).sort((a, b) => a.name.localeCompare(b.name))
      expect(listed.map((c) => [c.name, c.pending])).toEqual([
        ['empty', 0],
        ['holder', 1],
        ['stopping', 0]
      ])
      for (const c of listed) expect(c.idleMs).toBeGreaterThanOrEqual(0)
      expect(await e.deleteConsumer(S, G, 'holder')).toBe(false)
      expect(await e.deleteConsumer(S, G, 'stopping')).toBe(true)
      expect(await e.deleteConsumer(S, G, 'never-was')).toBe(true)
      expect(await names()).toEqual(['empty', 'holder'])
      await Bun.sleep(30)
      expect(await e.deleteIdleConsumers(S, G, 600_000)).toEqual([])
      // 'holder' keeps its pending entry, so it stays until someone claims that.
      expect(await e.deleteIdleConsumers(S, G, 20)).toEqual(['empty'])
      expect(await names()).toEqual(['holder'])
      expect(await e.groupConsumers(S, 'no-such-group')).toEqual([])
      expect(await e.deleteConsumer(S, 'no-such-group', 'x')).toBe(true)
      await expect(e.deleteIdleConsumers(S, 'no-such-group', 20)).rejects.toBeInstanceOf(GroupGoneError)
    })

    test('publishAndAck hands the message to every subscriber, then acknowledges', async () => {
      const e = await engine()
      await e.ensureGroup(S, G)
      await e.append(S, rows(1, 2), { maxLen: 100 })
      const read = await e.readGroup(S, G, 'a', { count: 10, blockMs: 0 })
      const got: string[][] = [[], []]
      const offs = got.map((list) => e.subscribe('contract:fanout', (m) => void list.push(m)))
      await waitFor('subscribed', async () => {
        await e.publish('contract:fanout', 'hello')
        return got[0]!.length > 0 && got[1]!.length > 0
      })
      expect(
        await e.publishAndAck(
          S,
          G,
          read.map((x) => x.id),
          'contract:fanout',
          'batch-1'
        )
      ).toBe(2)
      await waitFor('the batch', () => got.every((list) => list.includes('batch-1')))
      expect((await e.groupLag(S, G)).pending).toBe(0)
      for (const off of offs) off()
    })

    test('pub/sub: handlers run after publish returns, each subscriber gets each message, unsubscribing stops them', async () => {
      const e = await engine()
      const a: string[] = [],
        b: string[] = []
      const offA = e.subscribe('contract:ch', (m) => void a.push(m))
      const offB = e.subscribe('contract:ch', (m) => void b.push(m))
      e.subscribe('contract:other', () => {
        throw new Error('a failing handler does not stop the others')
      })
      await waitFor('subscribed', async () => {
        await e.publish('contract:ch', 'warm-up')
        return a.length > 0 && b.length > 0
      })
      // Messages of one publisher arrive in order: once this one is in, no warm-up is on its way.
      await e.publish('contract:ch', 'sync')
      await waitFor('the sync message', () => a.includes('sync') && b.includes('sync'))
      a.length = 0
      b.length = 0
      const sent = e.publish('contract:ch', 'one')
      expect(a).toEqual([])
      await sent
      await e.publish('contract:other', 'x')
      await e.publish('contract:ch', 'two')
      await waitFor('both messages', () => a.length === 2 && b.length === 2)
      expect([a, b]).toEqual([
        ['one', 'two'],
        ['one', 'two']
      ])
      offA()
      await e.publish('contract:ch', 'three')
      await waitFor('the third', () => b.length === 3)
      await e.publish('contract:ch', 'four')
      await waitFor('the fourth', () => b.length === 4)
      expect(a).toEqual(['one', 'two'])
      offB()
    })

    test('presence counts unexpired connections, and remembers when a user was last seen', async () => {
      const e = await engine()
      const t0 = Date.now()
      await e.presenceTouch('ann', 'c1', 60_000)
      await e.presenceTouch('ann', 'c2', 60_000)
      await e.presenceTouch('bob', 'c3', 60_000)
      const t1 = Date.now()
      const first = await e.presenceGet(['ann', 'bob', 'nobody'])
      expect([...first].map(([u, p]) => [u, p.connections])).toEqual([
        ['ann', 2],
        ['bob', 1],
        ['nobody', 0]
      ])
      expect(first.get('nobody')!.lastSeenAt).toBeNull()
      for (const u of ['ann', 'bob']) expect(first.get(u)!.lastSeenAt).toBeWithin(t0, t1 + 1)
      // c1 and c3 stop heartbeating (their process was killed): gone once their TTL is up.
      await e.presenceTouch('ann', 'c1', 50)
      await e.presenceTouch('bob', 'c3', 50)
      const t2 = Date.now()
      await waitFor('c1 and c3 expired', async () => {
        const p = await e.presenceGet(['ann', 'bob'])
        return p.get('ann')!.connections === 1 && p.get('bob')!.connections === 0
      })
      expect((await e.presenceGet(['bob'])).get('bob')!.lastSeenAt).toBeWithin(t1, t2 + 1)
      const t3 = Date.now()
      await e.presenceLeave('ann', 'c2')
      const left = (await e.presenceGet(['ann'])).get('ann')!
      expect(left.connections).toBe(0)
      expect(left.lastSeenAt).toBeWithin(t3, Date.now() + 1)
      const many = Array.from({ length: 1000 }, (_, i) => `user-${i}`)
      await Promise.all(many.slice(0, 10).map((u) => e.presenceTouch(u, 'c', 100_000)))
      const all = await e.presenceGet(many)
      expect(all.size).toBe(1000)
      expect([...all.values()].filter((p) => p.connections === 1).length).toBe(10)
    })

    test('presence in batches: one call touches or removes many connections, as single calls do', async () => {
      const e = await engine()
      const t0 = Date.now()
      await e.presenceTouchMany(
        [
          { userId: 'ann', connId: 'c1' },
          { userId: 'ann', connId: 'c2' },
          { userId: 'bob', connId: 'c1' }
        ],
        100_000
      )
      const t1 = Date.now()
      const first = await e.presenceGet(['ann', 'bob'])
      expect([...first].map(([u, p]) => [u, p.connections])).toEqual([
        ['ann', 2],
        ['bob', 1]
      ])
      for (const p of first.values()) expect(p.lastSeenAt).toBeWithin(t0, t1 + 1)
      // A heartbeat that touches only ann's c1 (and a short TTL for the test): the others expire at their TTL.
      await e.presenceTouchMany(
        [
          { userId: 'ann', connId: 'c2' },
          { userId: 'bob', connId: 'c1' }
        ],
        50
      )
      const t2 = Date.now()
      await e.presenceTouchMany([{ userId: 'ann', connId: 'c1' }], 100_000)
      const t3 = Date.now()
      await waitFor("c2 and bob's c1 expired", async () => {
        const p = await e.presenceGet(['ann', 'bob'])
        return p.get('ann')!.connections === 1 && p.get('bob')!.connections === 0
      })
      const later = await e.presenceGet(['ann', 'bob'])
      expect(later.get('ann')!.lastSeenAt).toBeWithin(t2, t3 + 1)
      expect(later.get('bob')!.lastSeenAt).toBeWithin(t1, t2 + 1)
      const t4 = Date.now()
      await e.presenceLeaveMany([
        { userId: 'ann', connId: 'c1' },
        { userId: 'bob', connId: 'never-there' }
      ])
      const t5 = Date.now()
      const left = await e.presenceGet(['ann', 'bob'])
      for (const p of left.values()) {
        expect(p.connections).toBe(0)
        expect(p.lastSeenAt).toBeWithin(t4, t5 + 1)
      }
      await e.presenceTouchMany([], 1000)
      await e.presenceLeaveMany([])
      // A process's tick: 5,000 connections of 1,000 users in one call.
      const users = Array.from({ length: 1000 }, (_, i) => `u${i}`)
      const t6 = Date.now()
      await e.presenceTouchMany(
        Array.from({ length: 5000 }, (_, i) => ({ userId: users[i % 1000]!, connId: `c${i}` })),
        100_000
      )
      const t7 = Date.now()
      const all = await e.presenceGet(users)
      expect([...all.values()].every((p) => p.connections === 5 && p.lastSeenAt! >= t6 && p.lastSeenAt! <= t7)).toBe(true)
    })

    test('a schedule orders by due time, and a claim takes what is due for a lease', async () => {
      const e = await engine()
      const t = Date.now()
      await e.scheduleAdd('retries', [
        { member: 'a', dueAt: t - 1000 },
        { member: 'b', dueAt: t - 2000 },
        { member: 'c', dueAt: t + 600_000 }
      ])
      expect(await e.scheduleRange('retries', 10)).toEqual([
        { member: 'b', dueAt: t - 2000 },
        { member: 'a', dueAt: t - 1000 },
        { member: 'c', dueAt: t + 600_000 }
      ])
      const before = Date.now()
      const claimed = await e.scheduleClaim('retries', { leaseMs: 300_000, count: 10 })
      expect(claimed).toEqual([
        { member: 'b', dueAt: t - 2000, until: expect.any(Number) },
        { member: 'a', dueAt: t - 1000, until: expect.any(Number) }
      ])
      const after = Date.now()
      // Leased: due again when the lease ends, not before; `until` is that lease end.
      const leased = await e.scheduleRange('retries', 2)
      // (one lease end for both: ties go by member)
      expect(leased.map((m) => m.member)).toEqual(['a', 'b'])
      for (const m of leased) expect(m.dueAt).toBeWithin(before + 300_000, after + 300_001)
      expect(claimed.map((c) => c.until)).toEqual([leased[0]!.dueAt, leased[0]!.dueAt])
      expect(await e.scheduleClaim('retries', { leaseMs: 300_000, count: 10 })).toEqual([])
      // A claimer that dies: the member is due again once its (short) lease ends.
      await e.scheduleAdd('retries', [{ member: 'd', dueAt: t - 500 }])
      expect(await e.scheduleClaim('retries', { leaseMs: 50, count: 1 })).toEqual([{ member: 'd', dueAt: t - 500, until: expect.any(Number) }])
      const again = await waitFor('d due again', async () => (await e.scheduleClaim('retries', { leaseMs: 300_000, count: 10 }))[0])
      expect(again.member).toBe('d')
      expect(again.dueAt).toBeGreaterThan(t)
      // Adding an existing member moves it.
      await e.scheduleAdd('retries', [{ member: 'b', dueAt: t - 5 }])
      expect((await e.scheduleRange('retries', 1))[0]).toEqual({ member: 'b', dueAt: t - 5 })
      expect(await e.scheduleSize('retries')).toBe(4)
      // A removal is the claim's: a (still as claimed) goes, b (moved since) and zzz (never there) stay as they are.
      const [b, a] = claimed
      expect(await e.scheduleRemove('retries', [a!, b!, { member: 'zzz', until: a!.until }])).toBe(1)
      expect(await e.scheduleSize('retries')).toBe(3)
      expect((await e.scheduleRange('retries', 10)).map((m) => m.member).sort()).toEqual(['b', 'c', 'd'])
      expect(await e.scheduleRemove('retries', [])).toBe(0)
      expect(await e.scheduleRange('nothing', 10)).toEqual([])
      expect(await e.scheduleClaim('nothing', { leaseMs: 1, count: 1 })).toEqual([])
    })

    test("an add with onlyNew leaves members already scheduled (a claim's lease) alone and adds the missing", async () => {
      const e = await engine()
      const t = Date.now()
      await e.scheduleAdd('rebuild', [{ member: 'a', dueAt: t - 10 }])
      const before = Date.now()
      expect(await e.scheduleClaim('rebuild', { leaseMs: 300_000, count: 10 })).toEqual([{ member: 'a', dueAt: t - 10, until: expect.any(Number) }])
      const after = Date.now()
      await e.scheduleAdd(
        'rebuild',
        [
          { member: 'a', dueAt: t - 10 },
          { member: 'b', dueAt: t - 5 }
        ],
        { onlyNew: true }
      )
      const range = await e.scheduleRange('rebuild', 10)
      expect(range.map((m) => m.member)).toEqual(['b', 'a'])
      expect(range[0]!.dueAt).toBe(t - 5)
      // a keeps its lease's end (the engine's clock + leaseMs), not the rebuild's due time.
      expect(range[1]!.dueAt).toBeWithin(before + 300_000, after + 300_001)
    })

    test('stale claims: a removal after the claim ran out leaves an entry re-added or claimed again since', async () => {
      const e = await engine()
      const t = Date.now()
      // Re-added after the claim (a replay, an endpoint enabled again): the old claim removes nothing.
      await e.scheduleAdd('fence-add', [{ member: 'a', dueAt: t - 10 }])
      const [ca] = await e.scheduleClaim('fence-add', { leaseMs: 300_000, count: 1 })
      await e.scheduleAdd('fence-add', [{ member: 'a', dueAt: t + 600_000 }])
      expect(await e.scheduleRemove('fence-add', [ca!])).toBe(0)
      expect(await e.scheduleRange('fence-add', 10)).toEqual([{ member: 'a', dueAt: t + 600_000 }])
      // Claimed again once the first (short) claim ran out: each claim ends later than the one
      // before; the first claimer's removal leaves the second's entry, the second's removes it.
      await e.scheduleAdd('fence-claim', [{ member: 'b', dueAt: t - 10 }])
      const [first] = await e.scheduleClaim('fence-claim', { leaseMs: 50, count: 1 })
      const second = await waitFor('b claimed again', async () => (await e.scheduleClaim('fence-claim', { leaseMs: 300_000, count: 1 }))[0])
      expect(second.until).toBeGreaterThan(first!.until)
      expect(await e.scheduleRemove('fence-claim', [first!])).toBe(0)
      expect(await e.scheduleSize('fence-claim')).toBe(1)
      expect(await e.scheduleClaim('fence-claim', { leaseMs: 300_000, count: 1 })).toEqual([])
      expect(await e.scheduleRemove('fence-claim', [second])).toBe(1)
      expect(await e.scheduleSize('fence-claim')).toBe(0)
      // Once removed, the member can be scheduled and claimed afresh.
      await e.scheduleAdd('fence-claim', [{ member: 'b', dueAt: t - 1 }])
      expect((await e.scheduleClaim('fence-claim', { leaseMs: 300_000, count: 1 })).map((c) => c.member)).toEqual(['b'])
    })

    test("a late lease release frees only its own holder's slot, never one taken after its lease ran out", async () => {
      const e = await engine()
      expect(await e.leaseAcquire('endpoint-late', 'claim-1', { limit: 1, leaseMs: 50 })).toBe(true)
      await waitFor('the lease ran out', async () => (await e.leaseCount('endpoint-late')) === 0)
      expect(await e.leaseAcquire('endpoint-late', 'claim-2', { limit: 1, leaseMs: 100_000 })).toBe(true)
      await e.leaseRelease('endpoint-late', 'claim-1')
      expect(await e.leaseCount('endpoint-late')).toBe(1)
      expect(await e.leaseAcquire('endpoint-late', 'claim-3', { limit: 1, leaseMs: 100_000 })).toBe(false)
    })

    test('claims running at once never take one member twice', async () => {
      const e = await engine()
      const t = Date.now()
      await e.scheduleAdd(
        'many',
        Array.from({ length: 100 }, (_, i) => ({ member: `m${String(i).padStart(3, '0')}`, dueAt: t - i }))
      )
      const claims = await Promise.all(Array.from({ length: 4 }, () => e.scheduleClaim('many', { leaseMs: 60_000, count: 30 })))
      const members = claims.flat().map((m) => m.member)
      expect(members.length).toBe(100)
      expect(new Set(members).size).toBe(100)
      // Earliest first within each claim.
      for (const c of claims) expect(c.map((m) => m.dueAt)).toEqual([...c.map((m) => m.dueAt)].sort((x, y) => x - y))
    })

    test('leases: at most `limit` live holders; a holder renews; a release or an expiry frees a slot', async () => {
      const e = await engine()
      const opts = { limit: 2, leaseMs: 100_000 }
      expect(await e.leaseAcquire('endpoint-1', 'h1', opts)).toBe(true)
      expect(await e.leaseAcquire('endpoint-1', 'h2', opts)).toBe(true)
      expect(await e.leaseAcquire('endpoint-1', 'h3', opts)).toBe(false)
      expect(await e.leaseAcquire('endpoint-1', 'h1', opts)).toBe(true)
      expect(await e.leaseCount('endpoint-1')).toBe(2)
      await e.leaseRelease('endpoint-1', 'h1')
      expect(await e.leaseAcquire('endpoint-1', 'h3', opts)).toBe(true)
      expect(await e.leaseAcquire('endpoint-2', 'h1', opts)).toBe(true)
      // A holder that stops renewing: its slot is free once the lease is up.
      expect(await e.leaseAcquire('endpoint-3', 'h1', { limit: 1, leaseMs: 50 })).toBe(true)
      await waitFor('the lease expired', async () => (await e.leaseCount('endpoint-3')) === 0)
      expect(await e.leaseAcquire('endpoint-3', 'h2', { limit: 1, leaseMs: 100_000 })).toBe(true)
      const racing = await Promise.all(Array.from({ length: 10 }, (_, i) => e.leaseAcquire('endpoint-4', `r${i}`, { limit: 3, leaseMs: 100_000 })))
      expect(racing.filter(Boolean).length).toBe(3)
    })
  })
}

describe('memory engine only', () => {
  test('a stream drops what every group has acknowledged (Redis keeps maxLen of it; a heap should not), and keeps what a group still needs', async () => {
    const e = createMemoryEngine()
    opened.push(e)
    await e.ensureGroup(S, G)
    // 110,000 entries read and acknowledged in batches, as the broadcaster does, under a maxLen of 100,000.
    for (let b = 0; b < 110; b++) {
      await e.append(S, rows(b * 1000 + 1, 1000), { maxLen: 100_000 })
      const read = await e.readGroup(S, G, 'a', { count: 1000, blockMs: 0 })
      await e.publishAndAck(
        S,
        G,
        read.map((x) => x.id),
        'contract:none',
        null
      )
    }
    expect((await e.streamRange(S, 1_000_000)).length).toBeLessThan(2048)
    // An entry left pending holds the stream from there on; a group that has not read yet holds what it has not read.
    await e.append(S, rows(200_001, 10), { maxLen: 100_000 })
    const held = await e.readGroup(S, G, 'a', { count: 1, blockMs: 0 })
    await e.publishAndAck(
      S,
      G,
      (await e.readGroup(S, G, 'a', { count: 100, blockMs: 0 })).map((x) => x.id),
      'contract:none',
      null
    )
    await e.ensureGroup(S, 'late')
    await e.append(S, rows(300_001, 5000), { maxLen: 100_000 })
    for (let i = 0; i < 5; i++)
      await e.publishAndAck(
        S,
        G,
        (await e.readGroup(S, G, 'a', { count: 1000, blockMs: 0 })).map((x) => x.id),
        'contract:none',
        null
      )
    let kept = seqs(await e.streamRange(S, 1_000_000))
    expect(kept[0]!).toBeLessThanOrEqual(200_001)
    expect(kept).toContain(seqs(held)[0]!)
    expect(seqs(await e.readGroup(S, 'late', 'b', { count: 10_000, blockMs: 0 }))).toEqual(Array.from({ length: 5000 }, (_, i) => 300_001 + i))
    // Once nothing is pending and every group has read, they go (maxLen stays the ceiling meanwhile: the case above).
    await e.publishAndAck(
      S,
      G,
      held.map((x) => x.id),
      'contract:none',
      null
    )
    await e.publishAndAck(
      S,
      'late',
      (await e.streamRange(S, 1_000_000)).map((x) => x.id),
      'contract:none',
      null
    )
    kept = seqs(await e.streamRange(S, 1_000_000))
    expect(kept.length).toBeLessThan(1024)
  })
})

describe('redis engine only', () => {
  const run = testRedisUrl === null ? test.skip : test
  run(
    `a group re-created after its stream vanished reads the new stream from its start${testRedisUrl === null ? ' — skipped: this run has no Redis' : ''}`,
    async () => {
      const prefix = uniquePrefix()
      const e = createRedisEngine({ url: testRedisUrl!, prefix, log: silentLog, commandTimeoutMs: 2000 })
      opened.push(e)
      await waitFor('ready', () => e.isReady)
      await e.ensureGroup(S, G)
      const raw = createClient({ url: testRedisUrl! })
      await raw.connect()
      await raw.del(`${prefix}${S}`)
      await raw.close()
      await e.append(S, rows(1, 2), { maxLen: 100 })
      await expect(e.readGroup(S, G, 'a', { count: 10, blockMs: 0 })).rejects.toBeInstanceOf(GroupGoneError)
      expect(await e.ensureGroup(S, G)).toEqual({ created: true, from: '0' })
      expect(seqs(await e.readGroup(S, G, 'a', { count: 10, blockMs: 0 }))).toEqual([1, 2])
    }
  )

  run(
    `leases, schedule claims and presence hold across processes whose clocks disagree by 20 s: the time is Redis's${testRedisUrl === null ? ' — skipped: this run has no Redis' : ''}`,
    async () => {
      const prefix = uniquePrefix()
      const [a, b] = [0, 1].map(() => createRedisEngine({ url: testRedisUrl!, prefix, log: silentLog, commandTimeoutMs: 2000 }))
      opened.push(a!, b!)
      await waitFor('ready', () => a!.isReady && b!.isReady)
      const t = Date.now()
      expect(await a!.leaseAcquire('endpoint', 'A', { limit: 1, leaseMs: 10_000 })).toBe(true)
      await a!.scheduleAdd('retries', [{ member: 'm', dueAt: t - 1 }])
      expect(await a!.scheduleClaim('retries', { now: Date.now(), leaseMs: 10_000, count: 10 })).toEqual([
        { member: 'm', dueAt: t - 1, until: expect.any(Number) }
      ])
      await a!.presenceTouch('ann', 'conn-a', 10_000)
      await a!.presenceTouchMany([{ userId: 'bob', connId: 'conn-b' }], 10_000)
      // From here on this process's clock is 20 s ahead, as another process's may be.
      setSystemTime(new Date(t + 20_000))
      try {
        expect(await b!.leaseAcquire('endpoint', 'B', { limit: 1, leaseMs: 10_000 })).toBe(false)
        expect(await b!.leaseCount('endpoint')).toBe(1)
        expect(await b!.scheduleClaim('retries', { now: Date.now(), leaseMs: 10_000, count: 10 })).toEqual([])
        expect([...(await b!.presenceGet(['ann', 'bob'])).values()].map((p) => p.connections)).toEqual([1, 1])
      } finally {
        setSystemTime()
      }
    }
  )

  const stoppable = testRedisUrl === null || !hasRedisServer ? test.skip : test
  stoppable(
    `connections that go silent for good (blackholed: no FIN, no RST) are dropped for new ones: commands and pub/sub work again within seconds${testRedisUrl === null ? ' — skipped: this run has no Redis' : hasRedisServer ? '' : ' — skipped: needs the redis-server binary'}`,
    async () => {
      const server = await privateRedis()
      await server.start()
      const proxy = await tcpProxy({ host: '127.0.0.1', port: server.port })
      const e = createRedisEngine({ url: `redis://127.0.0.1:${proxy.port}`, prefix: uniquePrefix(), log: silentLog, commandTimeoutMs: 200 })
      const got: string[] = []
      try {
        await waitFor('ready', () => e.isReady)
        e.subscribe('contract:bh', (m) => void got.push(m))
        await waitFor('subscribed', async () => {
          await e.publish('contract:bh', 'warm-up')
          return got.length > 0
        })
        expect(await e.append(S, rows(1, 1), { maxLen: 100 })).toBe(1)
        // The command and the subscriber connections go silent; new connections still get through.
        expect(proxy.silenceOpen()).toBe(2)
        expect(await e.append(S, rows(2, 1), { maxLen: 100 })).toBe(0)
        expect(e.isReady).toBe(false)
        await waitFor('commands answered again', () => e.isReady, 8000)
        expect(await e.append(S, rows(3, 1), { maxLen: 100 })).toBe(1)
        // Published on the command connection, received on the subscriber's: both are new.
        await waitFor(
          'pub/sub delivers again',
          async () => {
            await e.publish('contract:bh', 'after').catch(() => {})
            return got.includes('after')
          },
          8000
        )
        // The silent connections were closed, not left behind: the new command and subscriber ones remain.
        await waitFor('silent connections closed', () => proxy.open === 2)
      } finally {
        await e.close()
        proxy.close()
        await server.stop()
      }
    }
  )

  stoppable(
    `a Redis that keeps the connection but stops answering: commands give up after the timeout, and it is ready again once it answers${testRedisUrl === null ? ' — skipped: this run has no Redis' : hasRedisServer ? '' : ' — skipped: needs the redis-server binary'}`,
    async () => {
      const server = await privateRedis()
      await server.start()
      const e = createRedisEngine({ url: server.url, prefix: uniquePrefix(), log: silentLog, commandTimeoutMs: 200 })
      try {
        await waitFor('ready', () => e.isReady)
        expect(await e.append(S, rows(1, 1), { maxLen: 100 })).toBe(1)
        server.pause()
        expect(await e.append(S, rows(2, 1), { maxLen: 100 })).toBe(0)
        expect(e.isReady).toBe(false)
        // Not ready: nothing more is sent to pile up behind the silent connection.
        expect(await e.append(S, rows(3, 1), { maxLen: 100 })).toBe(0)
        await expect(e.ping()).rejects.toThrow('did not answer')
        server.resume()
        await waitFor('answering again', () => e.isReady, 10_000)
        expect(await e.append(S, rows(4, 1), { maxLen: 100 })).toBe(1)
      } finally {
        server.resume()
        await e.close()
        await server.stop()
      }
    }
  )
})
