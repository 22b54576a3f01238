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
    super('database_unavailable', 'the database cannot be reached; nothing was stored, retry later', { status: 503, retryable: true, cause })
  }
}

/** A serialization failure or deadlock that persisted through every retry: nothing was stored; retry shortly. */
export class ConflictError extends AppError {
  constructor(cause: unknown) {
    super('database_conflict', 'the transaction kept conflicting with concurrent work; nothing was stored, retry shortly', { status: 503, retryable: true, cause })
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
  'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN',
  'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECTION_DESTROYED', 'CONNECT_TIMEOUT'
])

/**
 * True when a postgres.js error means "the database is not there right now" rather than
 * "this query is wrong": network failures, SQLSTATE class 08 (connection), 53 (resources)
 * and 57P01-57P03 (shutdown, crash recovery).
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return false
  return networkCodes.has(code) || code.startsWith('08') || code.startsWith('53') || /^57P0[123]$/.test(code)
}

/** The connection itself is gone (network, SQLSTATE class 08, shutdown): nothing more can be sent on it. */
export function isConnectionLost(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  if (typeof code !== 'string') return false
  return networkCodes.has(code) || code.startsWith('08') || /^57P0[123]$/.test(code)
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
