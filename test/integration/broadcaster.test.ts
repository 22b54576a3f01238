/**
 * The broadcaster's group on the run's engine (memory or Redis): made before anything of a
 * fresh deployment appends, so the fan-out skips none of its entries.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from 'bun:test'
import { FANOUT_CHANNEL, type FanoutMessage } from '../../src/delivery/broadcaster.ts'
import type { Engine } from '../../src/engine/engine.ts'
import { createMemoryEngine } from '../../src/engine/engine-memory.ts'
import { createRedisEngine } from '../../src/engine/engine-redis.ts'
import { createTestDb, silentLog, type TestDb } from '../support/db.ts'
import { engineMode, testRedisUrl } from '../support/engine.ts'
import { uniquePrefix } from '../support/redis.ts'
import { api, testService, waitFor } from '../support/service.ts'

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

/**
 * `inner`, with group creation held back until something is appended (or `holdMs` passed),
 * once `arm()` is called: the order in which a start-up makes the group and appends decides
 * whether the group sees the entry.
 */
function holdingGroupCreation(inner: Engine, holdMs: number) {
  let armed = false
  let release: () => void = () => {}
  const appended = new Promise<void>((r) => (release = r))
  const engine = new Proxy(inner, {
    get(target, prop) {
      if (prop === 'ensureGroup') {
        return async (...args: Parameters<Engine['ensureGroup']>) => {
          if (armed) await Promise.race([appended, Bun.sleep(holdMs)])
          return target.ensureGroup(...args)
        }
      }
      if (prop === 'append') {
        return async (...args: Parameters<Engine['append']>) => {
          const n = await target.append(...args)
          if (armed) release()
          return n
        }
      }
      const v = Reflect.get(target, prop, target)
      return typeof v === 'function' ? v.bind(target) : v
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
      const ingested = await call('POST', '/v1/events', { events: [{ carrier: 'dhl', trackingNumber: tn, carrierStatus: 'PU', status: 'in_transit', occurredAt: '2026-11-20T08:00:00Z' }] })
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
