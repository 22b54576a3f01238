/**
 * The OpenAPI 3.1 document, built from the app's own routes so that no route can be missing:
 * each operation's parameters and request body come from the TypeBox schemas the route
 * validates with, its answers from RESPONSES below (a route missing there is a failing test,
 * test/integration/pages-documents.test.ts), its errors from the rules of src/http/errors.ts,
 * and its security from the same `needsApiKey` that app.ts enforces.
 *
 * @elysiajs/openapi made the document before; it left every response out and every request
 * body empty (the routes parse JSON with their own parser), and its /docs page loaded Scalar
 * from a CDN, so it is not used.
 */
import { MAX_EVENTS_PER_REQUEST } from '../http/routes/events.ts'
import { WS_PATH } from '../http/server.ts'
import { int, listOf, nullable, obj, ref, schemas, str, type Schema } from './schemas.ts'

export interface RouteInfo {
  method: string
  path: string
  hooks?: { body?: unknown; query?: unknown; detail?: { summary?: string; description?: string; tags?: string[]; hide?: boolean } }
}

type Answers = Record<string, { description: string; schema?: Schema; type?: string }>
type Doc = { body?: { schema: Schema; description?: string; type?: string }; answers: Answers; errors?: number[]; parameters?: Record<string, unknown>[] }

const json = (description: string, schema?: Schema) => ({ description, schema })
const html = (description: string) => ({ description, type: 'text/html; charset=utf-8', schema: { type: 'string' } })
const ok = (schema: Schema, description = 'OK') => ({ 200: json(description, schema) })

