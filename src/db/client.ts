/**
 * The PostgreSQL client (postgres.js). Instants never become a JS `Date` here: a `Date`
 * drops microseconds, and PostgreSQL keeps them. Timestamps travel as text in both
 * directions; queries format them for the wire with `iso_utc()` (see sql/000001_init.sql).
 */
import postgres from 'postgres'

export type Sql = postgres.Sql<Record<string, never>>
/** A transaction's handle (`sql.begin`): queries like Sql's, without pool-wide operations. */
export type Tx = postgres.TransactionSql<Record<string, never>>

export interface DbOptions {
  max?: number
  connectTimeoutSeconds?: number
  onnotice?: (notice: postgres.Notice) => void
  /** Session settings sent when each connection starts (`sessionTimeouts`). */
  settings?: Record<string, string>
}

/**
 * A deadline as the server's own session settings: a statement gives up after `ms` (even one
 * waiting for a lock), and so does a transaction left idle that long (guarded.ts says why).
 */
export const sessionTimeouts = (ms: number) => ({ statement_timeout: String(ms), idle_in_transaction_session_timeout: String(ms) })

export function createSql(url: string, opts: DbOptions = {}): Sql {
  return postgres(url, {
    max: opts.max ?? 10,
    connect_timeout: opts.connectTimeoutSeconds ?? 5,
    idle_timeout: 60,
    onnotice: opts.onnotice ?? (() => {}),
    connection: { TimeZone: 'UTC', application_name: 'parcelcast', ...opts.settings },
    types: {
      // Overrides postgres.js' built-in `date` type (timestamp, timestamptz, date → Date).
      date: { to: 1184, from: [1082, 1114, 1184], serialize: (x: string) => x, parse: (x: string) => x }
    }
  }) as unknown as Sql
}
