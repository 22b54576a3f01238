/**
 * Every error leaves as `{ "error": { "code", "message", "field"? } }` with a 4xx or 503;
 * a 500 means a bug: it is logged with its stack under a request id, and the answer says
 * nothing of the internals but that id (in the body and in `x-request-id`).
 */
import { randomUUID } from 'node:crypto'
import { AppError, isDatabaseUnavailable, DatabaseUnavailableError } from '../errors.ts'
import type { Logger } from '../log.ts'

export function errorBody(code: string, message: string, extra: Record<string, unknown> = {}) {
  return { error: { code, message, ...extra } }
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json; charset=utf-8', ...headers } })
}

/** `/events/0/carrier` → `events[0].carrier` */
export function fieldFromPath(path: string | undefined, fallback: string): string {
  if (!path || path === '/') return fallback
  return path
    .split('/')
    .filter(Boolean)
    .map((p, i) => (/^\d+$/.test(p) ? `[${p}]` : i === 0 ? p : `.${p}`))
    .join('')
}

interface ElysiaValidation {
  type: string
  valueError?: { path: string; message: string; value?: unknown; schema?: Schema }
}

interface Schema {
  type?: string
  format?: string
  minimum?: number
  maximum?: number
  minLength?: number
  maxLength?: number
  minItems?: number
  maxItems?: number
  enum?: unknown[]
  const?: unknown
  anyOf?: Schema[]
}

/**
 * What a value must be, in words, for the unions TypeBox reports only as "Expected union value"
 * (Elysia makes every numeric body field a union with its numeric-string form, and nullable
 * fields are unions with null): `must be an integer from 1 to 86400`, `must be a string of at
 * most 128 characters or null`. Null when the schema says nothing a caller could act on.
 */
export function describeSchema(schema: Schema | undefined): string | null {
  if (!schema) return null
  if (schema.anyOf) {
    // The numeric-string twin Elysia adds says the same as the number it stands for.
    const members = schema.anyOf.filter((m) => !(m.type === 'string' && (m.format === 'integer' || m.format === 'numeric')) || schema.anyOf!.length === 1)
    const parts = [...new Set(members.map((m) => describeSchema({ ...m, minimum: m.minimum ?? schema.minimum, maximum: m.maximum ?? schema.maximum })))]
    if (parts.some((p) => p === null)) return null
    return `must be ${parts.map((p) => p!.replace(/^must be /, '')).join(' or ')}`
  }
  const range = (min?: number, max?: number) =>
    min !== undefined && max !== undefined
      ? ` from ${min} to ${max}`
      : min !== undefined
        ? ` of at least ${min}`
        : max !== undefined
          ? ` of at most ${max}`
          : ''
  const size = (min: number | undefined, max: number | undefined, unit: string) =>
    min !== undefined && min > 0 && max !== undefined
      ? ` of ${min} to ${max} ${unit}`
      : max !== undefined
        ? ` of at most ${max} ${unit}`
        : min !== undefined && min > 0
          ? ` of at least ${min} ${unit}`
          : ''
  switch (schema.type) {
    case 'null':
      return 'must be null'
    case 'integer':
      return `must be an integer${range(schema.minimum, schema.maximum)}`
    case 'number':
      return `must be a number${range(schema.minimum, schema.maximum)}`
    case 'boolean':
      return 'must be true or false'
    case 'string':
      if (schema.enum) return `must be one of ${schema.enum.map((e) => JSON.stringify(e)).join(', ')}`
      if (schema.const !== undefined) return `must be ${JSON.stringify(schema.const)}`
      return `must be a string${size(schema.minLength, schema.maxLength, 'characters')}`
    case 'array':
      return `must be an array${size(schema.minItems, schema.maxItems, 'items')}`
    case 'object':
      return 'must be an object'
    default:
      return null
  }
}

/** The answer to an error nobody expected: logged with its stack, answered with an id and nothing else. */
export function internalError(log: Logger, err: unknown, where: Record<string, unknown> = {}): Response {
  const requestId = randomUUID()
  log.error({ component: 'http', requestId, ...where, err }, 'unhandled error')
  return json(500, errorBody('internal', `internal error; it has been logged with request id ${requestId}`, { requestId }), { 'x-request-id': requestId })
}

export function toErrorResponse(code: string | number, error: unknown, log: Logger, request?: Request): Response {
  if (error instanceof AppError) {
    if (error.status >= 500) log.warn({ component: 'http', code: error.code, err: error.message }, 'request failed')
    return json(error.status, errorBody(error.code, error.message, error.field ? { field: error.field } : {}), error.retryable ? { 'retry-after': '1' } : {})
  }
  if (isDatabaseUnavailable(error)) return toErrorResponse(code, new DatabaseUnavailableError(error), log)
  switch (code) {
    case 'VALIDATION': {
      const v = error as ElysiaValidation
      const field = fieldFromPath(v.valueError?.path, v.type)
      const e = v.valueError
      const message =
        e?.value === undefined && e?.path
          ? 'is required'
          : e?.message === 'Expected union value'
            ? (describeSchema(e.schema) ?? e.message)
            : (e?.message ?? 'is invalid')
      return json(400, errorBody('validation_failed', `${field}: ${message}`, { field }))
    }
    case 'PARSE': {
      // Our body parser (json-body.ts) throws AppErrors; Elysia wraps whatever a parser throws.
      const cause = (error as Error).cause
      if (cause instanceof AppError) return toErrorResponse(code, cause, log)
      return json(400, errorBody('invalid_body', 'the request body is not valid JSON'))
    }
    case 'NOT_FOUND':
      return json(404, errorBody('not_found', 'no such route'))
    case 'INVALID_COOKIE_SIGNATURE':
    case 'INVALID_FILE_TYPE':
      return json(400, errorBody('invalid_body', (error as Error).message))
  }
  // `status(4xx)` thrown by Elysia itself (never by our routes).
  if (typeof code === 'number' && code >= 400 && code < 500) return json(code, errorBody('bad_request', 'the request was refused'))
  return internalError(log, error, request ? { method: request.method, path: pathOf(request.url) } : {})
}

// The path only: a query may carry a cursor or a token.
function pathOf(url: string): string {
  try {
    return new URL(url).pathname
  } catch {
    return url.split('?')[0]!
  }
}
