/**
 * Which PostgreSQL parcelcast uses, decided once at start (contract §7):
 *
 * * `DATABASE=external` (the default when `DATABASE_URL` is set): `DATABASE_URL`, nothing else.
 * * `DATABASE=auto` (the default when it is not): `DATABASE_URL`'s default,
 *   `postgres://postgres@127.0.0.1:5432/postgres`, if a server there lets us in; otherwise the
 *   embedded server (embedded.ts) in `PARCELCAST_DATA_DIR`.
 * * `DATABASE=embedded`: the embedded server, even when a local one answers.
 *
 * The choice is logged (without a password) and shown by `/readyz`.
 */
import type { Config } from '../config.ts'
import type { Logger } from '../log.ts'
import { createSql } from './client.ts'
import { startEmbeddedPostgres, type EmbeddedOptions } from './embedded.ts'

export type DatabaseKind = 'embedded' | 'external'

export interface Database {
  kind: DatabaseKind
  url: string
  /** For logs: `embedded PostgreSQL 18.4 at <dir>, 127.0.0.1:<port>` or `postgres@host:port/db`. */
  label: string
  /** Stops the embedded server; nothing for an external one. */
  stop(): Promise<void>
}

type DatabaseConfig = Pick<Config, 'DATABASE' | 'DATABASE_URL' | 'PARCELCAST_DATA_DIR' | 'PARCELCAST_PG_PORT'>

export async function openDatabase(config: DatabaseConfig, log: Logger, embedded: Partial<EmbeddedOptions> = {}): Promise<Database> {
  const dblog = log.child({ component: 'database' })
  if (config.DATABASE === 'external') return external(config.DATABASE_URL, dblog)
  if (config.DATABASE === 'auto') {
    const refused = await probe(config.DATABASE_URL)
    if (refused === null) return external(config.DATABASE_URL, dblog)
    if (refused.answered) {
      dblog.warn(
        { url: redact(config.DATABASE_URL), reason: refused.reason },
        `the PostgreSQL at ${redact(config.DATABASE_URL)} answers but refused us (${refused.reason}); using the embedded database instead — set DATABASE_URL to use that server`
      )
    } else {
      dblog.info(
        { url: redact(config.DATABASE_URL), reason: refused.reason },
        `no PostgreSQL answers at ${redact(config.DATABASE_URL)} (${refused.reason}); using the embedded database`
      )
    }
  }
  const server = await startEmbeddedPostgres({ dataDir: config.PARCELCAST_DATA_DIR, port: config.PARCELCAST_PG_PORT, log, ...embedded })
  const label = `embedded PostgreSQL ${server.version} at ${server.dir}, 127.0.0.1:${server.port}`
  dblog.info(
    { database: 'embedded', dir: server.dir, port: server.port, initialised: server.initialised },
    `using ${label}${server.initialised ? ' (new)' : ' (kept from an earlier run)'}`
  )
  return { kind: 'embedded', url: server.url, label, stop: server.stop }
}

function external(url: string, log: Logger): Database {
  const label = redact(url)
  log.info({ database: 'external', url: label }, `using external PostgreSQL ${label}`)
  return { kind: 'external', url, label, stop: async () => {} }
}

/**
 * null when a server at `url` lets us in and answers a query; otherwise why not, and whether
 * anything answered at all (refused login, unknown database) or nothing did (refused, timed out).
 */
export async function probe(url: string, timeoutSeconds = 3): Promise<{ answered: boolean; reason: string } | null> {
  const sql = createSql(url, { max: 1, connectTimeoutSeconds: timeoutSeconds })
  try {
    await sql`select 1`
    return null
  } catch (err) {
    const e = err as { code?: string; message?: string }
    const answered = typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code)
    return { answered, reason: e.message || e.code || String(err) }
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {})
  }
}

/** `user@host:port/db`: never the password. */
export function redact(url: string): string {
  const u = new URL(url)
  return `${decodeURIComponent(u.username) || 'postgres'}@${u.hostname}:${u.port || 5432}${u.pathname}`
}
