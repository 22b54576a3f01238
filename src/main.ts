/** `bun run start`: serve HTTP and run the background workers until SIGTERM/SIGINT. */
import { loadConfig } from './config.ts'
import { ConfigError } from './errors.ts'
import { createService } from './service.ts'

let config
try {
  config = loadConfig()
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`parcelcast: ${err.message}`)
    process.exit(2)
  }
  throw err
}

const service = createService(config)
try {
  await service.start()
} catch (err) {
  service.log.fatal({ component: 'service', err }, `start-up failed: ${(err as Error).message}`)
  await service.stop().catch(() => {})
  process.exit(1)
}

let stopping = false
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.on(signal, async () => {
    if (stopping) return
    stopping = true
    service.log.info({ component: 'service', signal }, 'shutting down')
    await service.stop()
    process.exit(0)
  })
}
