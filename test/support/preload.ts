/** Global hook: a test file that leaves a service running (port, loops, pools) fails. */
import { afterAll, expect, setDefaultTimeout } from 'bun:test'
import { live } from './service.ts'

// Integration tests start services and stop real servers; 5 s is too tight on 2 cores.
setDefaultTimeout(30_000)

afterAll(async () => {
  const leaked = live.size
  for (const s of [...live]) await s.stop().catch(() => {})
  expect(leaked, 'a test left a service running; call service.stop() in afterAll').toBe(0)
})
