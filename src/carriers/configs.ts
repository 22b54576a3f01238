/**
 * Carrier configuration: the `carrier_configs` rows, overridden by the environment (each
 * carrier's `env` in the registry). A carrier whose base URL is set in the environment is
 * enabled for polling; credentials from the environment win over stored ones. Rows without an
 * adapter are push-only carriers: known, never polled.
 */
import type { Config } from '../config.ts'
import type { Sql } from '../db/client.ts'
import type { CarrierConfig } from './adapter.ts'
import { formOf } from './carrier.ts'
import type { PollSettings } from './poller.ts'
import { carrierFor } from './registry.ts'

export interface CarrierSetup {
  carrier: string
  name: string
  /** The answer form in use; `push` for a carrier without an adapter. */
  form: string
  /** Has an adapter (so it can be polled and take webhooks). */
  adapter: boolean
  enabled: boolean
  client: CarrierConfig
  poll: PollSettings
  webhookSecret: string | null
}

interface Row {
  carrier: string
  name: string | null
  form: string | null
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
  const rows = await sql<
    Row[]
  >`select carrier, name, form, enabled, base_url, poll_interval_ms, batch_size, backoff_base_ms, max_attempts, rate_limit_per_sec, credentials from carrier_configs order by carrier`
  return rows.map((r) => {
    const carrier = carrierFor(r.carrier)
    const e = carrier?.env(config) ?? { client: {} }
    const baseUrl = e.baseUrl ?? r.base_url ?? ''
    const stored = r.credentials ?? {}
    const defined = Object.fromEntries(Object.entries(e.client).filter(([, v]) => v !== undefined && v !== ''))
    const client: CarrierConfig = { baseUrl, ...(r.form ? { form: r.form } : {}), ...stored, ...defined }
    return {
      carrier: r.carrier,
      name: r.name ?? carrier?.name ?? r.carrier.toUpperCase(),
      form: carrier ? formOf(carrier, client) : 'push',
      adapter: Boolean(carrier),
      enabled: Boolean(carrier) && Boolean(baseUrl) && (e.baseUrl !== undefined || r.enabled),
      client,
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
