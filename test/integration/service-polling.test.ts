/** The service polls carriers configured in the environment: a shipment created over the API fills up. */
import { afterAll, beforeAll, expect, test, setDefaultTimeout } from 'bun:test'
import { loadCarrierSetups } from '../../src/carriers/configs.ts'
import { createCarrierSimulator } from '../../src/carriers/simulator.ts'
import { loadConfig } from '../../src/config.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { api, testService, waitFor } from '../support/service.ts'

// Real services, real outages: more than bun's 5 s default, also under a plain `bun test`.
setDefaultTimeout(30_000)

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
  const config = loadConfig({
    API_KEYS: 'a-key-of-length',
    DHL_BASE_URL: `${sim.url}/dhl`,
    DHL_API_KEY: 'sim-dhl-key',
    GLS_CLIENT_SECRET: 'env-secret',
    POLL_BATCH_SIZE: '7'
  })
  const setups = new Map((await loadCarrierSetups(db.sql, config)).map((s) => [s.carrier, s]))
  expect(setups.get('dhl')).toMatchObject({
    enabled: true,
    client: { baseUrl: `${sim.url}/dhl`, apiKey: 'sim-dhl-key' },
    poll: { batchSize: 7, intervalMs: 60000 }
  })
  expect(setups.get('dpd')!.enabled).toBe(false)
  expect(setups.get('gls')).toMatchObject({
    enabled: true,
    client: { baseUrl: 'https://stored.example/gls', clientId: 'stored-id', clientSecret: 'env-secret' }
  })
  await db.sql`update carrier_configs set enabled = false, base_url = null, credentials = '{}' where carrier = 'gls'`
})

test('a shipment created over the API is polled and its journey stored', async () => {
  const service = testService({ DATABASE_URL: db.url, DHL_BASE_URL: `${sim.url}/dhl`, DHL_API_KEY: 'sim-dhl-key', POLL_INTERVAL_MS: '200' })
  try {
    await service.start()
    const call = api(service)
    const created = await call('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: 'POLLME1' })
    const done = await waitFor(
      'the journey',
      async () => {
        const s = await call('GET', `/v1/shipments/${created.body.id}`)
        return s.body.lastSeq === 5 && s.body
      },
      10_000
    )
    expect(done).toMatchObject({ status: 'delivered', carrierStatus: 'delivered' })
  } finally {
    await service.stop()
  }
})

test('two OS processes polling one carrier ask for every shipment exactly once', async () => {
  const { freePort } = await import('../support/redis.ts')
  const { API_KEY, TOKEN_SECRET } = await import('../support/service.ts')
  const twin = createCarrierSimulator({ stepMs: 0, latencyMs: 5 })
  await db.sql`update shipments set status = 'delivered'`
  await db.sql`insert into shipments (carrier, tracking_number) select 'dhl', 'TWINPROC' || g from generate_series(1, 40) g`
  const env = {
    ...process.env,
    DATABASE_URL: db.url,
    API_KEYS: API_KEY,
    TOKEN_SECRET,
    LOG_LEVEL: 'warn',
    MIGRATE_ON_BOOT: 'false',
    DHL_BASE_URL: `${twin.url}/dhl`,
    DHL_API_KEY: 'sim-dhl-key',
    POLL_INTERVAL_MS: '100',
    POLL_BATCH_SIZE: '7'
  }
  const procs = [await freePort(), await freePort()].map((port) =>
    Bun.spawn([process.execPath, `${import.meta.dir}/../../src/main.ts`], { env: { ...env, PORT: String(port) }, stdout: 'inherit', stderr: 'inherit' })
  )
  try {
    await waitFor(
      'every shipment delivered',
      async () => {
        const [r] = await db.sql<{ n: number }[]>`select count(*)::int as n from shipments where tracking_number like 'TWINPROC%' and status = 'delivered'`
        return r!.n === 40
      },
      20_000
    )
    const asked = twin.requests.filter((r) => r.carrier === 'dhl').length
    // Delivered after its first poll (the simulator's journeys end at once), so exactly one call each.
    expect(asked).toBe(40)
  } finally {
    for (const p of procs) p.kill('SIGTERM')
    await Promise.all(procs.map((p) => p.exited))
    twin.stop()
  }
})
