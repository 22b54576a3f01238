/**
 * The carriers parcelcast has an adapter for: the one list the pollers, the webhooks,
 * `GET /v1/carriers`, the known-carrier check and the tests read. Adding a carrier is one file
 * exporting a `Carrier` (carrier.ts) and one line here (and its settings' variables in
 * src/config.ts, if it takes any from the environment).
 */
import type { Carrier } from './carrier.ts'
import { dhl } from './dhl.ts'
import { dpd } from './dpd.ts'
import { gls } from './gls.ts'

export const CARRIERS: readonly Carrier[] = [dhl, dpd, gls]

const byCode = new Map(CARRIERS.map((c) => [c.code, c]))

export const carrierFor = (code: string): Carrier | undefined => byCode.get(code)
