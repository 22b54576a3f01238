/**
 * The PostgreSQL client (postgres.js). Instants never become a JS `Date` here: a `Date`
 * drops microseconds, and PostgreSQL keeps them. Timestamps travel as text in both
 * directions; queries format them for the wire with `iso_utc()` (see sql/000001_init.sql).
 */
import postgres from 'postgres'

export type Sql = postgres.Sql<{}>
/** A transaction's handle (`sql.begin`): queries like Sql's, without pool-wide operations. */
export type Tx = postgres.TransactionSql<{}>

export interface DbOptions {
  max?: number
  connectTimeoutSeconds?: number
  onnotice?: (notice: postgres.Notice) => void
}

export function createSql(url: string, opts: DbOptions = {}): Sql {
  return postgres(url, {
    max: opts.max ?? 10,
    connect_timeout: opts.connectTimeoutSeconds ?? 5,
    idle_timeout: 60,
    onnotice: opts.onnotice ?? (() => {}),
    connection: { TimeZone: 'UTC', application_name: 'parcelcast' },
    types: {
      // Overrides postgres.js' built-in `date` type (timestamp, timestamptz, date → Date).
      date: { to: 1184, from: [1082, 1114, 1184], serialize: (x: string) => x, parse: (x: string) => x }
    }
  }) as unknown as Sql
}
