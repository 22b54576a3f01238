/**
 * `bun run carriers:sim`: the DHL, DPD and GLS simulators on one port (SIM_PORT, default 4000).
 * Point parcelcast at them with DHL_BASE_URL=http://127.0.0.1:4000/dhl, DPD_BASE_URL=…/dpd,
 * GLS_BASE_URL=…/gls (keys: see src/carriers/simulator.ts; DPD's SOAP form: DPD_FORM=soap,
 * DPD_DELIS_ID=sim-delis, DPD_PASSWORD=sim-dpd-password). Faults from the environment:
 * SIM_LATENCY_MS, SIM_STEP_MS, SIM_RATE_LIMIT, SIM_ERROR_RATE, SIM_DUPLICATE_EVERY, SIM_GLS_TOKEN_TTL, SIM_UNREADABLE.
 */
import { createCarrierSimulator } from '../src/carriers/simulator.ts'

const num = (name: string, def: number) => (process.env[name] ? Number(process.env[name]) : def)
const sim = createCarrierSimulator({
  port: num('SIM_PORT', 4000),
  latencyMs: num('SIM_LATENCY_MS', 100),
  stepMs: num('SIM_STEP_MS', 5000),
  rateLimitPerSec: num('SIM_RATE_LIMIT', 0),
  errorRate: num('SIM_ERROR_RATE', 0.02),
  duplicateEvery: num('SIM_DUPLICATE_EVERY', 3),
  glsTokenTtlSeconds: num('SIM_GLS_TOKEN_TTL', 300)
})
console.log(JSON.stringify({ msg: 'carrier simulators listening', dhl: `${sim.url}/dhl`, dpd: `${sim.url}/dpd`, gls: `${sim.url}/gls`, options: sim.options }))
// SIM_UNREADABLE=dpd (or dhl, gls, comma-separated): that carrier prints dates in a form no adapter reads.
for (const c of (process.env.SIM_UNREADABLE ?? '').split(',').filter(Boolean)) sim.setShape(c as 'dhl' | 'dpd' | 'gls', 'unreadable')
process.on('SIGINT', () => (sim.stop(), process.exit(0)))
process.on('SIGTERM', () => (sim.stop(), process.exit(0)))
