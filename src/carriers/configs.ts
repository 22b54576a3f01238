/**
 * Carrier configuration: the `carrier_configs` rows, overridden by the environment. A carrier
 * whose base URL is set in the environment is enabled for polling; credentials from the
 * environment win over stored ones.
 */
import type { Config } from '../config.ts'
import type { Sql } from '../db/client.ts'
import type { CarrierConfig } from './adapter.ts'
import type { PollSettings } from './poller.ts'

export interface CarrierSetup {
  carrier: string
  enabled: boolean
  client: CarrierConfig
  poll: PollSettings
  webhookSecret: string | null
}

interface Row {
  carrier: string
  enabled: boolean
  base_url: string | null
  poll_interval_ms: number
  batch_size: number
  backoff_base_ms: number
  max_attempts: number
  rate_limit_per_sec: string
  credentials: Record<string, string>
}

export async function loadCarrierSetups(sql: Sql, config: Config): Promise<CarrierSetup[]> {
  const rows = await sql<Row[]>`select carrier, enabled, base_url, poll_interval_ms, batch_size, backoff_base_ms, max_attempts, rate_limit_per_sec, credentials from carrier_configs order by carrier`
  const env: Record<string, { baseUrl?: string; client: Partial<CarrierConfig>; secret?: string }> = {
    dhl: { baseUrl: config.DHL_BASE_URL, client: { apiKey: config.DHL_API_KEY }, secret: config.DHL_WEBHOOK_SECRET },
    dpd: { baseUrl: config.DPD_BASE_URL, client: { locale: config.DPD_LOCALE }, secret: config.DPD_WEBHOOK_SECRET },
    gls: { baseUrl: config.GLS_BASE_URL, client: { clientId: config.GLS_CLIENT_ID, clientSecret: config.GLS_CLIENT_SECRET }, secret: config.GLS_WEBHOOK_SECRET }
  }
  return rows.map((r) => {
    const e = env[r.carrier] ?? { client: {} }
    const baseUrl = e.baseUrl ?? r.base_url ?? ''
    const stored = r.credentials ?? {}
    const defined = Object.fromEntries(Object.entries(e.client).filter(([, v]) => v !== undefined && v !== ''))
    return {
      carrier: r.carrier,
      enabled: Boolean(baseUrl) && (e.baseUrl !== undefined || r.enabled),
      client: { baseUrl, ...stored, ...defined },
      poll: {
        intervalMs: config.POLL_INTERVAL_MS ?? r.poll_interval_ms,
        batchSize: config.POLL_BATCH_SIZE ?? r.batch_size,
        backoffBaseMs: r.backoff_base_ms,
        maxAttempts: r.max_attempts,
        ratePerSec: Number(r.rate_limit_per_sec)
      },
      webhookSecret: e.secret ?? stored.webhookSecret ?? null
    }
  })
}
