/**
 * Each test file gets its own database on the shared PostgreSQL server, migrated from sql/,
 * dropped at the end. The server comes from TEST_DATABASE_URL or DATABASE_URL (CI points it
 * at a fresh database), else the local default if it answers, else one embedded PostgreSQL
 * started for the whole run in a temporary directory (stopped and removed by the preload).
 */
import { chmod, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DEFAULT_DATABASE_URL } from '../../src/config.ts'
import { createSql, type Sql } from '../../src/db/client.ts'
import { startEmbeddedPostgres, type EmbeddedPostgres } from '../../src/db/embedded.ts'
import { migrate } from '../../src/db/migrate.ts'
import { probe, redact } from '../../src/db/select.ts'
import { createLogger } from '../../src/log.ts'

export const silentLog = createLogger('silent')

let embedded: { server: EmbeddedPostgres; dataDir: string } | null = null

async function serverForTests(): Promise<string> {
  const given = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL
  if (given) return given
  const refused = await probe(DEFAULT_DATABASE_URL)
  if (!refused) return DEFAULT_DATABASE_URL
  const dataDir = await mkdtemp(join(tmpdir(), 'parcelcast-test-'))
  // For root without user namespaces, whose server runs as user postgres (src/db/embedded.ts).
  await chmod(dataDir, 0o755)
  const server = await startEmbeddedPostgres({
    dataDir,
    port: 0,
    log: silentLog,
    // A throwaway cluster: durability off, room for the suite's pools.
    settings: { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off', max_connections: '300' }
  })
  embedded = { server, dataDir }
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => process.exit(130))
  console.error(
    `tests: no PostgreSQL at ${redact(DEFAULT_DATABASE_URL)} (${refused.reason}) and no TEST_DATABASE_URL/DATABASE_URL: running on an embedded PostgreSQL ${server.version}, 127.0.0.1:${server.port}, in ${dataDir} (removed at the end)`
  )
  return server.url
}

export const adminUrl = await serverForTests()

/** Called once, after the last test file (preload): stops and removes the run's embedded server. */
export async function stopTestServer() {
  if (!embedded) return
  const { server, dataDir } = embedded
  embedded = null
  await server.stop()
  await rm(dataDir, { recursive: true, force: true })
}

export function uniqueName(prefix: string): string {
  return `${prefix}_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`
}

export function urlFor(database: string, base = adminUrl): string {
  const u = new URL(base)
  u.pathname = `/${database}`
  return u.toString()
}

export interface TestDb {
  name: string
  url: string
  sql: Sql
  drop(): Promise<void>
}

export async function createTestDb({ migrated = true } = {}): Promise<TestDb> {
  const name = uniqueName('pc_test')
  const admin = createSql(adminUrl, { max: 1 })
  try {
    await admin.unsafe(`create database ${name}`)
  } finally {
    await admin.end()
  }
  const url = urlFor(name)
  const sql = createSql(url, { max: 4 })
  if (migrated) await migrate(sql, silentLog)
  return {
    name,
    url,
    sql,
    async drop() {
      await sql.end({ timeout: 1 })
      const a = createSql(adminUrl, { max: 1 })
      try {
        await a.unsafe(`drop database if exists ${name} with (force)`)
      } finally {
        await a.end()
      }
    }
  }
}
