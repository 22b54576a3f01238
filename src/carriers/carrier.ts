/**
 * What a carrier is to parcelcast: one object, held in the registry (registry.ts), that the
 * pollers, the webhooks, `GET /v1/carriers` and the tests all read. Everything carrier-specific
 * lives behind it: the request for some tracking numbers, the reading of an answer (polled or
 * pushed, in any of the carrier's forms), the status table and the time zone rule. The parts
 * are pure; the HTTP call, its timeout and the token cache are the client's (clients.ts).
 */
import type { Config } from '../config.ts'
import type { Status } from '../pipeline/identity.ts'
import type { CarrierConfig, CarrierRequest, CarrierResponse, ParseOutcome } from './adapter.ts'

export type TokenOutcome = { token: string; expiresAt: number } | { error: string; retryable: boolean }

export interface Carrier {
  /** The carrier code of shipments and events (`dhl`). */
  code: string
  name: string
  /** The answer forms this adapter reads (`json`, `soap`); the first is the default. */
  forms: readonly string[]
  /** Tracking numbers one call may carry. */
  maxPerCall(config: CarrierConfig): number
  /** The IANA zone of the carrier's local times without an offset, for this configuration. */
  zone(config: CarrierConfig): string
  /** The status table: a carrier status (and the scan's words, where the carrier is coarser than us) → our status. */
  status(carrierStatus: string, text?: string): Exclude<Status, 'pending'>
  /** An access token to get first, when this configuration needs one (GLS OAuth2, DPD's SOAP login). */
  auth?(config: CarrierConfig): { request(): CarrierRequest; parse(res: CarrierResponse, now?: number): TokenOutcome } | null
  request(config: CarrierConfig, trackingNumbers: string[], token?: string): CarrierRequest
  /** A polled answer for these tracking numbers. Never throws. */
  parse(trackingNumbers: string[], res: CarrierResponse, config: CarrierConfig): ParseOutcome
  /** The answers inside a pushed payload (`POST /v1/webhooks/:carrier`), read as a polled answer would be. Never throws. */
  push(body: string, config: CarrierConfig): ParseOutcome
  /** This carrier's settings from the environment, which win over its stored carrier config. */
  env(config: Config): { baseUrl?: string; client: Partial<CarrierConfig>; secret?: string }
}

/** The form to use: the configured one if this carrier reads it, else its default. */
export const formOf = (carrier: Carrier, config: CarrierConfig) => (config.form && carrier.forms.includes(config.form) ? config.form : carrier.forms[0]!)
