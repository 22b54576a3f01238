/**
 * The HTTP application: limits and auth first, then the routes. No socket here: the service
 * serves it with `listen` (server.ts, which also takes the WebSocket endpoint), tests call
 * `app.handle(new Request(...))`.
 */
import { openapi } from '@elysiajs/openapi'
import { Elysia, t } from 'elysia'
import type { Broadcaster } from '../delivery/broadcaster.ts'
import type { Sql } from '../db/client.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import type { Processor } from '../pipeline/processor.ts'
import type { Redis } from '../pipeline/stream.ts'
import { createShipmentStore } from '../shipments/store.ts'
import { createApiKeyCheck } from './auth.ts'
import { errorBody, json, toErrorResponse } from './errors.ts'
import { WS_PATH } from './server.ts'
import { eventRoutes } from './routes/events.ts'
import { healthRoutes } from './routes/health.ts'
import { shipmentRoutes } from './routes/shipments.ts'
import { tokenRoutes } from './routes/tokens.ts'
import { webhookRoutes } from './routes/webhooks.ts'
import type { Tokens } from '../delivery/tokens.ts'
import type { CarrierDirectory } from '../carriers/directory.ts'
import { carrierRoutes } from './routes/carriers.ts'

export interface AppDeps {
  sql: Sql
  redis: Redis
  processor: Processor
  log: Logger
  metrics: Metrics
  tokens: Tokens
  broadcaster: Broadcaster
  carriers: CarrierDirectory
  apiKeys: readonly string[]
  bodyLimitBytes: number
}

const started = new WeakMap<Request, number>()

export function createApp(deps: AppDeps) {
  const { sql, redis, processor, tokens, broadcaster, carriers, log, metrics, apiKeys, bodyLimitBytes } = deps
  const checkApiKey = createApiKeyCheck(apiKeys)

  return new Elysia({ serve: { maxRequestBodySize: bodyLimitBytes } })
    .onRequest(({ request }) => {
      started.set(request, performance.now())
      // Before routing and parsing: an unauthenticated body is never read.
      if (needsApiKey(new URL(request.url).pathname)) {
        const denied = checkApiKey(request)
        if (denied) return denied
      }
      const length = Number(request.headers.get('content-length') ?? 0)
      if (length > bodyLimitBytes) {
        return json(413, errorBody('body_too_large', `the request body is ${length} bytes; the limit is ${bodyLimitBytes}`))
      }
    })
    .onError(({ code, error }) => toErrorResponse(code, error, log))
    .onAfterResponse(({ request, route, set }) => {
      const t0 = started.get(request)
      if (t0 !== undefined) metrics.httpRequests.observe({ method: request.method, route: route || 'unmatched', status: String(set.status ?? 200) }, (performance.now() - t0) / 1000)
    })
    .use(openapi({ path: '/docs', specPath: '/openapi', documentation: { info: { title: 'parcelcast', version: '0.1.0', description: 'Real-time parcel tracking. See CONTRACT.md.' } } }))
    .use(healthRoutes({ sql, redis, metrics, broadcaster, carriers: carriers.health }))
    .use(shipmentRoutes(createShipmentStore(sql), carriers))
    .use(carrierRoutes(carriers))
    .use(eventRoutes(processor))
    .use(tokenRoutes(tokens))
    .use(webhookRoutes({ sql, processor, carriers, log, metrics }))
}

/** The API-key scheme covers /v1, except what carries its own proof (carrier webhooks, WebSocket tokens). */
const needsApiKey = (path: string) => path.startsWith('/v1/') && !path.startsWith('/v1/webhooks/') && path !== WS_PATH

export type App = ReturnType<typeof createApp>
