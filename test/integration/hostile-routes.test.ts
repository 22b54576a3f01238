/**
 * Property tests at every route, over the wire: arbitrary JSON, strings with control characters,
 * NUL and unpaired surrogates, huge numbers, deep nesting, in bodies, query strings, path
 * parameters and carrier pushes. Whatever comes in: never a 5xx, never an unhandled rejection,
 * and never a changed row for a refused value (a row appears only for an `inserted` outcome or
 * a 2xx create).
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import fc from 'fast-check'
import { sign } from '../../src/carriers/webhooks.ts'
import { isStorableText } from '../../src/pipeline/storable.ts'
import { createTestDb, type TestDb } from '../support/db.ts'
import { API_KEY, testService } from '../support/service.ts'

setDefaultTimeout(120_000)

const SECRETS = { dhl: 'dhl-webhook-secret-0123', dpd: 'dpd-webhook-secret-0123', gls: 'gls-webhook-secret-0123' }
const RUNS = 150
let db: TestDb
let service: ReturnType<typeof testService>
let base: string
const unhandled: unknown[] = []
const onUnhandled = (err: unknown) => void unhandled.push(err)

const fixtures = {
  dhl: await Bun.file(new URL('../fixtures/dhl/journey.json', import.meta.url)).json(),
  dpd: await Bun.file(new URL('../fixtures/dpd/journey.json', import.meta.url)).json(),
  gls: await Bun.file(new URL('../fixtures/gls/two-parcels.json', import.meta.url)).json()
}

beforeAll(async () => {
  process.on('unhandledRejection', onUnhandled)
  db = await createTestDb()
  service = testService({
    DATABASE_URL: db.url,
    POLL_ENABLED: 'false',
    DHL_WEBHOOK_SECRET: SECRETS.dhl,
    DPD_WEBHOOK_SECRET: SECRETS.dpd,
    GLS_WEBHOOK_SECRET: SECRETS.gls
  })
  await service.start()
  base = `http://127.0.0.1:${service.port}`
  const ids: [string, string][] = [
    ...fixtures.dhl.shipments.map((s: { id: string }) => ['dhl', s.id] as [string, string]),
    ['dpd', fixtures.dpd.parcellifecycleResponse.parcelLifeCycleData.shipmentInfo.parcelLabelNumber],
    ...fixtures.gls.parcels.map((p: { requested: string }) => ['gls', p.requested] as [string, string]),
    ...Array.from({ length: 5 }, (_, i) => ['dhl', `PROP${i}`] as [string, string])
  ]
  for (const [carrier, tn] of ids)
    await db.sql`insert into shipments (carrier, tracking_number) values (${carrier}, ${tn.replace(/\s+/g, '').toUpperCase()}) on conflict do nothing`
})
afterAll(async () => {
  process.off('unhandledRejection', onUnhandled)
  await service.stop()
  await db.drop()
  expect(unhandled).toEqual([])
})

// ---- hostile values -------------------------------------------------------------------------

const nasty = [
  '\u0000',
  '\ud800',
  '\udbff',
  '\udc00',
  '\udfff',
  '\u0001',
  '\u001f',
  '\u007f',
  '\u0085',
  '\u2028',
  '\ufeff',
  '\ufffe',
  '😀',
  '\\',
  '"',
  '%',
  'a',
  ' ',
  '/',
  ':'
]
const hostileString = fc.oneof(
  fc.string({ maxLength: 20 }),
  fc.string({ unit: 'binary', maxLength: 20 }),
  fc.string({ unit: fc.constantFrom(...nasty), maxLength: 20 }),
  fc.constantFrom(
    '',
    ' ',
    'a\u0000b',
    '\ud800',
    'x'.repeat(5000),
    '2026-02-30T25:61:61Z',
    '9999-99-99T99:99:99',
    '0000-01-01T00:00:00Z',
    '9999-12-31T23:59:59-14:00',
    '2026-11-20T08:00:00Z',
    'shipment:*',
    'shipment:dhl:PROP1',
    'user:u\u0000',
    'dhl',
    'PROP1',
    '__proto__',
    'constructor'
  )
)
const hugeNumber = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(1e308, -1e308, 2 ** 53 + 1, -0, 5e-324, 1e21, 86_401, 0, -1))
function nest(depth: number, leaf: unknown = 'x'): unknown {
  let v = leaf
  for (let i = 0; i < depth; i++) v = i % 2 ? { k: v } : [v]
  return v
}
// Around the limit of 32 (deeper documents, up to 200,000 levels, are in the raw-body test below).
const deep = fc.integer({ min: 20, max: 40 }).map((d) => nest(d))
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  { arbitrary: hostileString, weight: 4 },
  { arbitrary: hugeNumber, weight: 2 },
  fc.boolean(),
  fc.constant(null),
  deep,
  fc.jsonValue({ maxDepth: 3 }),
  fc.array(hostileString, { maxLength: 3 }),
  fc.dictionary(hostileString, hostileString, { maxKeys: 3 })
)
/** A field that is often right, so that requests get past the first check and reach deeper ones. */
const mostly = <T>(good: fc.Arbitrary<T>, weight = 3) => fc.oneof({ arbitrary: good, weight }, { arbitrary: hostileValue, weight: 2 })

