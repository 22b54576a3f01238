/**
 * Carrier simulators: one local HTTP server speaking DHL's, DPD's (JSON and SOAP) and GLS's own
 * formats, under `/dhl`, `/dpd` and `/gls`, so tests, the demo and benchmarks exercise the real
 * adapters over real HTTP. Pointing parcelcast at a real carrier is a base URL, not code.
 *
 * The answers have the shapes of the documented fixtures (test/fixtures/*, each naming its
 * source), and a test (test/unit/carriers/simulator-fixtures.test.ts) holds them to it: every
 * field path and every date form the simulator sends appears in a fixture, and a journey
 * scripted after a fixture reads back to exactly what that fixture reads to. Local times are
 * printed in the carrier's zone (DPD: the zone of the locale in the request), across DST edges.
 *
 * Every tracking number has a journey derived from the number itself (same number, same
 * journey), unless one was scripted for it (`script`); scan i becomes visible `stepMs × i` after
 * the simulator first sees the number. Numbers starting with `UNKNOWN` are not known to the
 * carrier. Faults, all optional and deterministic where they can be: latency, a per-carrier rate
 * limit answered with 429 + Retry-After, an error rate (DPD answers with an HTML page, the others
 * with 5xx), repeated scans (duplicates) and scans out of chronological order, short-lived GLS
 * tokens, and `setShape(carrier, 'unreadable')`: dates in a form no adapter reads (a carrier
 * changing its format overnight).
 */
import { XMLParser } from 'fast-xml-parser'
import { escapeXml } from './dpd-soap.ts'
import { dpdZone } from './dpd.ts'

export type CarrierName = 'dhl' | 'dpd' | 'gls'
export type Shape = 'documented' | 'unreadable'

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
  dpdDelisId?: string
  dpdPassword?: string
  start?: number // epoch ms of the first scan of every journey
}

/** One scan as the simulator knows it; each carrier's answer prints it in its own shape. */
export interface SimScan {
  code: string
  /** The long text (DHL description, DPD scan description, GLS description). */
  text: string
  /** The short label (DHL status, DPD label); the text's first clause when absent. */
  label?: string
  place?: string | null
  postalCode?: string | null
  country?: string | null
  depot?: string | null
  at: number
}

export interface Script {
  scans: SimScan[]
  /** DHL's estimate, stated while the journey is not over. */
  estimate?: { from: number; through: number } | null
}

const JOURNEYS: Record<CarrierName, Omit<SimScan, 'at'>[]> = {
  dhl: [
    { code: 'pre-transit', label: 'Electronic notification', text: 'The instruction data for this shipment have been provided by the sender', place: null },
    { code: 'transit', label: 'Picked up', text: 'The shipment has been picked up', place: 'Leipzig', country: 'DE' },
    { code: 'transit', label: 'Processed', text: 'The shipment has been processed in the parcel center', place: 'Börnicke', country: 'DE' },
    {
      code: 'transit',
      label: 'Out for delivery',
      text: 'Out for delivery: the shipment has been loaded onto the delivery vehicle',
      place: 'Berlin',
      country: 'DE'
    },
    { code: 'delivered', label: 'Delivered', text: 'The shipment has been successfully delivered', place: 'Berlin', postalCode: '10115', country: 'DE' }
  ],
  dpd: [
    { code: 'PickedUp', label: 'Picked up', text: 'Picked up by DPD.', place: 'Leipzig', depot: '0104' },
    { code: 'BetweenDepots', label: 'In transit', text: 'In transit.', place: 'Leipzig', depot: '0104' },
    { code: 'Depot', label: 'At parcel delivery centre', text: 'At parcel delivery centre.', place: 'Hamburg', depot: '0120' },
    { code: 'Courier', label: 'Out for delivery', text: 'Out for delivery.', place: 'Hamburg', depot: '0120' },
    { code: 'Delivered', label: 'Delivered', text: 'Delivered.', place: 'Hamburg', depot: '0120' }
  ],
  gls: [
    { code: 'PREADVICE', text: 'The parcel data was entered into the GLS IT system.', place: null },
    { code: 'INTRANSIT', text: 'The parcel has left the parcel center.', place: 'Neuenstein', country: 'DE' },
    { code: 'INWAREHOUSE', text: 'The parcel has reached the parcel center.', place: 'Köln', postalCode: '50667', country: 'DE' },
    { code: 'INDELIVERY', text: 'The parcel is expected to be delivered during the day.', place: 'Köln', country: 'DE' },
    { code: 'DELIVERED', text: 'The parcel has been delivered.', place: 'Köln', postalCode: '50667', country: 'DE' }
  ]
}

