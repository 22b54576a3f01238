/**
 * The validation layer (storable.ts, identity.ts, event.ts): what it accepts PostgreSQL stores;
 * what it refuses is named by field, and it never throws for any input.
 */
import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { toNormalizedEvent } from '../../src/pipeline/event.ts'
import { normalizeInstant } from '../../src/pipeline/identity.ts'
import { isStorableText, jsonProblem, jsonTooDeep, MAX_JSON_DEPTH } from '../../src/pipeline/storable.ts'

const valid = { carrier: 'dhl', trackingNumber: 'X1', carrierStatus: 'PU', occurredAt: '2026-11-20T08:00:00Z', location: 'Bonn', description: 'picked up' }
const poisons = ['a\u0000b', '\u0000', 'x\ud800', '\udc00y', 'a\ud800\ud800b', '\udfff\ud800']

describe('text', () => {
  test('NUL and unpaired surrogates are refused; paired surrogates and every other character are not', () => {
    for (const p of poisons) expect(isStorableText(p), JSON.stringify(p)).toBe(false)
    for (const ok of ['', 'plain', 'ümlaut', '😀 emoji', '\u0001\u001f\u007f controls', '\ud83d\ude00', 'a'.repeat(100_000)])
      expect(isStorableText(ok), ok.slice(0, 20)).toBe(true)
  })

  test('property: agrees with a UTF-8 round trip and a search for NUL', () => {
    fc.assert(
      fc.property(
        fc.string({
          unit: fc.oneof(
            fc.constantFrom('\u0000', '\ud800', '\udc00', 'a'),
            fc.string({ unit: 'binary', maxLength: 1 }),
            fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c))
          )
        }),
        (s) => {
          const roundTrips = Buffer.from(s, 'utf8').toString('utf8') === s
          expect(isStorableText(s)).toBe(roundTrips && !s.includes('\u0000'))
        }
      ),
      { numRuns: 500 }
    )
  })
})

describe('JSON documents', () => {
  const depth = (v: unknown): number => (typeof v === 'object' && v !== null ? 1 + Math.max(0, ...Object.values(v).map(depth)) : 0)

  test('property: jsonTooDeep agrees with the depth of the parsed document', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 40 }), (value) => {
        const text = JSON.stringify(value)
        expect(jsonTooDeep(text, 5)).toBe(depth(value) > 5)
      }),
      { numRuns: 500 }
    )
    // Strings made of what the scan must skip: quotes, backslashes and brackets.
    const tricky = fc.string({ unit: fc.constantFrom('\\', '"', '[', ']', '{', '}', 'a'), maxLength: 8 })
    const doc = fc.letrec((tie) => ({
      value: fc.oneof({ depthSize: 'small' }, tricky, fc.array(tie('value'), { maxLength: 3 }), fc.dictionary(tricky, tie('value'), { maxKeys: 3 }))
    })).value
    fc.assert(
      fc.property(doc, fc.integer({ min: 0, max: 6 }), (value, max) => {
        expect(jsonTooDeep(JSON.stringify(value), max)).toBe(depth(value) > max)
      }),
      { numRuns: 2000 }
    )
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200 }), fc.constantFrom('[', '{"a":'), (n, open) => {
        const close = open === '[' ? ']' : '}'
        const text = `${open.repeat(n)}"x\\"[{"${close.repeat(n)}`
        expect(jsonTooDeep(text)).toBe(n > MAX_JSON_DEPTH)
      })
    )
  })

  test('jsonProblem names the path of the first unstorable string, key or level', () => {
    expect(jsonProblem({ a: [1, { b: 'ok' }], c: null })).toBeNull()
    expect(jsonProblem({ a: [1, { b: 'x\u0000' }] })).toMatchObject({ path: 'a[1].b' })
    expect(jsonProblem({ a: { ['k\ud800']: 1 } })).toMatchObject({ path: 'a.k\ud800', message: expect.stringContaining('key') })
    let deep: unknown = 'leaf'
    for (let i = 0; i < MAX_JSON_DEPTH; i++) deep = [deep]
    expect(jsonProblem(deep)).toBeNull()
    expect(jsonProblem([deep])).toMatchObject({ message: expect.stringContaining('deeper') })
    expect(jsonProblem('x\ud800')).toMatchObject({ path: '' })
  })
})

describe('instants', () => {
  test('impossible calendar dates and times are refused', () => {
    for (const s of [
      '2026-02-30T12:00:00Z',
      '2026-02-29T00:00:00Z',
      '2026-13-01T00:00:00Z',
      '2026-01-01T25:61:61Z',
      '9999-99-99T99:99:99Z',
      '0000-01-01T00:00:00Z',
      '0999-12-31T23:59:59Z'
    ]) {
      expect(() => normalizeInstant(s), s).toThrow(expect.objectContaining({ field: 'occurredAt' }))
    }
    expect(normalizeInstant('2028-02-29T00:00:00Z')).toBe('2028-02-29T00:00:00.000Z')
  })

  test('the range holds after the offset is applied: years 1000-9999 in UTC', () => {
    expect(normalizeInstant('9999-12-31T23:59:59.999Z')).toBe('9999-12-31T23:59:59.999Z')
    expect(normalizeInstant('1000-01-01T00:00:00Z')).toBe('1000-01-01T00:00:00.000Z')
    expect(() => normalizeInstant('9999-12-31T23:00:00-12:00')).toThrow(/outside the years 1000-9999/)
    expect(() => normalizeInstant('1000-01-01T00:00:00+14:00')).toThrow(/outside the years 1000-9999/)
    expect(() => normalizeInstant('9999-12-31T23:00:00', 'America/Los_Angeles')).toThrow(/outside/)
  })

  test('property: whatever is accepted formats as a four-digit-year UTC instant', () => {
    const two = (n: number) => String(n).padStart(2, '0')
    const spelled = fc
      .record({
        y: fc.integer({ min: 0, max: 9999 }),
        mo: fc.integer({ min: 0, max: 13 }),
        d: fc.integer({ min: 0, max: 32 }),
        h: fc.integer({ min: 0, max: 25 }),
        mi: fc.integer({ min: 0, max: 61 }),
        off: fc.constantFrom('Z', '+14:00', '-12:00', '+05:30', '', '-0930')
      })
      .map(({ y, mo, d, h, mi, off }) => `${String(y).padStart(4, '0')}-${two(mo)}-${two(d)}T${two(h)}:${two(mi)}:00${off}`)
    fc.assert(
      fc.property(spelled, (s) => {
        let iso: string
        try {
          iso = normalizeInstant(s)
        } catch (err) {
          expect((err as { field?: string }).field).toBe('occurredAt')
          return
        }
        expect(iso).toMatch(/^[1-9]\d{3}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/)
      }),
      { numRuns: 3000 }
    )
  })
})