// ---- the wire -------------------------------------------------------------------------------

async function send(method: string, path: string, body?: string, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}), ...headers },
    body
  })
  const text = await res.text()
  let json: any
  try {
    json = JSON.parse(text)
  } catch {
    json = undefined
  }
  return { status: res.status, json, text }
}

const counts = async () =>
  (
    await db.sql<{ s: number; e: number; u: string | null }[]>`
  select (select count(*)::int from shipments) as s, (select count(*)::int from tracking_events) as e,
         (select max(updated_at)::text from shipments) as u`
  )[0]!

/** Runs `property` RUNS times on `arb`, each against the live service. */
async function check<T>(arb: fc.Arbitrary<T>, property: (value: T) => Promise<void>, runs = RUNS) {
  await fc.assert(fc.asyncProperty(arb, property), { numRuns: runs, seed: 15, endOnFailure: true })
}

function expectNo5xx(res: { status: number; text: string }, what: unknown) {
  expect(res.status, `${JSON.stringify(what)?.slice(0, 300)} → ${res.status} ${res.text.slice(0, 300)}`).toBeLessThan(500)
}

/** `%`-encodes a hostile string for a URL, lone surrogates included (as their WTF-8 bytes). */
function pct(s: string): string {
  let out = ''
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c >= 0xd800 && c <= 0xdfff) out += `%${(0xe0 | (c >> 12)).toString(16)}%${(0x80 | ((c >> 6) & 0x3f)).toString(16)}%${(0x80 | (c & 0x3f)).toString(16)}`
    else
      out += Array.from(Buffer.from(s[i]!, 'utf8'), (b) =>
        /[A-Za-z0-9_.~-]/.test(String.fromCharCode(b)) ? String.fromCharCode(b) : `%${b.toString(16).padStart(2, '0')}`
      ).join('')
  }
  return out
}

// ---- the routes -----------------------------------------------------------------------------

