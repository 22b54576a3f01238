/**
 * Wiring: config → clients → pipeline → HTTP. `createService` builds everything without
 * opening a port or starting a loop; `start()` does both, `stop()` undoes them in reverse.
 * Tests and benchmarks build services the same way `main.ts` does.
 */
import { randomBytes } from 'node:crypto'
import { hostname } from 'node:os'
import { createBroadcaster, FANOUT_CHANNEL } from './delivery/broadcaster.ts'
import { createHub } from './delivery/hub.ts'
import { createDeliveryQueries } from './delivery/queries.ts'
import { createShipmentKind } from './delivery/shipment-kind.ts'
import { createTopicKinds } from './delivery/topic-kind.ts'
import { createUserKind } from './delivery/user-kind.ts'
import { createDeliveredMarks } from './notifications/delivered.ts'
import { isUserId, NOTIFICATION_FANOUT_CHANNEL, NOTIFICATION_GROUP, NOTIFICATION_STREAM } from './notifications/model.ts'
import { notificationOutbox } from './notifications/outbox.ts'
import { createPresence } from './notifications/presence.ts'
import { createNotificationPublisher } from './notifications/publish.ts'
import { createNotificationQueries } from './notifications/queries.ts'
import { createRetention } from './notifications/retention.ts'
import { createWatcherStore } from './notifications/watchers.ts'
import { createCarrierClient } from './carriers/clients.ts'
import { createCarrierDirectory } from './carriers/directory.ts'
import { createCarrierHealth } from './carriers/health.ts'
import { createPoller, type Poller } from './carriers/poller.ts'
import type { Config } from './config.ts'
import { createTokens } from './delivery/tokens.ts'
import { createSql, sessionTimeouts } from './db/client.ts'
import { createGuardedConnections } from './db/guarded.ts'
import type { DatabaseKind } from './db/select.ts'
import { migrate } from './db/migrate.ts'
import { createApp } from './http/app.ts'
import { listen } from './http/server.ts'
import { createLogger, type Logger } from './log.ts'
import { createMetrics } from './metrics.ts'
import { createPublishAcks } from './pipeline/acks.ts'
import { createOutboxRelay, eventOutbox } from './pipeline/outbox.ts'
import { createProcessor } from './pipeline/processor.ts'
import { MAX_EVENTS_PER_REQUEST } from './http/routes/events.ts'
import { createStreamWriter } from './pipeline/stream.ts'
import type { Engine } from './engine/engine.ts'
import { configuredEngine, createEngine, DEFAULT_REDIS_URL, type EngineChoice } from './engine/select.ts'
import { createWebhooks } from './webhooks/webhooks.ts'

export interface ServiceOptions {
  log?: Logger
  defaultMetrics?: boolean
  /** Which database main.ts opened (`/readyz` shows it). */
  database?: DatabaseKind
  /** Which engine to run (engine/select.ts's chooseEngine, which probes for ENGINE=auto). */
  engineChoice?: EngineChoice
  /** An engine made elsewhere and shared (tests: two services of one process on one memory engine); not closed by stop(). */
  engine?: Engine
}

