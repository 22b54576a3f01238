/**
 * `bun run start`: pick the database (src/db/select.ts; it may start the embedded one) and the
 * delivery engine (src/engine/select.ts), serve
 * HTTP and run the background workers until SIGTERM/SIGINT/SIGHUP; then stop the service, and the
 * database last. A signal during start-up waits for start-up to settle, then stops the same way.
 */
import { type Config, loadConfig } from './config.ts'
import { openDatabase, type Database } from './db/select.ts'
import { ConfigError } from './errors.ts'
import { chooseEngine } from './engine/select.ts'
import { createLogger } from './log.ts'
import { createService, type Service } from './service.ts'

let config: Config
try {
  config = loadConfig()
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(`parcelcast: ${err.message}`)
    process.exit(2)
  }
  throw err
}
const log = createLogger(config.LOG_LEVEL)

let database: Database | null = null
let service: Service | null = null
let stopping: Promise<never> | null = null
const starting = (async () => {
  // The delivery engine's probe (ENGINE=auto, REDIS_URL unset) runs while the database is found.
  const [db, engineChoice] = await Promise.all([openDatabase(config, log), chooseEngine(config)])
  database = db
  if (stopping) return
  service = createService({ ...config, DATABASE_URL: database.url }, { log, database: database.kind, engineChoice })
  await service.start()
})()

const shutdown = (code: number) =>
  (stopping ??= (async () => {
    await starting.catch(() => {})
    await service?.stop().catch((err) => log.error({ component: 'service', err }, `stopping the service failed: ${(err as Error).message}`))
    await database?.stop().catch((err) => log.error({ component: 'database', err }, `stopping the database failed: ${(err as Error).message}`))
    process.exit(code)
  })())

// SIGHUP too: a closed terminal must not leave the embedded database behind.
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
  process.on(signal, () => {
    if (!stopping) log.info({ component: 'service', signal }, 'shutting down')
    void shutdown(0)
  })
}

try {
  await starting
} catch (err) {
  log.fatal({ component: 'service', err }, `start-up failed: ${(err as Error).message}`)
  await shutdown(1)
}