describe('every route, whatever it is sent', () => {
  test('POST /v1/shipments: created rows hold storable text; refused bodies change nothing', async () => {
    const body = fc.oneof(
      {
        arbitrary: fc.record(
          {
            carrier: mostly(fc.constantFrom('dhl', 'DPD', 'gls')),
            trackingNumber: mostly(fc.stringMatching(/^[A-Z0-9]{1,12}$/)),
            reference: fc.option(hostileValue)
          },
          { requiredKeys: [] }
        ),
        weight: 4
      },
      hostileValue
    )
    await check(body, async (b) => {
      const before = await counts()
      const res = await send('POST', '/v1/shipments', JSON.stringify(b))
      expectNo5xx(res, b)
      if (res.status === 200 || res.status === 201) {
        expect(isStorableText(res.json.reference ?? '')).toBe(true)
        return
      }
      expect(await counts(), JSON.stringify(b)?.slice(0, 200)).toEqual(before)
    })
  })

  test('GET /v1/shipments: any status, carrier, limit or cursor', async () => {
    const cursor = fc.oneof(
      hostileString,
      hostileString.map((s) => Buffer.from(s).toString('base64url')),
      fc.tuple(hostileString, fc.uuid()).map(([ts, id]) => Buffer.from(`${ts}|${id}`).toString('base64url')),
      fc
        .record({
          y: fc.integer({ min: 0, max: 9999 }),
          mo: fc.integer({ min: 0, max: 99 }),
          d: fc.integer({ min: 0, max: 99 }),
          h: fc.integer({ min: 0, max: 99 })
        })
        .map(({ y, mo, d, h }) =>
          Buffer.from(
            `${String(y).padStart(4, '0')}-${String(mo).padStart(2, '0')}-${String(d).padStart(2, '0')}T${String(h).padStart(2, '0')}:61:00.000000Z|00000000-0000-0000-0000-000000000000`
          ).toString('base64url')
        )
    )
    const query = fc.record(
      {
        status: mostly(fc.constantFrom('pending', 'delivered', '')),
        carrier: mostly(fc.constantFrom('dhl', 'gls', '')),
        limit: mostly(fc.constantFrom('1', '200'), 1),
        cursor
      },
      { requiredKeys: ['cursor'] }
    )
    await check(query, async (q) => {
      const qs = Object.entries(q)
        .map(([k, v]) => `${k}=${pct(typeof v === 'string' ? v : (JSON.stringify(v) ?? ''))}`)
        .join('&')
      const res = await send('GET', `/v1/shipments?${qs}`)
      expectNo5xx(res, q)
      if (res.status === 200) expect(Array.isArray(res.json.items)).toBe(true)
    })
  })

  test('GET, DELETE /v1/shipments/:id and GET …/events: any id, after and limit', async () => {
    const [real] = await db.sql<{ id: string }[]>`select id from shipments where tracking_number = 'PROP0'`
    const input = fc.record({
      id: fc.oneof(hostileString, fc.uuid(), fc.constant(real!.id)),
      after: fc.oneof(hostileString, hugeNumber.map(String)),
      limit: fc.oneof(hostileString, hugeNumber.map(String)),
      method: fc.constantFrom('GET', 'DELETE', 'GET-events')
    })
    await check(input, async ({ id, after, limit, method }) => {
      const before = await counts()
      const path = `/v1/shipments/${pct(id)}`
      const res = method === 'GET-events' ? await send('GET', `${path}/events?after=${pct(after)}&limit=${pct(limit)}`) : await send(method, path)
      expectNo5xx(res, { id, after, limit, method })
      if (!(method === 'DELETE' && res.status === 200)) expect((await counts()).s).toEqual(before.s)
    })
    await db.sql`update shipments set deleted_at = null`
  })

  test('POST /v1/events: events stored are exactly the inserted outcomes; nothing of a refused one', async () => {
    const event = fc.record(
      {
        carrier: mostly(fc.constantFrom('dhl', 'DHL '), 16),
        trackingNumber: mostly(fc.constantFrom('PROP0', 'PROP1', 'prop 2', 'PROP3', 'NOSUCH'), 16),
        carrierStatus: mostly(fc.stringMatching(/^[A-Z]{1,6}$/), 16),
        status: fc.option(mostly(fc.constantFrom('delivered', 'in_transit', 'unknown'), 16), { nil: undefined }),
        occurredAt: mostly(
          fc.date({ min: new Date('2020-01-01'), max: new Date('2030-01-01'), noInvalidDate: true }).map((d) => d.toISOString()),
          16
        ),
        location: fc.option(mostly(fc.string({ maxLength: 10 }), 16), { nil: undefined }),
        description: fc.option(mostly(fc.string({ maxLength: 10 }), 16), { nil: undefined }),
        extra: fc.option(hostileValue, { nil: undefined })
      },
      { requiredKeys: ['carrier', 'trackingNumber', 'carrierStatus', 'occurredAt'] }
    )
    const body = fc.oneof(
      { arbitrary: fc.record({ events: fc.array(fc.oneof({ arbitrary: event, weight: 5 }, hostileValue), { minLength: 1, maxLength: 6 }) }), weight: 5 },
      hostileValue,
      fc.record({ events: hostileValue })
    )
    let inserted = 0
    await check(
      body,
      async (b) => {
        const before = await counts()
        const res = await send('POST', '/v1/events', JSON.stringify(b))
        expectNo5xx(res, b)
        const results: { outcome: string; dedupKey: string }[] = res.json?.results ?? res.json?.error?.results ?? []
        const added = results.filter((r) => r.outcome === 'inserted')
        inserted += added.length
        expect((await counts()).e - before.e, JSON.stringify(b).slice(0, 300)).toBe(added.length)
        if (added.length > 0) {
          const stored = await db.sql<{ dedup_key: string; carrier_status: string; location: string | null; description: string | null }[]>`
          select dedup_key, carrier_status, location, description from tracking_events where dedup_key = any(${added.map((r) => r.dedupKey)}::text[])`
          expect(stored.length).toBe(added.length)
          for (const r of stored) for (const s of [r.carrier_status, r.location ?? '', r.description ?? '']) expect(isStorableText(s)).toBe(true)
        }
      },
      200
    )
    expect(inserted, 'some events were valid and stored').toBeGreaterThan(20)
  })

  test('POST /v1/tokens: refused or a token that verifies within the bounds', async () => {
    const body = fc.oneof(
      {
        arbitrary: fc.record(
          {
            sub: fc.option(mostly(fc.stringMatching(/^[a-z0-9-]{1,20}$/))),
            topics: mostly(fc.array(mostly(fc.constantFrom('shipment:*', 'shipment:dhl:PROP1', 'user:u-1', 'user:a.b@c')), { minLength: 1, maxLength: 4 })),
            ttlSeconds: fc.option(mostly(fc.integer({ min: 1, max: 86_400 })), { nil: undefined })
          },
          { requiredKeys: ['topics'] }
        ),
        weight: 4
      },
      hostileValue
    )
    let minted = 0
    await check(body, async (b) => {
      const res = await send('POST', '/v1/tokens', JSON.stringify(b))
      expectNo5xx(res, b)
      if (res.status !== 201) return
      minted++
      const claims = await service.tokens.verify(res.json.token)
      expect(claims.topics.length).toBeLessThanOrEqual(100)
      expect(claims.exp - Date.now() / 1000).toBeLessThanOrEqual(86_400)
      expect(isStorableText(claims.sub ?? '')).toBe(true)
    })
    expect(minted).toBeGreaterThan(10)
  })

  test('PUT /v1/carriers/:code: any code and name; a refused one changes no carrier', async () => {
    const carriers = async () =>
      (
        await db.sql<
          { n: number; names: string | null }[]
        >`select count(*)::int as n, string_agg(coalesce(name, ''), ',' order by carrier) as names from carrier_configs`
      )[0]!
    const input = fc.record({
      code: mostly(fc.stringMatching(/^[a-z][a-z0-9]{1,8}$/)),
      body: fc.oneof({ arbitrary: fc.record({ name: mostly(fc.string({ maxLength: 20 })) }), weight: 4 }, hostileValue)
    })
    await check(input, async ({ code, body }) => {
      const before = await carriers()
      const res = await send('PUT', `/v1/carriers/${pct(typeof code === 'string' ? code : (JSON.stringify(code) ?? ''))}`, JSON.stringify(body))
      expectNo5xx(res, { code, body })
      if (res.status >= 400) expect(await carriers()).toEqual(before)
      else expect(isStorableText(res.json.name)).toBe(true)
    })
    expect((await send('GET', '/v1/carriers')).status).toBe(200)
  })

  test('POST /v1/webhooks/:carrier: signed pushes with a hostile value anywhere store exactly the inserted scans', async () => {
    type Path = (string | number)[]
    const leaves = (v: unknown, path: Path = []): Path[] =>
      typeof v === 'object' && v !== null ? Object.entries(v).flatMap(([k, x]) => leaves(x, [...path, Array.isArray(v) ? Number(k) : k])) : [path]
    const setAt = (v: unknown, path: Path, value: unknown): unknown => {
      if (path.length === 0) return value
      const copy: any = Array.isArray(v) ? [...v] : { ...(v as object) }
      copy[path[0]!] = setAt(copy[path[0]!], path.slice(1), value)
      return copy
    }
    const push = fc.constantFrom('dhl', 'dpd', 'gls').chain((carrier) => {
      const paths = leaves(fixtures[carrier as keyof typeof fixtures])
      return fc.record({ carrier: fc.constant(carrier), mutations: fc.array(fc.tuple(fc.constantFrom(...paths), hostileValue), { maxLength: 3 }) })
    })
    await check(push, async ({ carrier, mutations }) => {
      let doc: unknown = fixtures[carrier as keyof typeof fixtures]
      for (const [path, value] of mutations) doc = setAt(doc, path, value)
      const raw = JSON.stringify(doc)
      const before = await counts()
      const res = await send('POST', `/v1/webhooks/${carrier}`, raw, { 'x-signature': sign(SECRETS[carrier as keyof typeof SECRETS], raw), authorization: '' })
      expectNo5xx(res, { carrier, mutations })
      const added = (res.json?.results ?? []).filter((r: { outcome: string }) => r.outcome === 'inserted').length
      expect((await counts()).e - before.e).toBe(added)
    })
  })

  test('POST /v1/notifications, inbox, acks, presence and watchers: refused input creates or changes nothing', async () => {
    const [real] = await db.sql<{ id: string }[]>`select id from shipments where tracking_number = 'PROP1'`
    const notes = async () =>
      (
        await db.sql<{ n: number; r: number; w: number }[]>`
      select (select count(*)::int from notifications) as n, (select count(*)::int from notifications where read_at is not null) as r, (select count(*)::int from shipment_watchers) as w`
      )[0]!
    const userId = fc.oneof({ arbitrary: fc.stringMatching(/^[a-z0-9@:._-]{1,12}$/), weight: 6 }, hostileString)
    const rarely = <T>(a: fc.Arbitrary<T>) => fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, a)
    const body = fc.oneof(
      {
        arbitrary: fc.record(
          {
            userIds: mostly(fc.array(userId, { minLength: 1, maxLength: 4 }), 6),
            userId: rarely(userId),
            type: mostly(fc.stringMatching(/^[a-z.]{1,10}$/), 6),
            title: rarely(mostly(fc.string({ maxLength: 10 }))),
            body: rarely(hostileValue),
            data: rarely(mostly(fc.dictionary(hostileString, hostileValue, { maxKeys: 3 }))),
            idempotencyKey: rarely(mostly(fc.string({ maxLength: 10 })))
          },
          { requiredKeys: ['userIds', 'type'] }
        ),
        weight: 4
      },
      hostileValue
    )
    const route = fc.oneof(
      body.map((b) => ({ method: 'POST', path: '/v1/notifications', body: b })),
      fc
        .tuple(userId, hostileString, hostileString)
        .map(([u, state, after]) => ({ method: 'GET', path: `/v1/users/${pct(u)}/notifications?state=${pct(state)}&after=${pct(after)}`, body: undefined })),
      fc
        .tuple(
          userId,
          fc.record({ upToSeq: fc.option(hostileValue, { nil: undefined }), ids: fc.option(hostileValue, { nil: undefined }) }, { requiredKeys: [] })
        )
        .map(([u, b]) => ({ method: 'POST', path: `/v1/users/${pct(u)}/notifications/ack`, body: b })),
      fc.array(userId, { maxLength: 3 }).map((us) => ({ method: 'GET', path: `/v1/presence?userIds=${us.map(pct).join(',')}`, body: undefined })),
      fc.tuple(fc.constantFrom('PUT', 'DELETE', 'GET'), fc.oneof(fc.constant(real!.id), fc.uuid(), hostileString), userId).map(([m, id, u]) => ({
        method: m,
        path: m === 'GET' ? `/v1/shipments/${pct(id)}/watchers?after=${pct(u)}` : `/v1/shipments/${pct(id)}/watchers/${pct(u)}`,
        body: undefined
      }))
    )
    let created = 0
    await check(
      route,
      async (r) => {
        const before = await notes()
        const res = await send(r.method, r.path, r.body === undefined ? undefined : JSON.stringify(r.body))
        expectNo5xx(res, r)
        if (res.status >= 400) expect(await notes(), JSON.stringify(r).slice(0, 200)).toEqual(before)
        else if (r.path === '/v1/notifications') {
          created++
          for (const x of res.json.notifications) {
            const [row] = await db.sql<{ title: string | null; data: unknown }[]>`select title, data::text as data from notifications where id = ${x.id}`
            expect(isStorableText(row!.title ?? '') && isStorableText(String(row!.data ?? ''))).toBe(true)
          }
        }
      },
      300
    )
    expect(created, 'some notifications were valid and created').toBeGreaterThan(5)
  })

  test('raw bodies that are not JSON, or nest too deep, at every route with a body', async () => {
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 50 }),
      fc.integer({ min: 1, max: 200_000 }).map((n) => '['.repeat(n)),
      fc.integer({ min: 30, max: 5000 }).map((n) => `{"events":${'['.repeat(n)}${']'.repeat(n)}}`),
      fc.constantFrom('', '{', 'null', '"\\ud800"', '{"carrier":"dhl","trackingNumber":"X","reference":"\\u0000"}', '1e999', '-', '{"a":1,"a":2}')
    )
    const route = fc.constantFrom(
      '/v1/shipments',
      '/v1/events',
      '/v1/tokens',
      '/v1/notifications',
      '/v1/webhooks/dhl',
      '/v1/shipments/00000000-0000-0000-0000-000000000000'
    )
    const type = fc.constantFrom(
      'application/json',
      'text/plain',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/problem+json',
      ''
    )
    await check(fc.tuple(route, text, type), async ([path, body, contentType]) => {
      const before = await counts()
      const res = await send(path.endsWith('00000') ? 'DELETE' : 'POST', path, body, contentType ? { 'content-type': contentType } : {})
      expectNo5xx(res, [path, body.slice(0, 100), contentType])
      if (res.status >= 400) expect(await counts()).toEqual(before)
    })
  })

  test('WebSocket tokens: any string, or a real token bent, is refused as a token error and nothing else', async () => {
    const real = (await service.tokens.mint({ sub: 'u', topics: ['shipment:*'], ttlSeconds: 60 })).token
    const bent = fc.tuple(fc.nat(real.length - 1), hostileString).map(([i, s]) => real.slice(0, i) + s + real.slice(i + 1))
    await check(
      fc.oneof(hostileString, bent, fc.string({ unit: fc.constantFrom('a', '.', '-', '_', '='), maxLength: 200 })),
      async (token) => {
        // The last character of a base64url segment carries unused bits: a token spelled differently may still be the same bytes.
        const bytes = (t: string) =>
          t
            .split('.')
            .map((p) => Buffer.from(p, 'base64url').toString('hex'))
            .join('.')
        if (bytes(token) === bytes(real)) return
        await expect(service.tokens.verify(token)).rejects.toMatchObject({ code: expect.stringMatching(/^token_(invalid|expired)$/) })
      },
      500
    )
  })
})
