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
