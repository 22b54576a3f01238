/** `bun run migrate`: apply pending migrations and exit (on the database `bun run start` would use). */
import { loadConfig } from '../config.ts'
import { createLogger } from '../log.ts'
import { createSql } from './client.ts'
import { migrate } from './migrate.ts'
import { openDatabase } from './select.ts'

const env = { API_KEYS: 'unused-by-migrate', ...process.env }
const config = loadConfig(env)
const log = createLogger(config.LOG_LEVEL)
// Exiting (not dying of the signal) lets an embedded server started here be told to stop.
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => process.exit(130))
try {
  const database = await openDatabase(config, log)
  const sql = createSql(database.url, { max: 1 })
  try {
    const { applied } = await migrate(sql, log)
    log.info({ component: 'migrate', applied: applied.length }, applied.length ? 'migrations applied' : 'database is up to date')
  } finally {
    await sql.end({ timeout: 5 })
    await database.stop()
  }
} catch (err) {
  log.error({ component: 'migrate', err }, (err as Error).message)
  process.exitCode = 1
}