const BERLIN = 'Europe/Berlin'

function hash(s: string): number {
  let h = 2166136261
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619)
  return h >>> 0
}

const formats = new Map<string, Intl.DateTimeFormat>()
/** Wall time of `ms` in `zone`, and the zone's offset then in minutes. */
function wall(ms: number, zone: string) {
  let f = formats.get(zone)
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric'
    })
    formats.set(zone, f)
  }
  const p: Record<string, number> = {}
  for (const part of f.formatToParts(ms)) if (part.type !== 'literal') p[part.type] = Number(part.value)
  const offset = (Date.UTC(p.year!, p.month! - 1, p.day!, p.hour!, p.minute!, p.second!) - Math.floor(ms / 1000) * 1000) / 60_000
  return { y: p.year!, mo: p.month!, d: p.day!, h: p.hour!, mi: p.minute!, s: p.second!, offset }
}
const p2 = (n: number) => String(n).padStart(2, '0')
const isoDate = (w: ReturnType<typeof wall>) => `${w.y}-${p2(w.mo)}-${p2(w.d)}`
const isoTime = (w: ReturnType<typeof wall>) => `${p2(w.h)}:${p2(w.mi)}:${p2(w.s)}`
const offsetText = (min: number, colon: boolean) => `${min < 0 ? '-' : '+'}${p2(Math.floor(Math.abs(min) / 60))}${colon ? ':' : ''}${p2(Math.abs(min) % 60)}`

/** `2026-10-23T18:12:04` (no offset), `…+02:00`, `…+0200`, `….000+02:00` in `zone`. */
export function localIso(ms: number, zone: string, style: 'none' | 'colon' | 'compact' | 'millis-colon') {
  const w = wall(ms, zone)
  const base = `${isoDate(w)}T${isoTime(w)}`
  if (style === 'none') return base
  if (style === 'millis-colon') return `${base}.000${offsetText(w.offset, true)}`
  return `${base}${offsetText(w.offset, style === 'colon')}`
}

/** DPD's US form: `8/18/2021 2:43:31 PM` in `zone`. */
export function usDate(ms: number, zone: string) {
  const w = wall(ms, zone)
  return `${w.mo}/${w.d}/${w.y} ${w.h % 12 === 0 ? 12 : w.h % 12}:${p2(w.mi)}:${p2(w.s)} ${w.h < 12 ? 'AM' : 'PM'}`
}

/** A form no adapter reads: day first, no seconds (`19/01/2026 17:42`). */
const unreadable = (ms: number, zone: string) => {
  const w = wall(ms, zone)
  return `${p2(w.d)}/${p2(w.mo)}/${w.y} ${p2(w.h)}:${p2(w.mi)}`
}

const soapXml = new XMLParser({ removeNSPrefix: true, ignoreAttributes: true, parseTagValue: false, trimValues: true })
const soapEnvelope = (body: string) =>
  `<?xml version="1.0" encoding="UTF-8"?><soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>${body}</soap:Body></soap:Envelope>`
const line = (text: string, bold = false) => `<content>${escapeXml(text)}</content><bold>${bold}</bold><paragraph>false</paragraph>`

