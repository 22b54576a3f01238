/** `bun run migrate`: apply pending migrations and exit. */
import { loadConfig } from '../config.ts'
import { createLogger } from '../log.ts'
import { createSql } from './client.ts'
import { migrate } from './migrate.ts'

const env = { API_KEYS: 'unused-by-migrate', ...process.env }
const config = loadConfig(env)
const log = createLogger(config.LOG_LEVEL)
const sql = createSql(config.DATABASE_URL, { max: 1 })
try {
  const { applied } = await migrate(sql, log)
  log.info({ component: 'migrate', applied: applied.length }, applied.length ? 'migrations applied' : 'database is up to date')
} catch (err) {
  log.error({ component: 'migrate', err }, (err as Error).message)
  process.exitCode = 1
} finally {
  await sql.end({ timeout: 5 })
}
