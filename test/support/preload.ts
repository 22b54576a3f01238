/** Global hook: a test file that leaves a service running (port, loops, pools) fails. */
import { afterAll, expect } from 'bun:test'
import { live } from './service.ts'

afterAll(async () => {
  const leaked = live.size
  for (const s of [...live]) await s.stop().catch(() => {})
  expect(leaked, 'a test left a service running; call service.stop() in afterAll').toBe(0)
})
