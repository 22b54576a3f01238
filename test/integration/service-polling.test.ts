/** The service polls carriers configured in the environment: a shipment created over the API fills up. */
import { afterAll, beforeAll, expect, test } from 'bun:test'
import { loadCarrierSetups } from '../../src/carriers/configs.ts'
import { createCarrierSimulator } from '../../src/carriers/simulator.ts'
import { loadConfig } from '../../src/config.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { api, testService, waitFor } from '../support/service.ts'

let db: TestDb
const sim = createCarrierSimulator({ stepMs: 0 })
beforeAll(async () => {
  db = await createTestDb()
})
afterAll(async () => {
  sim.stop()
  await db.drop()
})

test('environment overrides the stored carrier configs; a base URL enables polling', async () => {
  await db.sql`update carrier_configs set enabled = true, base_url = 'https://stored.example/gls', credentials = '{"clientId":"stored-id","clientSecret":"stored-secret"}' where carrier = 'gls'`
  const config = loadConfig({ API_KEYS: 'a-key-of-length', DHL_BASE_URL: `${sim.url}/dhl`, DHL_API_KEY: 'sim-dhl-key', GLS_CLIENT_SECRET: 'env-secret', POLL_BATCH_SIZE: '7' })
  const setups = new Map((await loadCarrierSetups(db.sql, config)).map((s) => [s.carrier, s]))
  expect(setups.get('dhl')).toMatchObject({ enabled: true, client: { baseUrl: `${sim.url}/dhl`, apiKey: 'sim-dhl-key' }, poll: { batchSize: 7, intervalMs: 60000 } })
  expect(setups.get('dpd')!.enabled).toBe(false)
  expect(setups.get('gls')).toMatchObject({ enabled: true, client: { baseUrl: 'https://stored.example/gls', clientId: 'stored-id', clientSecret: 'env-secret' } })
  await db.sql`update carrier_configs set enabled = false, base_url = null, credentials = '{}' where carrier = 'gls'`
})

test('a shipment created over the API is polled and its journey stored', async () => {
  const service = testService({ DATABASE_URL: db.url, DHL_BASE_URL: `${sim.url}/dhl`, DHL_API_KEY: 'sim-dhl-key', POLL_INTERVAL_MS: '200' })
  try {
    await service.start()
    const call = api(service)
    const created = await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: 'POLLME1' })
    const done = await waitFor('the journey', async () => {
      const s = await call('GET', `/v1/shipments/${created.body.id}`)
      return s.body.lastSeq === 5 && s.body
    }, 10_000)
    expect(done).toMatchObject({ status: 'delivered', carrierStatus: 'delivered' })
  } finally {
    await service.stop()
  }
})