/** What each operation answers when it succeeds (and the errors particular to it). */
export const RESPONSES: Record<string, Doc> = {
  'GET /': { answers: { 200: html('the dashboard page; its script and stylesheet come from /assets') } },
  'GET /docs': { answers: { 200: html('the reference page; its script and stylesheet come from /assets') } },
  'GET /openapi.json': { answers: ok({ type: 'object', description: 'an OpenAPI 3.1 document' }) },
  'GET /openapi': { answers: ok({ type: 'object', description: 'an OpenAPI 3.1 document' }) },
  'GET /asyncapi.json': { answers: ok({ type: 'object', description: 'an AsyncAPI 3.0 document' }) },
  'GET /t/{trackingNumber}': {
    parameters: [
      { name: 'token', in: 'query', required: true, schema: { type: 'string' }, description: "the link's token: it must grant exactly this parcel" }
    ],
    answers: {
      200: html('the tracking page; it reads the parcel through the token over /v1/ws'),
      403: html('no token, or one that is expired, not valid or not for this parcel: a page saying so, without data'),
      404: html('no such parcel, or no longer tracked: a page saying so')
    }
  },
  'GET /healthz': { answers: ok(obj({ status: { const: 'ok' } }), 'the process is alive') },
  'GET /readyz': { answers: { 200: json('ready or degraded', ref('Readiness')), 503: json('not ready: the database or ingest is down', ref('Readiness')) } },
  'GET /metrics': { answers: { 200: { description: 'Prometheus text format', type: 'text/plain; version=0.0.4', schema: { type: 'string' } } } },
  'POST /v1/webhooks/{carrier}': {
    body: { schema: { type: 'object' }, description: "the carrier's own push payload, signed with X-Signature: sha256=<hex HMAC-SHA256 of the raw body>" },
    answers: ok(obj({ results: { type: 'array', items: ref('EventResult') }, unreadable: { type: 'array', items: { type: 'object' } } }, ['results'])),
    errors: [401, 404]
  },
  'POST /v1/shipments': { answers: { 201: json('created', ref('Shipment')), 200: json('it existed already', ref('Shipment')) }, errors: [422] },
  'GET /v1/shipments': { answers: ok(listOf(ref('Shipment'))) },
  'GET /v1/shipments/{id}': { answers: ok(ref('Shipment')), errors: [404] },
  'DELETE /v1/shipments/{id}': { answers: ok(ref('Shipment'), 'soft-deleted: polling stops, history stays'), errors: [404] },
  'GET /v1/shipments/{id}/events': {
    answers: ok(obj({ items: { type: 'array', items: ref('TimelineEvent') }, lastSeq: int(), nextAfter: nullable({ type: 'integer' }) })),
    errors: [404]
  },
  'POST /v1/shipments/{id}/tracking-link': {
    body: { schema: obj({ ttlSeconds: { type: 'integer', minimum: 1, maximum: 86_400, description: 'default 86400 (a day)' } }, []) },
    answers: { 201: json('a link for the recipient: open it in a browser', ref('TrackingLink')) },
    errors: [400, 404]
  },
  'GET /v1/carriers': { answers: ok(obj({ items: { type: 'array', items: ref('Carrier') } })) },
  'PUT /v1/carriers/{code}': { answers: { 201: json('registered', ref('Carrier')), 200: json('renamed', ref('Carrier')) }, errors: [409, 422] },
  'POST /v1/events': {
    body: { schema: obj({ events: { type: 'array', minItems: 1, maxItems: MAX_EVENTS_PER_REQUEST, items: ref('EventInput') } }) },
    answers: ok(obj({ results: { type: 'array', items: ref('EventResult') } }), 'per-event outcomes, in the order sent')
  },
  'POST /v1/tokens': { answers: { 201: json('minted', ref('Token')) } },
  'POST /v1/webhook-endpoints': { answers: { 201: json('created; its secret is shown here', ref('WebhookEndpoint')) }, errors: [422] },
  'GET /v1/webhook-endpoints': { answers: ok(listOf(ref('WebhookEndpoint'))) },
  'GET /v1/webhook-endpoints/{id}': { answers: ok(ref('WebhookEndpoint')), errors: [404] },
  'PATCH /v1/webhook-endpoints/{id}': { answers: ok(ref('WebhookEndpoint')), errors: [404, 422] },
  'DELETE /v1/webhook-endpoints/{id}': { answers: { 204: { description: 'deleted with its messages' } }, errors: [404] },
  'POST /v1/webhook-endpoints/{id}/rotate-secret': {
    answers: ok(
      obj({ id: str(), secret: str('whsec_…: the new secret'), previousSecretExpiresAt: nullable({ type: 'string', format: 'date-time' }) }, ['id', 'secret'])
    ),
    errors: [404]
  },
  'GET /v1/webhook-endpoints/{id}/messages': { answers: ok(listOf(ref('WebhookMessage'))), errors: [404] },
  'GET /v1/webhook-messages/{id}': { answers: ok(ref('WebhookMessage')), errors: [404] },
  'GET /v1/dlq': { answers: ok(listOf(ref('WebhookMessage'))), errors: [404] },
  'POST /v1/dlq/{messageId}/replay': { answers: { 202: json('a new round of attempts, same webhook-id', obj({ id: str() }, ['id'])) }, errors: [404, 409] },
  'POST /v1/dlq/replay': { answers: { 202: json('replayed', obj({ replayed: int() })) }, errors: [404, 409] },
  'POST /v1/notifications': {
    answers: { 202: json('accepted', obj({ notifications: { type: 'array', items: obj({ userId: str(), id: str(), seq: { type: 'integer' } }) } })) },
    errors: [409, 422]
  },
  'GET /v1/users/{userId}/notifications': {
    answers: ok(obj({ items: { type: 'array', items: ref('Notification') }, lastSeq: int(), nextAfter: nullable({ type: 'integer' }), unread: int() }))
  },
  'POST /v1/users/{userId}/notifications/ack': {
    body: {
      schema: obj(
        {
          upToSeq: { type: 'integer', minimum: 0, description: 'marks every notification up to this seq read' },
          ids: { type: 'array', items: { type: 'string', format: 'uuid' }, minItems: 1, maxItems: 1000, description: 'or these notification ids' }
        },
        []
      ),
      description: 'exactly one of upToSeq or ids'
    },
    answers: ok(obj({ acked: int(), unread: int() }))
  },
  'GET /v1/users/{userId}/presence': { answers: ok(ref('Presence')) },
  'GET /v1/presence': { answers: ok(obj({ items: { type: 'array', items: ref('Presence') } })) },
  'PUT /v1/shipments/{id}/watchers/{userId}': {
    answers: { 201: json('watching', ref('Watcher')), 200: json('it was watching already', ref('Watcher')) },
    errors: [404]
  },
  'DELETE /v1/shipments/{id}/watchers/{userId}': { answers: ok(ref('Watcher'), 'no longer watching'), errors: [404] },
  'GET /v1/shipments/{id}/watchers': {
    answers: ok(listOf(obj({ userId: str(), createdAt: { type: 'string', format: 'date-time' } }), 'nextAfter')),
    errors: [404]
  }
}

const ERRORS: Record<number, string> = {
  400: 'the input is not valid: error.field names what is wrong',
  401: 'no valid API key (Authorization: Bearer <key>)',
  404: 'not found',
  409: 'conflicts with the current state',
  413: 'the body is over BODY_LIMIT_BYTES',
  415: 'the body is not JSON',
  422: 'understood but refused: error.field names what is wrong',
  503: 'the database is unavailable or busy: nothing was stored; retry (Retry-After)'
}

const SECURITY_SCHEME = {
  type: 'http',
  scheme: 'bearer',
  description:
    'An API key of API_KEYS (comma-separated), sent as Authorization: Bearer <key> on every /v1 operation but carrier webhooks and the WebSocket (which take a token from POST /v1/tokens)'
}

