/**
 * Carrier simulators: one local HTTP server speaking DHL's, DPD's and GLS's own formats, under
 * `/dhl`, `/dpd` and `/gls`, so tests, the demo and benchmarks exercise the real adapters over
 * real HTTP. Pointing parcelcast at a real carrier is a base URL, not code.
 *
 * Every tracking number has a scripted journey derived from the number itself (same number,
 * same journey); scan i becomes visible `stepMs × i` after the simulator first sees the number.
 * Numbers starting with `UNKNOWN` are not known to the carrier. Faults, all optional and
 * deterministic where they can be: latency, a per-carrier rate limit answered with 429 +
 * Retry-After, an error rate (DPD answers with an HTML page, the others with 5xx), repeated
 * scans (duplicates) and scans out of chronological order, and short-lived GLS tokens.
 */
export type CarrierName = 'dhl' | 'dpd' | 'gls'

export interface SimulatorOptions {
  port?: number
  latencyMs?: number
  stepMs?: number
  /** Requests per second per carrier before 429s; 0 = unlimited. */
  rateLimitPerSec?: number
  /** Share of tracking calls answered with an error page, 0..1. */
  errorRate?: number
  /** Repeat every n-th scan in answers (a carrier re-delivering a fact); 0 = never. */
  duplicateEvery?: number
  glsTokenTtlSeconds?: number
  dhlApiKey?: string
  glsClientId?: string
  glsClientSecret?: string
  start?: number // epoch ms of the first scan of every journey
}

const JOURNEYS: Record<CarrierName, { code: string; text: string; place: string }[]> = {
  dhl: [
    { code: 'pre-transit', text: 'The instruction data for this shipment have been provided by the sender', place: '' },
    { code: 'transit', text: 'The shipment has been picked up', place: 'Leipzig' },
    { code: 'transit', text: 'The shipment has been processed in the parcel center', place: 'Börnicke' },
    { code: 'transit', text: 'Out for delivery: the shipment has been loaded onto the delivery vehicle', place: 'Berlin' },
    { code: 'delivered', text: 'The shipment has been successfully delivered', place: 'Berlin' }
  ],
  dpd: [
    { code: 'PickedUp', text: 'Picked up by DPD.', place: 'Leipzig' },
    { code: 'BetweenDepots', text: 'In transit.', place: 'Leipzig' },
    { code: 'Depot', text: 'At parcel delivery centre.', place: 'Hamburg' },
    { code: 'Courier', text: 'Out for delivery.', place: 'Hamburg' },
    { code: 'Delivered', text: 'Delivered.', place: 'Hamburg' }
  ],
  gls: [
    { code: 'PREADVICE', text: 'The parcel data was entered into the GLS IT system.', place: '' },
    { code: 'INTRANSIT', text: 'The parcel has left the parcel center.', place: 'Neuenstein' },
    { code: 'INWAREHOUSE', text: 'The parcel has reached the parcel center.', place: 'Köln' },
    { code: 'INDELIVERY', text: 'The parcel is expected to be delivered during the day.', place: 'Köln' },
    { code: 'DELIVERED', text: 'The parcel has been delivered.', place: 'Köln' }
  ]
}

function hash(s: string): number {
  let h = 2166136261
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619)
  return h >>> 0
}