export function createCarrierSimulator(opts: SimulatorOptions = {}) {
  const o = {
    port: 0,
    latencyMs: 0,
    stepMs: 1000,
    rateLimitPerSec: 0,
    errorRate: 0,
    duplicateEvery: 0,
    glsTokenTtlSeconds: 3600,
    dhlApiKey: 'sim-dhl-key',
    glsClientId: 'sim-gls-id',
    glsClientSecret: 'sim-gls-secret',
    dpdDelisId: 'sim-delis',
    dpdPassword: 'sim-dpd-password',
    start: Date.UTC(2026, 10, 20, 6, 0),
    ...opts
  }
  const firstSeen = new Map<string, number>()
  const tokens = new Map<string, number>() // token → expires at
  const dpdTokens = new Set<string>()
  const windows = new Map<CarrierName, { second: number; count: number }>()
  const requests: { carrier: CarrierName; at: number; status: number }[] = []
  const scripts = new Map<string, Script>()
  const shapes = new Map<CarrierName, Shape>()
  let calls = 0

  /** The journey of `tn`: the scripted one, or one derived from the number. */
  function journey(carrier: CarrierName, tn: string): Script {
    const scripted = scripts.get(`${carrier}:${tn}`)
    if (scripted) return scripted
    const base = o.start + (hash(tn) % 600) * 60_000
    const scans = JOURNEYS[carrier].map((s, i) => ({ ...s, at: base + i * 3 * 3_600_000 + (hash(tn + i) % 3_000) * 1000 }))
    const last = scans.at(-1)!.at
    return { scans, estimate: { from: last - 3_600_000, through: last + 3 * 3_600_000 } }
  }

  /** The scans of `tn` visible now (all of them once the journey is over), as the carrier would list them. */
  function scans(carrier: CarrierName, tn: string) {
    const seen = firstSeen.get(`${carrier}:${tn}`) ?? Date.now()
    firstSeen.set(`${carrier}:${tn}`, seen)
    const { scans: steps } = journey(carrier, tn)
    const visible = o.stepMs <= 0 ? steps.length : Math.min(steps.length, 1 + Math.floor((Date.now() - seen) / o.stepMs))
    const list = steps.slice(0, visible)
    if (scripts.has(`${carrier}:${tn}`)) return list // as scripted, in that order
    const out = [...list]
    if (o.duplicateEvery > 0) for (let i = 0; i < list.length; i += o.duplicateEvery) out.push(list[i]!)
    // Carriers list newest first, and not always strictly: swap a pair when the number says so.
    out.reverse()
    if (hash(tn) % 3 === 0 && out.length > 2) [out[1], out[2]] = [out[2]!, out[1]!]
    return out
  }

  /** Oldest first, as DPD lists them: a scripted journey as scripted. */
  const oldestFirst = (carrier: CarrierName, tn: string) => (scripts.has(`${carrier}:${tn}`) ? scans(carrier, tn) : [...scans(carrier, tn)].reverse())
  const over = (carrier: CarrierName, tn: string) => scans(carrier, tn).length >= journey(carrier, tn).scans.length

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
  const json = (status: number, body: unknown, headers: Record<string, string> = {}) =>
    new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json', ...headers } })
  const xml = (status: number, body: string) => new Response(body, { status, headers: { 'content-type': 'text/xml; charset=utf-8' } })
  const tooMany = () => json(429, { title: 'Too Many Requests', status: 429 }, { 'retry-after': '1' })
  const errorPage = () =>
    new Response('<!DOCTYPE html><html><body><h1>Service temporarily unavailable</h1></body></html>', { status: 200, headers: { 'content-type': 'text/html' } })
  const label = (s: SimScan) => s.label ?? s.text.split(/[:.]/)[0]!

  function dhl(url: URL, req: Request): Response {
    if (req.headers.get('dhl-api-key') !== o.dhlApiKey) return json(401, { title: 'Unauthorized', status: 401, detail: 'Invalid API key' })
    if (limited('dhl')) return tooMany()
    if (failing()) return json(503, { title: 'Service Unavailable', status: 503 })
    const tn = url.searchParams.get('trackingNumber') ?? ''
    if (!tn || tn.startsWith('UNKNOWN'))
      return new Response(
        JSON.stringify({
          type: 'https://api.dhl.com/probs/404',
          title: 'No result found',
          status: 404,
          detail: 'No shipment with given tracking number found.'
        }),
        { status: 404, headers: { 'content-type': 'application/problem+json' } }
      )
    const broken = shapes.get('dhl') === 'unreadable'
    // parcel-de prints Berlin wall time without an offset; other DHL services add one.
    const events = scans('dhl', tn).map((s, i) => ({
      timestamp: broken ? unreadable(s.at, BERLIN) : localIso(s.at, BERLIN, i % 2 ? 'colon' : 'none'),
      ...(s.place || s.postalCode || s.country
        ? {
            location: {
              address: {
                ...(s.country ? { countryCode: s.country } : {}),
                ...(s.postalCode ? { postalCode: s.postalCode } : {}),
                ...(s.place ? { addressLocality: s.place } : {})
              }
            }
          }
        : {}),
      statusCode: s.code,
      status: label(s),
      description: s.text
    }))
    const { estimate } = journey('dhl', tn)
    // A scripted answer states its estimate as scripted; a made-up one until the journey is over.
    const stated =
      estimate && (scripts.has(`dhl:${tn}`) || !over('dhl', tn))
        ? {
            estimatedTimeOfDelivery: localIso(estimate.through, BERLIN, 'millis-colon'),
            estimatedDeliveryTimeFrame: {
              estimatedFrom: localIso(estimate.from, BERLIN, 'millis-colon'),
              estimatedThrough: localIso(estimate.through, BERLIN, 'millis-colon')
            }
          }
        : {}
    return json(200, { shipments: [{ id: tn, service: 'parcel-de', status: events[0], ...stated, events }] })
  }

  function dpdJson(path: string[]): Response {
    if (limited('dpd')) return tooMany()
    if (failing()) return errorPage()
    const locale = decodeURIComponent(path[0] ?? 'de_DE')
    const pln = decodeURIComponent(path[1] ?? '')
    if (pln.startsWith('UNKNOWN')) return json(200, { parcellifecycleResponse: { parcelLifeCycleData: null } })
    const zone = dpdZone(locale)
    const broken = shapes.get('dpd') === 'unreadable'
    const scan = oldestFirst('dpd', pln).map((s) => {
      const w = wall(s.at, zone)
      return {
        date: broken ? unreadable(s.at, zone) : `${isoDate(w)}T${isoTime(w)}`,
        scanData: {
          ...(broken ? {} : { scanDate: isoDate(w), scanTime: isoTime(w) }),
          ...(s.depot ? { scanDepot: { businessUnit: '015', number: s.depot } } : {}),
          ...(s.place ? { location: s.place } : {}),
          scanType: { name: s.code }
        },
        scanDescription: { content: [s.text] }
      }
    })
    return json(200, {
      parcellifecycleResponse: { parcelLifeCycleData: { shipmentInfo: { parcelLabelNumber: pln, productName: 'DPD Classic' }, scanInfo: { scan } } }
    })
  }

  async function dpdSoap(service: string, req: Request): Promise<Response> {
    const parsed = await req.text().then((t) => {
      try {
        return soapXml.parse(t)
      } catch {
        return null
      }
    })
    const body = parsed?.Envelope?.Body
    if (service === 'LoginService/V2_1') {
      const auth = body?.getAuth
      if (auth?.delisId !== o.dpdDelisId || auth?.password !== o.dpdPassword) {
        return xml(
          500,
          soapEnvelope(
            '<soap:Fault><faultcode>soap:Server</faultcode><faultstring>Fault occured</faultstring><detail><authenticationFault><errorCode>LOGIN_5</errorCode><errorMessage>The login data is not valid.</errorMessage></authenticationFault></detail></soap:Fault>'
          )
        )
      }
      const token = `sim-dpd-${crypto.randomUUID()}`
      dpdTokens.add(token)
      return xml(
        200,
        soapEnvelope(
          `<getAuthResponse xmlns="http://dpd.com/common/service/types/LoginService/2.1"><return><delisId>${escapeXml(o.dpdDelisId)}</delisId><customerUid>${escapeXml(o.dpdDelisId)}</customerUid><authToken>${token}</authToken><depot>0530</depot><authTokenExpires>${localIso(Date.now() + 86_400_000, BERLIN, 'none')}.06</authTokenExpires></return></getAuthResponse>`
        )
      )
    }
    if (service !== 'ParcelLifeCycleService/V2_0')
      return xml(404, soapEnvelope('<soap:Fault><faultcode>soap:Client</faultcode><faultstring>no such service</faultstring></soap:Fault>'))
    const header = parsed?.Envelope?.Header?.authentication
    if (!header || !dpdTokens.has(String(header.authToken ?? ''))) {
      return xml(
        500,
        soapEnvelope(
          '<soap:Fault><faultcode>soap:Server</faultcode><faultstring>Fault occured</faultstring><detail><authenticationFault><errorCode>LOGIN_8</errorCode><errorMessage>The authToken is not valid.</errorMessage></authenticationFault></detail></soap:Fault>'
        )
      )
    }
    if (limited('dpd')) return tooMany()
    if (failing()) return errorPage()
    const pln = String(body?.getTrackingData?.parcelLabelNumber ?? '')
    const zone = dpdZone(String(header.messageLanguage ?? 'de_DE'))
    const shipmentInfo =
      '<shipmentInfo><serviceDescription><label>' +
      line('Your DPD service:') +
      '</label><content>' +
      line('DPD Classic') +
      '</content></serviceDescription><status>SHIPMENT</status><statusHasBeenReached>false</statusHasBeenReached><isCurrentStatus>false</isCurrentStatus><showContactInfo>false</showContactInfo></shipmentInfo>'
    if (!pln || pln.startsWith('UNKNOWN'))
      return xml(
        200,
        soapEnvelope(
          `<getTrackingDataResponse xmlns="http://dpd.com/common/service/types/ParcelLifeCycleService/2.0"><trackingresult>${shipmentInfo}</trackingresult></getTrackingDataResponse>`
        )
      )
    const broken = shapes.get('dpd') === 'unreadable'
    const list = oldestFirst('dpd', pln)
    const entries = list
      .map(
        (s, i) =>
          `<statusInfo><status>${escapeXml(s.code)}</status><label>${line(label(s), true)}</label><description><content>${line(s.text)}</content></description>` +
          `<statusHasBeenReached>true</statusHasBeenReached><isCurrentStatus>${i === list.length - 1}</isCurrentStatus><showContactInfo>true</showContactInfo>` +
          (s.place ? `<location>${line(s.place, true)}</location>` : '') +
          `<date>${line(broken ? unreadable(s.at, zone) : usDate(s.at, zone), true)}</date></statusInfo>`
      )
      .join('')
    return xml(
      200,
      soapEnvelope(
        `<getTrackingDataResponse xmlns="http://dpd.com/common/service/types/ParcelLifeCycleService/2.0"><trackingresult>${shipmentInfo}${entries}</trackingresult></getTrackingDataResponse>`
      )
    )
  }

  async function gls(path: string, req: Request): Promise<Response> {
    if (path === '/oauth2/v1/token') {
      const expected = `Basic ${Buffer.from(`${o.glsClientId}:${o.glsClientSecret}`).toString('base64')}`
      if (req.method !== 'POST' || req.headers.get('authorization') !== expected || !(await req.text()).includes('grant_type=client_credentials'))
        return json(401, { error: 'invalid_client' })
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
    const broken = shapes.get('gls') === 'unreadable'
    return json(200, {
      parcels: ids.map((id) => {
        if (id.startsWith('UNKNOWN')) return { requested: id, errorCode: 'E_404_01', errorMessage: 'No parcel found for this tracking number' }
        const list = scans('gls', id)
        return {
          requested: id,
          unitno: id,
          status: list[0]?.code ?? 'PREADVICE',
          statusDateTime: list[0] ? localIso(list[0].at, BERLIN, 'compact') : null,
          events: list.map((s) => ({
            code: s.code,
            description: s.text,
            ...(s.place ? { city: s.place } : {}),
            ...(s.postalCode ? { postalCode: s.postalCode } : {}),
            ...(s.country ? { country: s.country } : {}),
            eventDateTime: broken ? unreadable(s.at, BERLIN) : localIso(s.at, BERLIN, 'compact')
          }))
        }
      })
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
      else if (carrier === 'dpd' && rest[0] === 'rest' && rest[1] === 'plc') res = dpdJson(rest.slice(2))
      else if (carrier === 'dpd' && rest[0] === 'soap' && rest[1] === 'services' && req.method === 'POST') res = await dpdSoap(rest.slice(2).join('/'), req)
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
    /** The journey of `tn` from now on: these scans (in the order given) and, for DHL, this estimate. */
    script(carrier: CarrierName, tn: string, script: Script) {
      scripts.set(`${carrier}:${tn}`, script)
    },
    /** `unreadable`: the carrier starts printing dates in a form no adapter reads; `documented` undoes it. */
    setShape(carrier: CarrierName, shape: Shape) {
      shapes.set(carrier, shape)
    },
    stop: () => server.stop(true)
  }
}

export type CarrierSimulator = ReturnType<typeof createCarrierSimulator>