/** `/v1/shipments/:id` → `/v1/shipments/{id}` */
const openApiPath = (path: string) => path.replace(/:([A-Za-z0-9_]+)/g, '{$1}')
// TypeBox marks 3.0-style `nullable` beside its anyOf with null; 3.1 schemas say it with the anyOf alone.
const plain = (schema: unknown): Schema => JSON.parse(JSON.stringify(schema, (k, v) => (k === 'nullable' ? undefined : v)))

export function buildOpenApi(routes: readonly RouteInfo[], needsApiKey: (path: string) => boolean): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {}
  for (const route of routes) {
    if (route.hooks?.detail?.hide || route.method === 'ALL' || route.method === 'HEAD') continue
    const path = openApiPath(route.path)
    const key = `${route.method} ${path}`
    const doc = RESPONSES[key]
    const detail = route.hooks?.detail ?? {}
    const secured = needsApiKey(route.path)
    const parameters = [
      ...[...path.matchAll(/\{([^}]+)\}/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } })),
      ...queryParameters(route.hooks?.query),
      ...(doc?.parameters ?? [])
    ]
    // A route that checks its body itself (a carrier's push, tracking links, events, acks) has its shape in the table.
    const body = doc?.body ?? (route.hooks?.body ? { schema: plain(route.hooks.body) } : undefined)
    const responses: Record<string, unknown> = {}
    for (const [status, a] of Object.entries(doc?.answers ?? { default: { description: 'not documented' } })) {
      responses[status] = { description: a.description, ...(a.schema ? { content: { [a.type ?? 'application/json']: { schema: a.schema } } } : {}) }
    }
    // Every /v1 operation reads or writes PostgreSQL: it may find it unavailable.
    const errors = new Set<number>([...(doc?.errors ?? []), ...(route.path.startsWith('/v1/') ? [503] : [])])
    if (secured) errors.add(401)
    if (parameters.length > 0 || body) errors.add(400)
    if (body) for (const s of [413, 415]) errors.add(s)
    for (const status of [...errors].sort()) responses[status] ??= { $ref: `#/components/responses/E${status}` }
    const operation = {
      operationId: operationId(route.method, path),
      summary: detail.summary,
      ...(detail.description ? { description: detail.description } : {}),
      tags: detail.tags,
      ...(parameters.length ? { parameters } : {}),
      ...(body
        ? {
            requestBody: {
              required: !!route.hooks?.body,
              ...(body.description ? { description: body.description } : {}),
              content: { [body.type ?? 'application/json']: { schema: body.schema } }
            }
          }
        : {}),
      responses,
      security: secured ? [{ apiKey: [] }] : []
    }
    ;(paths[path] ??= {})[route.method.toLowerCase()] = operation
  }
  ;(paths[WS_PATH] ??= {}).get = {
    operationId: 'getV1Ws',
    summary: 'The WebSocket endpoint: its frames are described by /asyncapi.json',
    tags: ['delivery'],
    parameters: [{ name: 'token', in: 'query', required: true, schema: { type: 'string' }, description: 'a token from POST /v1/tokens (or a tracking link)' }],
    responses: { 101: { description: 'switched to the WebSocket protocol' }, 426: { $ref: '#/components/responses/E426' } },
    security: []
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'parcelcast',
      version: '0.1.0',
      description:
        'Real-time parcel tracking (contract: CONTRACT.md). Every error is {"error": {"code", "message", "field"?}}. WebSocket protocol: /asyncapi.json.'
    },
    jsonSchemaDialect: 'https://spec.openapis.org/oas/3.1/dialect/base',
    tags: [
      { name: 'shipments' },
      { name: 'events' },
      { name: 'carriers' },
      { name: 'delivery' },
      { name: 'notifications' },
      { name: 'webhooks' },
      { name: 'ops' }
    ],
    paths,
    components: {
      schemas,
      responses: Object.fromEntries(
        [...Object.entries(ERRORS), ['426', 'not a WebSocket upgrade']].map(([status, description]) => [
          `E${status}`,
          { description, content: { 'application/json': { schema: ref('Error') } } }
        ])
      ),
      securitySchemes: { apiKey: SECURITY_SCHEME }
    }
  }
}

function queryParameters(query: unknown): unknown[] {
  const q = query as { properties?: Record<string, { description?: string }>; required?: string[] } | undefined
  if (!q?.properties) return []
  return Object.entries(q.properties).map(([name, s]) => ({
    name,
    in: 'query',
    required: q.required?.includes(name) ?? false,
    schema: plain(s),
    ...(s.description ? { description: s.description } : {})
  }))
}

/** `POST /v1/shipments/{id}/tracking-link` → `postV1ShipmentsByIdTrackingLink` */
function operationId(method: string, path: string): string {
  const words = path
    .split('/')
    .filter(Boolean)
    .map((p) => (p.startsWith('{') ? `By-${p.slice(1, -1)}` : p))
  if (words.length === 0) words.push('root')
  return (
    method.toLowerCase() +
    words
      .join('-')
      .split(/[-_.]/)
      .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
      .join('')
  )
}