export function createCarrierSimulator(opts: SimulatorOptions = {}) {
  const o = {
    port: 0, latencyMs: 0, stepMs: 1000, rateLimitPerSec: 0, errorRate: 0, duplicateEvery: 0, glsTokenTtlSeconds: 3600,
    dhlApiKey: 'sim-dhl-key', glsClientId: 'sim-gls-id', glsClientSecret: 'sim-gls-secret', start: Date.UTC(2026, 10, 20, 6, 0), ...opts
  }
  const firstSeen = new Map<string, number>()
  const tokens = new Map<string, number>() // token → expires at
  const windows = new Map<CarrierName, { second: number; count: number }>()
  const requests: { carrier: CarrierName; at: number; status: number }[] = []
  let calls = 0

  /** The scans of `tn` visible now (all of them once the journey is over). */
  function scans(carrier: CarrierName, tn: string) {
    const seen = firstSeen.get(`${carrier}:${tn}`) ?? Date.now()
    firstSeen.set(`${carrier}:${tn}`, seen)
    const steps = JOURNEYS[carrier]
    const visible = o.stepMs <= 0 ? steps.length : Math.min(steps.length, 1 + Math.floor((Date.now() - seen) / o.stepMs))
    const base = o.start + (hash(tn) % 600) * 60_000
    const list = steps.slice(0, visible).map((s, i) => ({ ...s, at: base + i * 3 * 3_600_000 + (hash(tn + i) % 3_000) * 1000 }))
    const out = [...list]
    if (o.duplicateEvery > 0) for (let i = 0; i < list.length; i += o.duplicateEvery) out.push(list[i]!)
    // Carriers list newest first, and not always strictly: swap a pair when the number says so.
    out.reverse()
    if (hash(tn) % 3 === 0 && out.length > 2) [out[1], out[2]] = [out[2]!, out[1]!]
    return out
  }

  function limited(carrier: CarrierName): boolean {
    if (!o.rateLimitPerSec) return false
    const second = Math.floor(Date.now() / 1000)
    const w = windows.get(carrier)
    if (!w || w.second !== second) {
      windows.set(carrier, { second, count: 1 })
      return false
    }
    return ++w.count > o.rateLimitPerSec
  }

  const failing = () => o.errorRate > 0 && (hash(String(++calls)) % 1000) / 1000 < o.errorRate
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) => new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } })
  const tooMany = () => json(429, { title: 'Too Many Requests', status: 429 }, { 'retry-after': '1' })
  const iso = (ms: number, style: 'z' | 'colon' | 'none' | 'compact') => {
    // Journeys are in November, so Berlin wall time is UTC+1 (CET) throughout.
    const local = new Date(ms + 3_600_000).toISOString().slice(0, 19)
    if (style === 'z') return new Date(ms).toISOString()
    if (style === 'none') return local
    return style === 'colon' ? `${local}+01:00` : `${local}+0100`
  }
  const usDate = (ms: number) => {
    // DPD prints local wall time: Berlin, UTC+1 in November.
    const d = new Date(ms + 3_600_000)
    const h = d.getUTCHours()
    const p = (n: number) => String(n).padStart(2, '0')
    return `${d.getUTCMonth() + 1}/${d.getUTCDate()}/${d.getUTCFullYear()} ${h % 12 === 0 ? 12 : h % 12}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} ${h < 12 ? 'AM' : 'PM'}`
  }

  function dhl(url: URL, req: Request): Response {
    if (req.headers.get('dhl-api-key') !== o.dhlApiKey) return json(401, { title: 'Unauthorized', status: 401, detail: 'Invalid API key' })
    if (limited('dhl')) return tooMany()
    if (failing()) return json(503, { title: 'Service Unavailable', status: 503 })
    const tn = url.searchParams.get('trackingNumber') ?? ''
    if (!tn || tn.startsWith('UNKNOWN')) return new Response(JSON.stringify({ type: 'about:blank', title: 'No result found', status: 404, detail: 'No shipment with given tracking number found.' }), { status: 404, headers: { 'content-type': 'application/problem+json' } })
    const styles = ['z', 'colon', 'none'] as const
    const events = scans('dhl', tn).map((s, i) => ({
      timestamp: iso(s.at, styles[(hash(tn) + i) % 3]!),
      location: s.place ? { address: { addressLocality: s.place, countryCode: 'DE' } } : undefined,
      statusCode: s.code, status: s.text.split(':')[0], description: s.text
    }))
    return json(200, { shipments: [{ id: tn, service: 'parcel-de', status: events[0], events }] })
  }

  function dpd(path: string[]): Response {
    if (limited('dpd')) return tooMany()
    if (failing()) return new Response('<!DOCTYPE html><html><body><h1>Service temporarily unavailable</h1></body></html>', { status: 200, headers: { 'content-type': 'text/html' } })
    const pln = decodeURIComponent(path[1] ?? '')
    if (pln.startsWith('UNKNOWN')) return json(200, { parcellifecycleResponse: { parcelLifeCycleData: null } })
    const scan = scans('dpd', pln).map((s) => ({ date: usDate(s.at), scanData: { scanType: { name: s.code }, location: s.place || null }, scanDescription: { content: [s.text] } }))
    return json(200, { parcellifecycleResponse: { parcelLifeCycleData: { shipmentInfo: { parcelLabelNumber: pln }, scanInfo: { scan } } } })
  }

  async function gls(path: string, req: Request): Promise<Response> {
    if (path === '/oauth2/v1/token') {
      const expected = `Basic ${Buffer.from(`${o.glsClientId}:${o.glsClientSecret}`).toString('base64')}`
      if (req.method !== 'POST' || req.headers.get('authorization') !== expected || !(await req.text()).includes('grant_type=client_credentials')) return json(401, { error: 'invalid_client' })
      const token = `sim-${crypto.randomUUID()}`
      tokens.set(token, Date.now() + o.glsTokenTtlSeconds * 1000)
      return json(200, { access_token: token, token_type: 'Bearer', expires_in: o.glsTokenTtlSeconds })
    }
    const m = /^\/track-and-trace-v1\/tracking\/simple\/trackids\/([^/]+)$/.exec(path)
    if (!m) return json(404, { error: 'no such endpoint' })
    const token = req.headers.get('authorization')?.replace(/^Bearer /, '') ?? ''
    if ((tokens.get(token) ?? 0) < Date.now()) return json(401, { error: 'invalid_token', error_description: 'The access token expired' })
    if (limited('gls')) return tooMany()
    if (failing()) return json(500, { error: 'internal' })
    const ids = decodeURIComponent(m[1]!).split(',')
    if (ids.length > 10) return json(400, { error: 'at most 10 track ids' })
    return json(200, {
      parcels: ids.map((id) =>
        id.startsWith('UNKNOWN')
          ? { requested: id, errorCode: '404', errorMessage: 'No parcel found for this tracking number' }
          : { requested: id, unitno: id, events: scans('gls', id).map((s, i) => ({ code: s.code, description: s.text, city: s.place || null, country: 'DE', eventDateTime: iso(s.at, i % 2 ? 'compact' : 'colon') })) }
      )
    })
  }

  const server = Bun.serve({
    port: o.port,
    hostname: '127.0.0.1',
    async fetch(req) {
      if (o.latencyMs) await Bun.sleep(o.latencyMs)
      const url = new URL(req.url)
      const [, carrier, ...rest] = url.pathname.split('/')
      let res: Response
      if (carrier === 'dhl' && rest.join('/') === 'track/shipments') res = dhl(url, req)
      else if (carrier === 'dpd' && rest[0] === 'rest' && rest[1] === 'plc') res = dpd(rest.slice(2))
      else if (carrier === 'gls') res = await gls(`/${rest.join('/')}`, req)
      else res = json(404, { error: 'unknown simulator path' })
      if (carrier === 'dhl' || carrier === 'dpd' || carrier === 'gls') requests.push({ carrier, at: Date.now(), status: res.status })
      if (requests.length > 100_000) requests.splice(0, 50_000)
      return res
    }
  })

  return {
    url: `http://127.0.0.1:${server.port}`,
    port: server.port,
    options: o,
    /** Every request answered so far (bounded to the last 100,000), for tests that count. */
    requests,
    /** The scans a tracking number has by now, as the carrier would list them. */
    scans,
    stop: () => server.stop(true)
  }
}

export type CarrierSimulator = ReturnType<typeof createCarrierSimulator>
