/**
 * The HTTP application: auth first, then the routes. No socket here: the service serves it with
 * `listen` (server.ts: the Host, target and body-size checks of edge.ts, and the WebSocket
 * endpoint), tests call `app.handle(new Request(...))` or go over the wire.
 */
import { Elysia, StatusMap } from 'elysia'
import type { Broadcaster } from '../delivery/broadcaster.ts'
import type { Sql } from '../db/client.ts'
import type { GuardedConnections } from '../db/guarded.ts'
import type { DatabaseKind } from '../db/select.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import type { Processor } from '../pipeline/processor.ts'
import type { Engine } from '../engine/engine.ts'
import { createShipmentStore } from '../shipments/store.ts'
import { createApiKeyCheck } from './auth.ts'
import { toErrorResponse } from './errors.ts'
import { parseJsonBody } from './json-body.ts'
import { WS_PATH } from './server.ts'
import { eventRoutes } from './routes/events.ts'
import { healthRoutes } from './routes/health.ts'
import { shipmentRoutes } from './routes/shipments.ts'
import { tokenRoutes } from './routes/tokens.ts'
import { webhookRoutes } from './routes/webhooks.ts'
import { trackingLinkRoutes } from './routes/tracking-links.ts'
import { pageRoutes } from '../pages/routes.ts'
import { buildOpenApi, type RouteInfo } from '../pages/openapi.ts'
import type { Tokens } from '../delivery/tokens.ts'
import type { CarrierDirectory } from '../carriers/directory.ts'
import { carrierRoutes } from './routes/carriers.ts'
import { webhookEndpointRoutes } from './routes/webhook-endpoints.ts'
import type { Webhooks } from '../webhooks/webhooks.ts'
import { notificationRoutes } from './routes/notifications.ts'
import type { NotificationPublisher } from '../notifications/publish.ts'
import type { NotificationQueries } from '../notifications/queries.ts'
import type { WatcherStore } from '../notifications/watchers.ts'

export interface AppDeps {
  sql: Sql
  /** Ingest's own connections (db/guarded.ts), which /readyz looks at too. */
  ingest?: Pick<GuardedConnections, 'probe'>
  engine: Engine
  processor: Processor
  log: Logger
  metrics: Metrics
  tokens: Tokens
  broadcaster: Broadcaster
  carriers: CarrierDirectory
  notifications: { queries: NotificationQueries; watchers: WatcherStore; publisher: NotificationPublisher }
  /** Besides the tracking one: readiness shows every consumer group's lag. */
  notificationWorkers?: Broadcaster
  apiKeys: readonly string[]
  /** Outbound webhooks (§9): their routes, and their health in /readyz. */
  webhooks: Webhooks
  webhookOptions: { allowPrivate: boolean; secretGraceMs: number }
  /** Shown by /readyz: the embedded PostgreSQL or an external one. */
  database?: DatabaseKind
}

const started = new WeakMap<Request, number>()
const errorStatus = new WeakMap<Request, number>()

/** `set.status` as a number: Elysia takes a name too (`'Created'`). */
const statusOf = (status: number | string | undefined) =>
  typeof status === 'number' ? status : status === undefined ? 200 : (StatusMap[status as keyof typeof StatusMap] ?? 200)

/**
 * Routes and the API key. Two checks, one decision: the key is required by a `beforeHandle`
 * guard on the protected routes themselves, so no reading of a request line can reach one of
 * them without it; and it is checked before that, in `onRequest`, on `path` — the very string
 * Elysia's router routes on — so that an unauthenticated body is never read or validated (and a
 * request without a key gets a 401, not a 400 about its body).
 *
 * `standardHostname: false`: the router reads the path from the first `/` after `http://`
 * (Elysia's default assumes a host of 4+ characters and cut `Host: ab` requests in the wrong
 * place). server.ts has checked the Host and the target (edge.ts) before this runs.
 */
export function createApp(deps: AppDeps) {
  const { sql, engine, processor, tokens, broadcaster, carriers, log, metrics, apiKeys, webhooks } = deps
  const checkApiKey = createApiKeyCheck(apiKeys)
  const shipments = createShipmentStore(sql)

  /** One observation per answer, with the status that went out. */
  const observe = (request: Request, route: string, status: number) => {
    const t0 = started.get(request)
    if (t0 === undefined) return
    started.delete(request)
    metrics.httpRequests.observe({ method: request.method, route, status: String(status) }, (performance.now() - t0) / 1000)
  }

  // Built on first request, from every route (the app is complete by then).
  let openApi: Record<string, unknown> | undefined
  const routesOf = (): readonly RouteInfo[] => app.routes
  const app = new Elysia({ handler: { standardHostname: false } })
    .onRequest((ctx) => {
      started.set(ctx.request, performance.now())
      // `path` is on the pre-routing context at run time (Elysia builds it with the router's
      // path), though not in its type; without it every request would need the key.
      if (!needsApiKey((ctx as typeof ctx & { path?: unknown }).path)) return
      const refused = checkApiKey(ctx.request)
      // Answered before routing: no afterResponse hook runs for it, so it is recorded here.
      if (refused) observe(ctx.request, 'unrouted', refused.status)
      return refused
    })
    .onError(({ code, error, request }) => {
      const res = toErrorResponse(code, error, log, request)
      errorStatus.set(request, res.status)
      return res
    })
    .onAfterResponse(({ request, route, set, responseValue }) => {
      // The status that went out: an error's answer, a Response a route returned (set.status
      // stays 200 for those), else what the route set.
      const status = errorStatus.get(request) ?? (responseValue instanceof Response ? responseValue.status : statusOf(set.status))
      observe(request, route || 'unmatched', status)
    })
    .use(pageRoutes({ sql, tokens, openApi: (): Record<string, unknown> => (openApi ??= buildOpenApi(routesOf(), needsApiKey)) }))
    .use(
      healthRoutes({
        sql,
        ingest: deps.ingest,
        engine,
        metrics,
        broadcaster,
        notificationWorkers: deps.notificationWorkers,
        carriers: carriers.health,
        webhooks: webhooks.health,
        database: deps.database ?? 'external'
      })
    )
    .use(webhookRoutes({ sql, processor, carriers, log, metrics }))
    .guard({ beforeHandle: ({ request }) => checkApiKey(request), parse: parseJsonBody }, (api) =>
      api
        .use(shipmentRoutes(shipments, carriers))
        .use(trackingLinkRoutes(shipments, tokens))
        .use(carrierRoutes(carriers))
        .use(eventRoutes(processor))
        .use(tokenRoutes(tokens))
        .use(webhookEndpointRoutes(webhooks, deps.webhookOptions))
        .use(notificationRoutes({ sql, engine, log, ...deps.notifications, onWebhookMessages: webhooks.afterCommit }))
    )
  return app
}

/** Refused in onRequest already: /v1, except what carries its own proof (carrier webhooks, WebSocket tokens). */
export const needsApiKey = (path: unknown) => typeof path !== 'string' || (path.startsWith('/v1/') && !path.startsWith('/v1/webhooks/') && path !== WS_PATH)

export type App = ReturnType<typeof createApp>