describe('toNormalizedEvent', () => {
  test('a poisoned value in any text field is invalid, naming that field', () => {
    for (const field of ['carrierStatus', 'location', 'description'] as const) {
      for (const p of poisons) {
        const r = toNormalizedEvent({ ...valid, [field]: p })
        expect(r, `${field} ${JSON.stringify(p)}`).toMatchObject({ ok: false, field })
      }
    }
    for (const field of ['carrier', 'trackingNumber', 'occurredAt'] as const)
      expect(toNormalizedEvent({ ...valid, [field]: 'a\u0000' })).toMatchObject({ ok: false, field })
  })

  test('raw: unstorable strings or keys anywhere, or nesting too deep, are invalid with their path', () => {
    expect(toNormalizedEvent({ ...valid, extra: { note: 'a\u0000' } })).toMatchObject({ ok: false, field: 'extra.note' })
    expect(toNormalizedEvent({ ...valid, extra: { ['k\u0000']: 1 } })).toMatchObject({ ok: false, field: 'extra.k\\u0000' })
    expect(toNormalizedEvent({ ...valid, extra: { ['k\ud800']: 1 } })).toMatchObject({ ok: false, field: 'extra.k\ufffd' })
    expect(toNormalizedEvent(valid, { raw: { scans: [{ where: 'x\udc00' }] } })).toMatchObject({ ok: false, field: 'raw.scans[0].where' })
    let deep: unknown = 1
    for (let i = 0; i < 100_000; i++) deep = [deep]
    expect(toNormalizedEvent(valid, { raw: deep })).toMatchObject({
      ok: false,
      field: expect.stringMatching(/^raw/),
      message: expect.stringContaining('deeper')
    })
    expect(toNormalizedEvent({ ...valid, extra: deep })).toMatchObject({ ok: false, field: expect.stringMatching(/^extra/) })
  })

  test('property: never throws; what it accepts is storable, and its instant in range', () => {
    const poisonString = fc.oneof(fc.string(), fc.constantFrom(...poisons), fc.string({ unit: fc.constantFrom('\u0000', '\ud800', 'a', '\udc00') }))
    const field = (good: fc.Arbitrary<unknown>) => fc.oneof({ arbitrary: good, weight: 12 }, poisonString, fc.anything({ maxDepth: 3 }), fc.constant(undefined))
    const event = fc.record(
      {
        carrier: field(fc.constantFrom('dhl', 'DPD', ' gls ')),
        trackingNumber: field(fc.constantFrom('X1', '00340434161094042557', 'ab cd')),
        carrierStatus: field(fc.string({ minLength: 1, maxLength: 5 })),
        status: field(fc.constantFrom('delivered', 'in_transit')),
        occurredAt: field(fc.constantFrom('2026-11-20T08:00:00Z', '9999-12-31T23:59:59-01:00', '2026-02-30T00:00:00Z', '1000-01-01T00:00:00Z')),
        location: field(fc.string({ maxLength: 5 })),
        description: field(fc.string({ maxLength: 5 })),
        extra: field(fc.jsonValue({ maxDepth: 3 }))
      },
      { requiredKeys: [] }
    )
    let accepted = 0
    fc.assert(
      fc.property(
        fc.oneof({ arbitrary: event, weight: 4 }, fc.anything()),
        fc.option(fc.oneof(fc.jsonValue({ maxDepth: 4 }), fc.anything({ maxDepth: 4 })), { nil: undefined, freq: 2 }),
        (input, raw) => {
          const r = toNormalizedEvent(input, raw === undefined ? {} : { raw })
          if (!r.ok) {
            // A refusal is logged and stored in turn (a poll's lastPollError): storable itself.
            expect(isStorableText(r.field) && isStorableText(r.message), JSON.stringify(r)).toBe(true)
            return
          }
          const e = r.event
          for (const s of [e.carrier, e.trackingNumber, e.carrierStatus, e.location ?? '', e.description ?? '', e.dedupKey])
            expect(isStorableText(s)).toBe(true)
          expect(jsonProblem(e.raw)).toBeNull()
          expect(e.occurredAt >= '1000-01-01T00:00:00.000Z' && e.occurredAt <= '9999-12-31T23:59:59.999Z').toBe(true)
          accepted++
        }
      ),
      { numRuns: 3000 }
    )
    expect(accepted).toBeGreaterThan(100)
  })
})
