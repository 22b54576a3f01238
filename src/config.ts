/**
 * Configuration: read once from the environment, validated with valibot, frozen.
 * A bad value fails at boot with the variable's name, never later at first use.
 */
import * as v from 'valibot'
import { ConfigError } from './errors.ts'

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/postgres'

const int = (name: string, def: number, min: number, max: number) =>
  v.pipe(
    v.optional(v.string(), String(def)),
    v.trim(),
    v.regex(/^\d+$/, `${name} must be a whole number`),
    v.transform(Number),
    v.minValue(min, `${name} must be at least ${min}`),
    v.maxValue(max, `${name} must be at most ${max}`)
  )

const url = (name: string, def: string, protocols: string[]) =>
  v.pipe(
    v.optional(v.string(), def),
    v.trim(),
    v.check(
      (s) => {
        try {
          return protocols.includes(new URL(s).protocol)
        } catch {
          return false
        }
      },
      `${name} must be a URL starting with ${protocols.join(' or ')}//`
    )
  )

const list = v.pipe(
  v.optional(v.string(), ''),
  v.transform((s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean)
  )
)

const Env = v.object({
  PORT: int('PORT', 3000, 0, 65535),
  DATABASE_URL: url('DATABASE_URL', DEFAULT_DATABASE_URL, ['postgres:', 'postgresql:']),
  // auto: DATABASE_URL's server if it lets us in, else the embedded one (src/db/select.ts).
  DATABASE: v.optional(v.picklist(['auto', 'embedded', 'external'], 'DATABASE must be auto, embedded or external')),
  PARCELCAST_DATA_DIR: v.pipe(v.optional(v.string(), '.parcelcast'), v.trim(), v.minLength(1, 'PARCELCAST_DATA_DIR must not be empty')),
  PARCELCAST_PG_PORT: int('PARCELCAST_PG_PORT', 54329, 0, 65535),
  DATABASE_POOL_SIZE: int('DATABASE_POOL_SIZE', 10, 1, 200),
  // Unset: ENGINE=auto probes the default address (engine/select.ts).
  REDIS_URL: v.optional(url('REDIS_URL', '', ['redis:', 'rediss:'])),
  ENGINE: v.optional(v.picklist(['redis', 'memory', 'auto'], 'ENGINE must be redis, memory or auto'), 'auto'),
  REDIS_PREFIX: v.pipe(v.optional(v.string(), ''), v.regex(/^[\w:.-]*$/, 'REDIS_PREFIX may hold letters, digits and _ : . - only')),
  API_KEYS: v.pipe(
    list,
    v.minLength(1, 'API_KEYS must list at least one key (comma-separated)'),
    v.check((keys) => keys.every((k) => k.length >= 8), 'API_KEYS: every key must be at least 8 characters'),
    // `Authorization: Bearer <key>` carries no whitespace: such a key could never be sent.
    v.check((keys) => keys.every((k) => !/\s/.test(k)), 'API_KEYS: a key must not contain whitespace (keys are separated by commas)')
  ),
  TOKEN_SECRET: v.pipe(
    v.optional(v.string(), ''),
    v.check((s) => s === '' || s.length >= 32, 'TOKEN_SECRET must be at least 32 characters')
  ),
  LOG_LEVEL: v.optional(
    v.picklist(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], 'LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent'),
    'info'
  ),
  BODY_LIMIT_BYTES: int('BODY_LIMIT_BYTES', 1_048_576, 1024, 64 * 1_048_576),
  INGEST_CONCURRENCY: int('INGEST_CONCURRENCY', 4, 1, 64),
  INGEST_OVERLAP_EVENTS: int('INGEST_OVERLAP_EVENTS', 100, 1, 1000),
  INGEST_QUEUE_EVENTS: int('INGEST_QUEUE_EVENTS', 20_000, 1000, 1_000_000),
  // The longest an ingest transaction (or an outbox relay batch) may take; then its connection is closed: 503.
  INGEST_TIMEOUT_MS: int('INGEST_TIMEOUT_MS', 10_000, 100, 600_000),
  // The longest stop() (SIGTERM) waits for running work before it closes everything at once.
  STOP_TIMEOUT_MS: int('STOP_TIMEOUT_MS', 10_000, 100, 600_000),
  STREAM_MAXLEN: int('STREAM_MAXLEN', 100_000, 100, 100_000_000),
  PUBLISH_TIMEOUT_MS: int('PUBLISH_TIMEOUT_MS', 1000, 10, 60_000),
  OUTBOX_INTERVAL_MS: int('OUTBOX_INTERVAL_MS', 1000, 10, 3_600_000),
  OUTBOX_GRACE_MS: int('OUTBOX_GRACE_MS', 2000, 0, 3_600_000),
  OUTBOX_BATCH_SIZE: int('OUTBOX_BATCH_SIZE', 500, 1, 10_000),
  CLAIM_IDLE_MS: int('CLAIM_IDLE_MS', 60_000, 10, 86_400_000),
  RECONCILE_MS: int('RECONCILE_MS', 2000, 50, 3_600_000),
  WS_BACKPRESSURE_BYTES: int('WS_BACKPRESSURE_BYTES', 1_048_576, 1024, 64 * 1_048_576),
  // A socket's presence entry lives this long unless its process touches it again (every third of it).
  PRESENCE_TTL_MS: int('PRESENCE_TTL_MS', 30_000, 300, 3_600_000),
  NOTIFICATION_RETENTION_DAYS: int('NOTIFICATION_RETENTION_DAYS', 90, 1, 36_500),
  NOTIFICATION_RETENTION_INTERVAL_MS: int('NOTIFICATION_RETENTION_INTERVAL_MS', 60_000, 100, 86_400_000),
  // Unset: each carrier's own value from carrier_configs (batch_size default 10, poll_interval_ms 60000).
  POLL_BATCH_SIZE: v.optional(int('POLL_BATCH_SIZE', 10, 1, 1000)),
  POLL_INTERVAL_MS: v.optional(int('POLL_INTERVAL_MS', 60_000, 100, 86_400_000)),
  POLL_ENABLED: v.pipe(
    v.optional(v.picklist(['true', 'false'], 'POLL_ENABLED must be true or false'), 'true'),
    v.transform((s) => s === 'true')
  ),
  DHL_BASE_URL: v.optional(url('DHL_BASE_URL', '', ['http:', 'https:'])),
  DHL_API_KEY: v.optional(v.string()),
  DPD_BASE_URL: v.optional(url('DPD_BASE_URL', '', ['http:', 'https:'])),
  DPD_LOCALE: v.optional(v.pipe(v.string(), v.regex(/^[a-z]{2}_[A-Z]{2}$/, 'DPD_LOCALE must look like de_DE'))),
  DPD_FORM: v.optional(v.picklist(['json', 'soap'], 'DPD_FORM must be json or soap')),
  DPD_DELIS_ID: v.optional(v.string()),
  DPD_PASSWORD: v.optional(v.string()),
  GLS_BASE_URL: v.optional(url('GLS_BASE_URL', '', ['http:', 'https:'])),
  GLS_CLIENT_ID: v.optional(v.string()),
  GLS_CLIENT_SECRET: v.optional(v.string()),
  DHL_WEBHOOK_SECRET: v.optional(v.pipe(v.string(), v.minLength(16, 'DHL_WEBHOOK_SECRET must be at least 16 characters'))),
  DPD_WEBHOOK_SECRET: v.optional(v.pipe(v.string(), v.minLength(16, 'DPD_WEBHOOK_SECRET must be at least 16 characters'))),
  GLS_WEBHOOK_SECRET: v.optional(v.pipe(v.string(), v.minLength(16, 'GLS_WEBHOOK_SECRET must be at least 16 characters'))),
  // Outbound webhooks (contract §9; src/webhooks/).
  WEBHOOK_CONCURRENCY: int('WEBHOOK_CONCURRENCY', 4, 1, 1000),
  WEBHOOK_TIMEOUT_MS: int('WEBHOOK_TIMEOUT_MS', 10_000, 10, 300_000),
  WEBHOOK_RETRY_BASE_MS: int('WEBHOOK_RETRY_BASE_MS', 5000, 1, 86_400_000),
  WEBHOOK_RETRY_MAX_MS: int('WEBHOOK_RETRY_MAX_MS', 3_600_000, 1, 7 * 86_400_000),
  WEBHOOK_MAX_ATTEMPTS: int('WEBHOOK_MAX_ATTEMPTS', 8, 1, 100),
  WEBHOOK_DISABLE_AFTER_MS: int('WEBHOOK_DISABLE_AFTER_MS', 432_000_000, 1, 365 * 86_400_000),
  WEBHOOK_ALLOW_PRIVATE: v.pipe(
    v.optional(v.picklist(['true', 'false'], 'WEBHOOK_ALLOW_PRIVATE must be true or false'), 'false'),
    v.transform((s) => s === 'true')
  ),
  WEBHOOK_WORKERS: int('WEBHOOK_WORKERS', 16, 1, 1000),
  WEBHOOK_POLL_MS: int('WEBHOOK_POLL_MS', 250, 5, 60_000),
  WEBHOOK_REBUILD_MS: int('WEBHOOK_REBUILD_MS', 30_000, 20, 3_600_000),
  WEBHOOK_SECRET_GRACE_MS: int('WEBHOOK_SECRET_GRACE_MS', 86_400_000, 0, 30 * 86_400_000),
  WEBHOOK_RETENTION_DAYS: int('WEBHOOK_RETENTION_DAYS', 30, 1, 3650),
  MIGRATE_ON_BOOT: v.pipe(
    v.optional(v.picklist(['true', 'false'], 'MIGRATE_ON_BOOT must be true or false'), 'true'),
    v.transform((s) => s === 'true')
  )
})

type Output = v.InferOutput<typeof Env>
export type DatabaseMode = NonNullable<Output['DATABASE']>
export type Config = Readonly<Omit<Output, 'DATABASE'> & { DATABASE: DatabaseMode }>

export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  const input = Object.fromEntries(Object.keys(Env.entries).map((k) => [k, env[k] === '' ? undefined : env[k]]))
  const result = v.safeParse(Env, input)
  if (!result.success) {
    const lines = result.issues.map((issue) => {
      const name = issue.path?.[0]?.key as string | undefined
      return name && !issue.message.startsWith(name) ? `${name}: ${issue.message}` : issue.message
    })
    throw new ConfigError(`invalid configuration: ${lines.join('; ')}`)
  }
  const { DATABASE = input.DATABASE_URL === undefined ? 'auto' : 'external', ...rest } = result.output
  if (DATABASE === 'embedded' && input.DATABASE_URL !== undefined) {
    throw new ConfigError(
      'invalid configuration: DATABASE=embedded runs its own server, so DATABASE_URL must be unset (or set DATABASE=external to use DATABASE_URL)'
    )
  }
  return Object.freeze({ ...rest, DATABASE })
}
