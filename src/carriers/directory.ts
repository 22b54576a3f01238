/**
 * The carriers this service knows: those with an adapter (registry.ts) and those an operator
 * registered as push-only (`carrier_configs` rows without an adapter, `PUT /v1/carriers/:code`).
 * A shipment may only be created for a known carrier. The setups (configs.ts) are read once and
 * read again after a registration; health comes from this process's pollers (health.ts).
 */
import type { Config } from '../config.ts'
import type { Sql } from '../db/client.ts'
import { loadCarrierSetups, type CarrierSetup } from './configs.ts'
import type { CarrierHealth, CycleSample, Health } from './health.ts'
import { CARRIERS, carrierFor } from './registry.ts'

export interface CarrierView {
  code: string
  name: string
  /** The answer form in use (`json`, `soap`), or `push` for a push-only carrier. */
  form: string
  /** Whether this process polls it. */
  polling: boolean
  health: Health
}

export function createCarrierDirectory({
  sql,
  config,
  health,
  polling
}: {
  sql: Sql
  config: Config
  health: CarrierHealth
  polling: () => ReadonlySet<string>
}) {
  let setups: Promise<CarrierSetup[]> | null = null
  const load = () =>
    (setups ??= loadCarrierSetups(sql, config).catch((err) => {
      setups = null
      throw err
    }))

  return {
    setups: load,
    async setup(code: string): Promise<CarrierSetup | undefined> {
      return (await load()).find((s) => s.carrier === code)
    },
    /** Known: an adapter, or a registered row. */
    async isKnown(code: string): Promise<boolean> {
      if (carrierFor(code)) return true
      const [row] = await sql<{ one: number }[]>`select 1 as one from carrier_configs where carrier = ${code}`
      return Boolean(row)
    },
    async codes(): Promise<string[]> {
      const rows = await sql<{ carrier: string }[]>`select carrier from carrier_configs`
      return [...new Set([...CARRIERS.map((c) => c.code), ...rows.map((r) => r.carrier)])].sort()
    },
    async list(): Promise<CarrierView[]> {
      const all = await load()
      const seen = new Set(all.map((s) => s.carrier))
      const views = all.map((s) => ({ code: s.carrier, name: s.name, form: s.form, polling: polling().has(s.carrier), health: health.of(s.carrier) }))
      // An adapter whose row is missing (a database older than its migration) still shows.
      for (const c of CARRIERS)
        if (!seen.has(c.code)) views.push({ code: c.code, name: c.name, form: c.forms[0]!, polling: polling().has(c.code), health: health.of(c.code) })
      return views.sort((a, b) => (a.code < b.code ? -1 : 1))
    },
    /** Registers (or renames) a carrier; `created` when it was not known before. */
    async register(code: string, name: string): Promise<{ carrier: CarrierView; created: boolean }> {
      const [row] = await sql<{ created: boolean }[]>`
        insert into carrier_configs (carrier, name) values (${code}, ${name})
        on conflict (carrier) do update set name = excluded.name, updated_at = now()
        returning (xmax = 0) as created`
      setups = null
      const carrier = (await this.list()).find((c) => c.code === code)!
      return { carrier, created: row!.created }
    },
    /** A push's sample of a carrier's health (routes/webhooks.ts), as a poll cycle's is. */
    record: (code: string, sample: CycleSample) => health.record(code, sample),
    /** Health of the carriers this process polls, for /readyz. */
    health: () => health.snapshot([...new Set([...CARRIERS.map((c) => c.code), ...polling()])])
  }
}

export type CarrierDirectory = ReturnType<typeof createCarrierDirectory>
