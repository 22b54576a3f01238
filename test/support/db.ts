/**
 * Each test file gets its own database on the shared PostgreSQL server, migrated from sql/,
 * dropped at the end. The server comes from TEST_DATABASE_URL or DATABASE_URL (CI points it
 * at a fresh database), else the local default.
 */
import { createSql, type Sql } from '../../src/db/client.ts'
import { migrate } from '../../src/db/migrate.ts'
import { createLogger } from '../../src/log.ts'

export const adminUrl = process.env.TEST_DATABASE_URL ?? process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'

export const silentLog = createLogger('silent')

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
    name, url, sql,
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
