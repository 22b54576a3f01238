/**
 * The few error types of parcelcast. Each carries a stable `code`, the HTTP `status` it maps
 * to where it reaches a client, and whether retrying the same call may succeed.
 */
export class AppError extends Error {
  readonly code: string
  readonly status: number
  readonly retryable: boolean
  readonly field?: string

  constructor(code: string, message: string, opts: { status?: number; retryable?: boolean; field?: string; cause?: unknown } = {}) {
    super(message, { cause: opts.cause })
    this.name = new.target.name
    this.code = code
    this.status = opts.status ?? 500
    this.retryable = opts.retryable ?? false
    if (opts.field) this.field = opts.field
  }
}

export class ConfigError extends AppError {
  constructor(message: string) {
    super('invalid_configuration', message)
  }
}

export class ValidationError extends AppError {
  constructor(field: string, message: string) {
    super('validation_failed', `${field}: ${message}`, { status: 400, field })
  }
}

export class NotFoundError extends AppError {
  constructor(message: string) {
    super('not_found', message, { status: 404 })
  }
}

export class DatabaseUnavailableError extends AppError {
  constructor(cause: unknown) {
    super('database_unavailable', `${unavailableWhy(cause)}; nothing was stored, retry later`, { status: 503, retryable: true, cause })
  }
}

/** What kept the database from doing it, in words that name no table or query. */
function unavailableWhy(cause: unknown): string {
  const { code, message } = (cause ?? {}) as { code?: unknown; message?: unknown }
  if (cause instanceof DeadlineError) return String(message)
  if (typeof code !== 'string') return 'the database cannot be reached'
  const sqlstate = /^[0-9A-Z]{5}$/.test(code) ? ` (SQLSTATE ${code})` : ''
  if (networkCodes.has(code) || code.startsWith('08')) return 'the database cannot be reached'
  if (code === '57014') return `a statement was cancelled or ran past its time limit${sqlstate}`
  if (code === '55P03' || code === '55006') return `a lock was not granted in time${sqlstate}`
  if (code === '25P03' || code === '25P04' || code === '57P05') return `the database ended the session after a timeout${sqlstate}`
  if (/^57P0[123]$/.test(code)) return `the database is shutting down or restarting${sqlstate}`
  if (code.startsWith('53')) return `the database is out of disk, memory or connections${sqlstate}`
  if (code === '25006') return `the database is read-only for now${sqlstate}`
  if (code === '55000' || code === '3D000' || code.startsWith('28')) return `the database refused the connection${sqlstate}`
  return `the database could not do this now${sqlstate}`
}

/**
 * A database call that did not finish within its deadline (INGEST_TIMEOUT_MS): its connection was
 * destroyed, so the transaction never commits after this error (unless its COMMIT had already
 * reached the server: see docs/ARCHITECTURE.md).
 */
export class DeadlineError extends Error {
  readonly code = 'DEADLINE'
  constructor(what: string, ms: number) {
    super(`${what} did not finish within ${ms} ms; its connection was closed`)
    this.name = 'DeadlineError'
  }
}

/** A serialization failure or deadlock that persisted through every retry: nothing was stored; retry shortly. */
export class ConflictError extends AppError {
  constructor(cause: unknown) {
    super('database_conflict', 'the transaction kept conflicting with concurrent work; nothing was stored, retry shortly', {
      status: 503,
      retryable: true,
      cause
    })
  }
}

/** The ingest queue is full (group-commit.ts): nothing of the call was stored; retry shortly. */
export class OverloadedError extends AppError {
  constructor(queued: number) {
    super('overloaded', `ingestion is behind (${queued} events waiting for the database); nothing was stored, retry shortly`, { status: 503, retryable: true })
  }
}

/**
 * The delivery side has too much waiting (shipment reads in lookup-batcher.ts, socket work in
 * slices.ts): refused at once rather than queued without bound; the client tries again shortly.
 */
export class BusyError extends AppError {
  constructor(what: string, waiting: number) {
    super('unavailable', `the server is busy (${waiting} ${what} waiting); try again shortly`, { status: 503, retryable: true })
  }
}

export class MigrationError extends AppError {
  constructor(message: string, cause?: unknown) {
    super('migration_failed', message, { cause })
  }
}

const networkCodes = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
  'CONNECT_TIMEOUT',
  // A call past its deadline: its connection was destroyed (DeadlineError).
  'DEADLINE'
])

/**
 * SQLSTATEs that say "the database could not do it now" of a request that may well succeed if
 * sent again: a statement cancelled (57014: statement_timeout, pg_cancel_backend), a lock not
 * granted in time (55P03) or held by a session using the object (55006), a session ended by its
 * idle or transaction timeout (25P03, 25P04, 57P05), a server read-only for now (25006: a standby
 * after a failover), an outcome the server could not confirm (40003), and the classes 08
 * (connection), 53 (resources), 57 (operator intervention: shutdown, crash recovery) and 58
 * (system: I/O errors). Also what a server answers a new connection it will not take: 3D000 (no
 * such database), class 28 (authentication refused) and, of 55000 (object not in prerequisite
 * state, which queries raise for mistakes too), only a database not accepting connections now
 * (`ALLOW_CONNECTIONS false`) — to the caller, as unavailable as a server that is down.
 */
const notNowCodes = new Set(['57014', '55P03', '55006', '25P03', '25P04', '57P05', '25006', '40003', '3D000'])
// PostgreSQL's own words (lc_messages C or English, as the server's log is usually kept).
const refusesConnections = (err: unknown) => /not currently accepting connections/.test(String((err as { message?: unknown }).message))

/**
 * True when a postgres.js error means "the database cannot do this right now" rather than
 * "this query is wrong": network failures and the SQLSTATEs above. Such a request is answered
 * 503 `database_unavailable` (retryable), never a 500.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return false
  return networkCodes.has(code) || notNowCodes.has(code) || /^(?:08|28|53|57|58)/.test(code) || (code === '55000' && refusesConnections(err))
}

/**
 * The connection itself is gone (network, SQLSTATE class 08, a session the server ended:
 * shutdown, crash recovery, an idle or transaction timeout): nothing more can be sent on it.
 */
export function isConnectionLost(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return false
  return networkCodes.has(code) || code.startsWith('08') || /^57P0[1235]$/.test(code) || code === '25P03' || code === '25P04'
}

/** 40001 serialization_failure, 40P01 deadlock_detected: the same transaction again may succeed. */
export function isSerializationFailure(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return code === '40001' || code === '40P01'
}

/**
 * PostgreSQL refused the data rather than the request: SQLSTATE class 22 (data exception: bad
 * text, a date out of range), 23 (a constraint), 54 (a program limit such as stack depth).
 * The same statement without the offending rows would succeed.
 */
export function isDataError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^(?:22|23|54)[0-9A-Z]{3}$/.test(code)
}

/** The embedded PostgreSQL (src/db/embedded.ts) could not start; the message says why and what to do. */
export class EmbeddedDatabaseError extends AppError {
  constructor(message: string, cause?: unknown) {
    super('embedded_database_failed', message, { cause })
  }
}
