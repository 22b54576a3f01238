/**
 * The broadcaster on the run's engine (memory or Redis): its group made before anything of a
 * fresh deployment appends, so the fan-out skips none of its entries; a dead consumer's backlog
 * reclaimed in one pass; a batch whose publish failed handed out again at once.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { createBroadcaster, FANOUT_CHANNEL, GROUP, type FanoutMessage } from '../../src/delivery/broadcaster.ts'
import type { Engine } from '../../src/engine/engine.ts'
import { createMemoryEngine } from '../../src/engine/engine-memory.ts'
import { createRedisEngine } from '../../src/engine/engine-redis.ts'
import { createMetrics } from '../../src/metrics.ts'
import { STREAM } from '../../src/pipeline/stream.ts'
import { createTestDb, silentLog, type TestDb } from '../support/db.ts'
import { engineMode, testRedisUrl } from '../support/engine.ts'
import { uniquePrefix } from '../support/redis.ts'
import { api, dropKeys, testService, waitFor } from '../support/service.ts'

setDefaultTimeout(30_000)

let db: TestDb
beforeAll(async () => {
  db = await createTestDb()
})
afterAll(async () => {
  await db.drop()
})

const runEngine = (prefix: string): Engine =>
  engineMode === 'redis' ? createRedisEngine({ url: testRedisUrl!, prefix, log: silentLog, commandTimeoutMs: 500 }) : createMemoryEngine()

/** `inner`, with some of its methods replaced (the rest are its own). */
function replacing(inner: Engine, methods: Partial<Engine>): Engine {
  return new Proxy(inner, {
    get(target, prop) {
      const own = (methods as Record<string | symbol, unknown>)[prop]
      if (own !== undefined) return own
      const v = Reflect.get(target, prop, target)
      return typeof v === 'function' ? v.bind(target) : v
    }
  })
}

/**
 * `inner`, with group creation held back until something is appended (or `holdMs` passed),
 * once `arm()` is called: the order in which a start-up makes the group and appends decides
 * whether the group sees the entry.
 */
function holdingGroupCreation(inner: Engine, holdMs: number) {
  let armed = false
  let release: () => void = () => {}
  const appended = new Promise<void>((r) => (release = r))
  const engine = replacing(inner, {
    async ensureGroup(...args) {
      if (armed) await Promise.race([appended, Bun.sleep(holdMs)])
      return inner.ensureGroup(...args)
    },
    async append(...args) {
      const n = await inner.append(...args)
      if (armed) release()
      return n
    }
  })
  return { engine, arm: () => void (armed = true) }
}

describe('the fan-out group', () => {
  test('is made at start, before the relay or a request appends: the first relay cycle of a fresh deployment is fanned out', async () => {
    const prefix = uniquePrefix()
    const inner = runEngine(prefix)
    const held = holdingGroupCreation(inner, 1500)
    const service = testService({ DATABASE_URL: db.url, REDIS_PREFIX: prefix, OUTBOX_INTERVAL_MS: '50', OUTBOX_GRACE_MS: '0' }, { engine: held.engine })
    const fanned: FanoutMessage[] = []
    const off = inner.subscribe(FANOUT_CHANNEL, (m) => void fanned.push(...(JSON.parse(m) as FanoutMessage[])))
    try {
      await waitFor('the engine', () => inner.isReady)
      const call = api(service)
      const tn = `GRP${Date.now()}`
      await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: tn })
      const ingested = await call('POST', '/v1/events', {
        events: [{ carrier: 'dhl', trackingNumber: tn, carrierStatus: 'PU', status: 'in_transit', occurredAt: '2026-11-20T08:00:00Z' }]
      })
      expect(ingested.status).toBe(200)
      await service.acks.flush()
      // Unpublished, as after a crash before the previous deployment's append: the relay's to send.
      await service.sql`insert into event_outbox (shipment_id, seq) select shipment_id, seq from tracking_events on conflict do nothing`
      held.arm()
      await service.start()
      await waitFor('the relayed event fanned out', () => fanned.some((m) => m.topic === `shipment:dhl:${tn}` && m.seq === 1))
    } finally {
      off()
      await service.stop()
      await inner.close()
    }
  })
})

describe('the broadcaster', () => {
  const entries = (from: number, n: number) =>
    Array.from({ length: n }, (_, i) => ({ topic: 'shipment:dhl:RECLAIM', seq: String(from + i), data: `{"event":{"seq":${from + i}},"shipment":{}}` }))
  /** A fresh engine of the run's kind, its keys dropped afterwards. */
  async function fresh() {
    const prefix = uniquePrefix()
    const engine = runEngine(prefix)
    await waitFor('the engine', () => engine.isReady)
    return {
      engine,
      async close() {
        await engine.close()
        if (engineMode === 'redis') await dropKeys(testRedisUrl!, prefix)
      }
    }
  }
  const broadcaster = (engine: Engine, claimIdleMs: number) =>
    createBroadcaster({ engine, consumer: 'alive', claimIdleMs, log: silentLog, metrics: createMetrics({ defaults: false }), check: () => true })

  test("one claim pass takes a dead consumer's whole backlog, page after page, before the next read", async () => {
    const { engine: inner, close } = await fresh()
    let claimedBeforeRead: number | null = null
    let claimed = 0
    const engine = replacing(inner, {
      async claimIdle(...args) {
        const got = await inner.claimIdle(...args)
        claimed += got.length
        return got
      },
      readGroup(...args) {
        claimedBeforeRead ??= claimed
        return inner.readGroup(...args)
      }
    })
    const b = broadcaster(engine, 100)
    try {
      await inner.ensureGroup(STREAM, GROUP)
      // 2,500 entries (more than XAUTOCLAIM scans in one call at a page of 200) read by a consumer that then died.
      for (let i = 0; i < 5; i++) await inner.append(STREAM, entries(i * 500 + 1, 500), { maxLen: 100_000 })
      expect((await inner.readGroup(STREAM, GROUP, 'dead', { count: 2500, blockMs: 0 })).length).toBe(2500)
      await Bun.sleep(150)
      b.start()
      await waitFor('the first read', () => claimedBeforeRead !== null)
      expect(claimedBeforeRead!).toBe(2500)
      await waitFor('nothing pending', async () => (await inner.groupLag(STREAM, GROUP)).pending === 0)
    } finally {
      await b.stop()
      await close()
    }
  })

  test('a batch whose publish and acknowledgement failed is handed out again at once, not after CLAIM_IDLE_MS', async () => {
    const { engine: inner, close } = await fresh()
    let failures = 1
    const engine = replacing(inner, {
      async publishAndAck(...args) {
        if (failures-- > 0) throw new Error('redis did not answer within 500 ms')
        return inner.publishAndAck(...args)
      }
    })
    const fanned: FanoutMessage[] = []
    const off = inner.subscribe(FANOUT_CHANNEL, (m) => void fanned.push(...(JSON.parse(m) as FanoutMessage[])))
    // Reclaiming after CLAIM_IDLE_MS would take a minute here.
    const b = broadcaster(engine, 60_000)
    try {
      await inner.ensureGroup(STREAM, GROUP)
      b.start()
      await inner.append(STREAM, entries(1, 3), { maxLen: 1000 })
      await waitFor('the batch fanned out', () => fanned.length === 3)
      expect(fanned.map((m) => m.seq)).toEqual([1, 2, 3])
      expect(failures).toBeLessThan(0)
      await waitFor('nothing pending', async () => (await inner.groupLag(STREAM, GROUP)).pending === 0)
    } finally {
      off()
      await b.stop()
      await close()
    }
  })
})
