/**
 * Migration runner: numbered, append-only files `sql/NNNNNN_name.sql`, each applied in its own
 * transaction and recorded with its SHA-256 in `schema_migrations`. A session-level advisory
 * lock serialises runners, so several processes booting at once apply each file exactly once.
 * An applied file whose content changed is refused: fix forward with a new file instead.
 */
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { MigrationError } from '../errors.ts'
import type { Sql } from './client.ts'
import type { Logger } from '../log.ts'

// Any fixed bigint; hashed from the name so it does not collide with other advisory locks.
const LOCK_KEY = 7_284_911_003_771_514n

export interface MigrationFile {
  version: number
  name: string
  checksum: string
  text: string
}

export async function readMigrations(dir: string): Promise<MigrationFile[]> {
  const names = (await readdir(dir)).filter((n) => n.endsWith('.sql')).sort()
  const files: MigrationFile[] = []
  for (const name of names) {
    const m = /^(\d{6})_[a-z0-9_]+\.sql$/.exec(name)
    if (!m) throw new MigrationError(`migration file ${name} must be named NNNNNN_lowercase_name.sql`)
    const text = await Bun.file(join(dir, name)).text()
    const version = Number(m[1])
    if (files.at(-1)?.version === version) throw new MigrationError(`two migration files share version ${m[1]}`)
    files.push({ version, name, text, checksum: new Bun.CryptoHasher('sha256').update(text).digest('hex') })
  }
  return files
}

export const defaultMigrationsDir = join(import.meta.dir, '..', '..', 'sql')

export async function migrate(sql: Sql, log: Logger, dir = defaultMigrationsDir): Promise<{ applied: string[] }> {
  const files = await readMigrations(dir)
  const conn = await sql.reserve()
  const applied: string[] = []
  try {
    // Must come first: the table itself is created under the lock, so two runners cannot
    // race on `create table if not exists`.
    await conn`select pg_advisory_lock(${LOCK_KEY.toString()}::bigint)`
    await conn`
      create table if not exists schema_migrations (
        version int primary key,
        name text not null,
        checksum text not null,
        applied_at timestamptz not null default now()
      )`
    const rows = await conn<{ version: number; name: string; checksum: string }[]>`select version, name, checksum from schema_migrations order by version`
    const done = new Map(rows.map((r) => [r.version, r]))
    for (const file of files) {
      const prior = done.get(file.version)
      if (prior) {
        if (prior.checksum !== file.checksum) {
          throw new MigrationError(
            `migration ${file.name} was edited after it was applied (recorded checksum ${prior.checksum.slice(0, 12)}…, file has ${file.checksum.slice(0, 12)}…); ` +
              'migrations are append-only: restore the file and add a new one'
          )
        }
        continue
      }
      try {
        await conn.unsafe('begin')
        await conn.unsafe(file.text)
        await conn`insert into schema_migrations (version, name, checksum) values (${file.version}, ${file.name}, ${file.checksum})`
        await conn.unsafe('commit')
      } catch (err) {
        await conn.unsafe('rollback').catch(() => {})
        throw new MigrationError(`migration ${file.name} failed and was rolled back: ${(err as Error).message}`, err)
      }
      applied.push(file.name)
      log.info({ component: 'migrate', migration: file.name }, 'migration applied')
    }
    const unknown = rows.filter((r) => !files.some((f) => f.version === r.version))
    for (const r of unknown) log.warn({ component: 'migrate', migration: r.name }, 'database has a migration this code does not know (newer code ran here?)')
    return { applied }
  } finally {
    await conn`select pg_advisory_unlock(${LOCK_KEY.toString()}::bigint)`.catch(() => {})
    conn.release()
  }
}
