/**
 * Global hooks: the run's engine said once; a test file that leaves a service running (port,
 * loops, pools) fails; after the last file, the run's embedded PostgreSQL (if one was needed, see
 * db.ts) is stopped and removed.
 */
import { afterAll, expect } from 'bun:test'
import { stopTestServer } from './db.ts'
import { sayEngine } from './engine.ts'
import { live } from './service.ts'

sayEngine()

afterAll(async () => {
  const leaked = live.size
  for (const s of [...live]) await s.stop().catch(() => {})
  await stopTestServer()
  expect(leaked, 'a test left a service running; call service.stop() in afterAll').toBe(0)
})