export function createService(config: Config, opts: ServiceOptions = {}) {
  const log = opts.log ?? createLogger(config.LOG_LEVEL)
  const metrics = createMetrics({ defaults: opts.defaultMetrics ?? true })
  const sql = createSql(config.DATABASE_URL, { max: config.DATABASE_POOL_SIZE })
  // Ingest has connections of its own, one per transaction slot: a burst of reads (thousands of
  // sockets resubscribing at once, each reading a snapshot) queues in `sql`, never in front of a
  // commit. They, and the outbox relay's, carry the deadline INGEST_TIMEOUT_MS (db/guarded.ts).
  const guarded = (slots: number) =>
    createGuardedConnections({
      slots,
      timeoutMs: config.INGEST_TIMEOUT_MS,
      make: () => createSql(config.DATABASE_URL, { max: 1, settings: sessionTimeouts(config.INGEST_TIMEOUT_MS) }),
      onDeadline: (what, ms) => {
        metrics.dbDeadlines.inc({ what })
        log.error(
          { component: 'database', what, timeoutMs: ms },
          `${what}: PostgreSQL did not finish it within ${ms} ms (INGEST_TIMEOUT_MS); its connection was closed and replaced`
        )
      }
    })
  const ingestConnections = guarded(config.INGEST_CONCURRENCY)
  // One slot per outbox relay (events, notifications).
  const relayConnections = guarded(2)
  // ENGINE=auto with REDIS_URL unset needs a probe (chooseEngine, as main.ts does); unprobed, the default Redis.
  const engineChoice: EngineChoice = opts.engine
    ? opts.engine.kind === 'memory'
      ? { kind: 'memory', reason: 'shared with another service of this process' }
      : { kind: 'redis', url: config.REDIS_URL ?? DEFAULT_REDIS_URL, reason: 'shared with another service of this process' }
    : (opts.engineChoice ?? configuredEngine(config) ?? { kind: 'redis', url: DEFAULT_REDIS_URL, reason: 'ENGINE=auto, REDIS_URL unset, not probed' })
  const engine = opts.engine ?? createEngine(engineChoice, { prefix: config.REDIS_PREFIX, log, commandTimeoutMs: config.PUBLISH_TIMEOUT_MS })
  const stream = createStreamWriter({ engine, maxLen: config.STREAM_MAXLEN })
  const acks = createPublishAcks({ sql, log, metrics })
  const notificationAcks = createPublishAcks({ sql, log, metrics, outbox: 'notifications' })
  // The hub is made below; its sockets get this process's commits straight away.
  const webhooks = createWebhooks({ sql, engine, log, metrics, config })
  const notificationPublisher = createNotificationPublisher({
    engine,
    acks: notificationAcks,
    log,
    metrics,
    maxLen: config.STREAM_MAXLEN,
    onCommitted: (messages) => hub.onCommitted(messages)
  })
  const processor = createProcessor({
    connections: ingestConnections,
    stream,
    acks,
    log,
    metrics,
    onCommitted: (messages) => hub.onCommitted(messages),
    onWebhookMessages: webhooks.afterCommit,
    notifications: notificationPublisher,
    limits: {
      maxInFlight: config.INGEST_CONCURRENCY,
      minEventsToOverlap: config.INGEST_OVERLAP_EVENTS,
      maxBatchEvents: MAX_EVENTS_PER_REQUEST,
      maxQueuedEvents: config.INGEST_QUEUE_EVENTS
    }
  })
  const relayTiming = { intervalMs: config.OUTBOX_INTERVAL_MS, graceMs: config.OUTBOX_GRACE_MS, batchSize: config.OUTBOX_BATCH_SIZE }
  const relay = createOutboxRelay({ connections: relayConnections, engine, source: eventOutbox(stream), log, metrics, ...relayTiming })
  const notificationRelay = createOutboxRelay({
    connections: relayConnections,
    engine,
    source: notificationOutbox(engine, config.STREAM_MAXLEN),
    log,
    metrics,
    ...relayTiming
  })
  if (!config.TOKEN_SECRET) {
    log.warn({ component: 'service' }, 'TOKEN_SECRET is not set: using a random secret, so WebSocket tokens only work with this process and until it restarts')
  }
  const tokens = createTokens(config.TOKEN_SECRET || randomBytes(32).toString('base64url'))
  const notificationQueries = createNotificationQueries(sql)
  const delivered = createDeliveredMarks({ queries: notificationQueries, log, metrics })
  const presence = createPresence({ engine, ttlMs: config.PRESENCE_TTL_MS, log, metrics })
  const retention = createRetention({ sql, log, metrics, days: config.NOTIFICATION_RETENTION_DAYS, intervalMs: config.NOTIFICATION_RETENTION_INTERVAL_MS })
  // The kinds of topic the hub serves.
  const kinds = [
    createShipmentKind(createDeliveryQueries(sql, { onLookupQuery: (n) => metrics.subscribeLookups.observe(n) })),
    createUserKind({ queries: notificationQueries, delivered, presence })
  ]
  const consumer = `${hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`
  const check = createTopicKinds(kinds).check
  const broadcaster = createBroadcaster({ engine, claimIdleMs: config.CLAIM_IDLE_MS, log, metrics, check, consumer })
  const notificationWorkers = createBroadcaster({
    engine,
    claimIdleMs: config.CLAIM_IDLE_MS,
    log,
    metrics,
    check,
    consumer,
    route: { stream: NOTIFICATION_STREAM, group: NOTIFICATION_GROUP, channel: NOTIFICATION_FANOUT_CHANNEL }
  })
  // A socket whose token names a user counts for that user's presence while it is open.
  const connectionHooks = {
    opened: (sub: string, connId: string) => void (isUserId(sub) && presence.join(sub, connId)),
    closed: (sub: string, connId: string) => void (isUserId(sub) && presence.leave(sub, connId))
  }
  const hub = createHub({
    kinds,
    engine,
    tokens,
    log,
    metrics,
    reconcileMs: config.RECONCILE_MS,
    channels: [FANOUT_CHANNEL, NOTIFICATION_FANOUT_CHANNEL],
    connectionHooks
  })
  // Carrier setups (environment over stored configs) read once; health from this process's pollers.
  const carrierHealth = createCarrierHealth()
  const pollers: Poller[] = []
  const carriers = createCarrierDirectory({ sql, config, health: carrierHealth, polling: () => new Set(pollers.map((p) => p.carrier)) })
  const watchers = createWatcherStore(sql)
  const app = createApp({
    sql,
    ingest: ingestConnections,
    engine,
    processor,
    tokens,
    broadcaster,
    notificationWorkers,
    carriers,
    log,
    metrics,
    notifications: { queries: notificationQueries, watchers, publisher: notificationPublisher },
    apiKeys: config.API_KEYS,
    database: opts.database,
    webhooks,
    webhookOptions: { allowPrivate: config.WEBHOOK_ALLOW_PRIVATE, secretGraceMs: config.WEBHOOK_SECRET_GRACE_MS }
  })
  let server: ReturnType<typeof listen> | null = null

  return {
    config,
    log,
    metrics,
    sql,
    ingestConnections,
    relayConnections,
    engine,
    engineChoice,
    stream,
    acks,
    processor,
    relay,
    webhooks,
    tokens,
    broadcaster,
    hub,
    app,
    pollers,
    carriers,
    carrierHealth,
    notificationRelay,
    notificationWorkers,
    notificationPublisher,
    notificationQueries,
    notificationAcks,
    delivered,
    presence,
    retention,
    watchers,
    get port() {
      return server?.port ?? 0
    },
    async start() {
      log.info({ component: 'service', engine: engine.kind, reason: engineChoice.reason }, `delivery engine: ${engine.kind}`)
      if (config.MIGRATE_ON_BOOT) await migrate(sql, log)
      if (config.POLL_ENABLED) {
        for (const setup of await carriers.setups()) {
          const client = setup.enabled ? createCarrierClient(setup.carrier, setup.client) : null
          if (!client) continue
          pollers.push(createPoller({ sql, processor, client, settings: setup.poll, log, metrics, health: carrierHealth }))
        }
      }
      // The fan-out groups (events, notifications) before anything of this process appends (the
      // relays, requests): made at the end of their streams, they would skip what came before.
      await untilReady(engine, config.PUBLISH_TIMEOUT_MS)
      await Promise.all([broadcaster.prepare(), notificationWorkers.prepare()])
      relay.start()
      webhooks.start()
      notificationRelay.start()
      retention.start()
      presence.start()
      server = listen({
        fetch: app.fetch,
        hub,
        log,
        port: config.PORT,
        hostname: '0.0.0.0',
        bodyLimitBytes: config.BODY_LIMIT_BYTES,
        wsBackpressureBytes: config.WS_BACKPRESSURE_BYTES
      })
      hub.start(server)
      broadcaster.start()
      notificationWorkers.start()
      for (const p of pollers) p.start()
      log.info({ component: 'service', port: server?.port, database: opts.database ?? 'external' }, 'parcelcast listening')
    },
    /**
     * Undoes start() in reverse, waiting for running work, but for STOP_TIMEOUT_MS at most: then
     * every connection is closed at once and the loops' running cycles are abandoned, so a
     * database or Redis that stopped answering never makes SIGTERM hang.
     */
    async stop() {
      const orderly = (async () => {
        if (server) await server.stop(true).catch(() => {})
        await Promise.all(pollers.map((p) => p.stop()))
        await Promise.all([relay.stop(), notificationRelay.stop(), retention.stop()])
        await webhooks.stop()
        await Promise.all([broadcaster.stop(), notificationWorkers.stop()])
        await hub.stop()
        await Promise.all([acks.stop(), notificationAcks.stop(), delivered.stop(), presence.stop()])
        if (!opts.engine) await engine.close()
        await Promise.all([sql.end({ timeout: 5 }), ingestConnections.end({ timeout: 5 }), relayConnections.end({ timeout: 5 })])
      })()
      let timer: ReturnType<typeof setTimeout> | undefined
      const inTime = await Promise.race([
        orderly.then(
          () => true,
          (err) => {
            log.error({ component: 'service', err: (err as Error).message }, 'stopping failed; closing what is left at once')
            return false
          }
        ),
        new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), config.STOP_TIMEOUT_MS)))
      ])
      clearTimeout(timer)
      if (!inTime) {
        log.error(
          { component: 'service', stopTimeoutMs: config.STOP_TIMEOUT_MS },
          `stopping took longer than ${config.STOP_TIMEOUT_MS} ms (STOP_TIMEOUT_MS): closing every database connection at once, abandoning the running cycles`
        )
        const abandonWithin = (p: Promise<unknown>) => Promise.race([p.catch(() => {}), Bun.sleep(1000)])
        await Promise.all([sql.end({ timeout: 0 }), ingestConnections.end({ timeout: 0 }), relayConnections.end({ timeout: 0 })].map(abandonWithin))
        if (!opts.engine) await abandonWithin(engine.close())
      }
      log.info({ component: 'service' }, 'parcelcast stopped')
    }
  }
}

/** Resolves once the engine is ready, or after `ms` (Redis down: the service starts without it). */
function untilReady(engine: Engine, ms: number): Promise<void> {
  if (engine.isReady) return Promise.resolve()
  return new Promise<void>((resolve) => {
    const done = () => {
      clearTimeout(timer)
      off()
      resolve()
    }
    const off = engine.onReady(done)
    const timer = setTimeout(done, ms)
  })
}

export type Service = ReturnType<typeof createService>
