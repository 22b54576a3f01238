import { describe, expect, test } from 'bun:test'
import fc from 'fast-check'
import { dedupKey, formatInstant, normalizeCarrier, normalizeInstant, normalizeTrackingNumber, parseInstant } from '../../src/pipeline/identity.ts'

describe('tracking number and carrier', () => {
  test('trimmed, inner spaces removed, upper-cased', () => {
    expect(normalizeTrackingNumber('  jjd 0001 2345\t67 ')).toBe('JJD0001234567')
    expect(normalizeCarrier(' DHL ')).toBe('dhl')
  })
  test('refuses what cannot be a tracking number or carrier, naming the field', () => {
    expect(() => normalizeTrackingNumber('   ')).toThrow(expect.objectContaining({ field: 'trackingNumber' }))
    expect(() => normalizeTrackingNumber('abc:def')).toThrow(/not a tracking number/)
    // Punctuation alone is no parcel (and `.`, `..` would be path segments of its tracking page).
    for (const tn of ['.', '..', '...', '-', '_', '._-']) expect(() => normalizeTrackingNumber(tn), tn).toThrow(/at least one a letter or digit/)
    for (const tn of ['A', '.9', 'JJD-0001.2_3', '-X-']) expect(normalizeTrackingNumber(tn)).toBe(tn)
    expect(() => normalizeCarrier('d')).toThrow(expect.objectContaining({ field: 'carrier' }))
    expect(() => normalizeCarrier('dh l')).toThrow(/not a carrier code/)
  })
})

describe('timestamps', () => {
  const cases: [string, string][] = [
    ['2026-11-20T08:15:00Z', '2026-11-20T08:15:00.000Z'],
    ['2026-11-20T08:15:00.000Z', '2026-11-20T08:15:00.000Z'],
    ['2026-11-20T10:15:00+02:00', '2026-11-20T08:15:00.000Z'],
    ['2026-11-20T10:15:00+0200', '2026-11-20T08:15:00.000Z'],
    ['2026-11-20T10:15:00+02', '2026-11-20T08:15:00.000Z'],
    ['2026-11-20T03:45:00-04:30', '2026-11-20T08:15:00.000Z'],
    ['2026-11-20 08:15:00', '2026-11-20T08:15:00.000Z'],
    ['2026-11-20T08:15', '2026-11-20T08:15:00.000Z'],
    ['2026-11-20T08:15:00.123456Z', '2026-11-20T08:15:00.123Z'],
    ['2026-11-20T08:15:59.9999Z', '2026-11-20T08:15:59.999Z'],
    ['2026-11-20T08:15:00,5Z', '2026-11-20T08:15:00.500Z'],
    ['2026-11-21T00:15:00+14:00', '2026-11-20T10:15:00.000Z']
  ]
  for (const [input, expected] of cases) test(`${input} → ${expected}`, () => expect(normalizeInstant(input)).toBe(expected))

  test('without an offset the wall time is read in the given zone', () => {
    expect(normalizeInstant('2026-07-01T12:00:00', 'Europe/Berlin')).toBe('2026-07-01T10:00:00.000Z')
    expect(normalizeInstant('2026-01-15T12:00:00', 'Europe/Berlin')).toBe('2026-01-15T11:00:00.000Z')
  })
  test('the repeated October hour resolves to the earlier instant (CEST)', () => {
    // 2026-10-25: clocks go from 03:00 CEST back to 02:00 CET; 02:30 happens twice.
    expect(normalizeInstant('2026-10-25T02:30:00', 'Europe/Berlin')).toBe('2026-10-25T00:30:00.000Z')
    expect(normalizeInstant('2026-10-25T03:30:00', 'Europe/Berlin')).toBe('2026-10-25T02:30:00.000Z')
    expect(normalizeInstant('2026-10-25T01:59:59', 'Europe/Berlin')).toBe('2026-10-24T23:59:59.000Z')
  })
  test('the skipped March hour moves forward by the gap', () => {
    // 2026-03-29: clocks go from 02:00 CET to 03:00 CEST; 02:30 never happens.
    expect(normalizeInstant('2026-03-29T02:30:00', 'Europe/Berlin')).toBe('2026-03-29T01:30:00.000Z')
    expect(normalizeInstant('2026-03-29T01:59:00', 'Europe/Berlin')).toBe('2026-03-29T00:59:00.000Z')
    expect(normalizeInstant('2026-03-29T03:00:00', 'Europe/Berlin')).toBe('2026-03-29T01:00:00.000Z')
  })
  test('refuses impossible or unrecognised times, naming occurredAt', () => {
    for (const bad of [
      '2026-02-30T00:00:00Z',
      '2026-13-01T00:00:00Z',
      '2026-11-20T24:00:00Z',
      '2026-11-20T08:60:00Z',
      '20.11.2026 08:15',
      'yesterday',
      '',
      '2026-11-20T08:15:00+15:00',
      '2026-11-20T08:15:00Zjunk'
    ]) {
      expect(() => parseInstant(bad)).toThrow(expect.objectContaining({ field: 'occurredAt' }))
    }
  })
  test('refuses an unknown zone', () => {
    expect(() => parseInstant('2026-11-20T08:15:00', 'Mars/Olympus')).toThrow(/IANA/)
  })
})

describe('dedupKey', () => {
  test('has the contract form', () => {
    expect(dedupKey('dhl', '00340434161094042557', 'PU', normalizeInstant('2026-11-20T10:15:00+02:00'))).toBe(
      'dhl:00340434161094042557:PU:2026-11-20T08:15:00.000Z'
    )
  })

  const instant = fc.integer({ min: Date.UTC(1990, 0, 1), max: Date.UTC(2090, 0, 1) })
  const offsetMinutes = fc.integer({ min: -14 * 60, max: 14 * 60 })
  const pad = (n: number, w = 2) => String(Math.abs(n)).padStart(w, '0')
  function spell(ms: number, off: number, style: 'colon' | 'compact'): string {
    const wall = new Date(ms + off * 60_000)
    const hh = Math.trunc(Math.abs(off) / 60),
      mm = Math.abs(off) % 60
    const sign = off < 0 ? '-' : '+'
    const date = `${wall.getUTCFullYear()}-${pad(wall.getUTCMonth() + 1)}-${pad(wall.getUTCDate())}T${pad(wall.getUTCHours())}:${pad(wall.getUTCMinutes())}:${pad(wall.getUTCSeconds())}.${pad(wall.getUTCMilliseconds(), 3)}`
    return `${date}${sign}${pad(hh)}${style === 'colon' ? ':' : ''}${pad(mm)}`
  }

  test('property: every spelling of one instant gives one key', () => {
    fc.assert(
      fc.property(instant, offsetMinutes, fc.constantFrom('colon' as const, 'compact' as const), (ms, off, style) => {
        const canonical = formatInstant(ms)
        expect(normalizeInstant(spell(ms, off, style))).toBe(canonical)
        expect(dedupKey('gls', 'X1', 'S', normalizeInstant(spell(ms, off, style)))).toBe(dedupKey('gls', 'X1', 'S', canonical))
      }),
      { numRuns: 2000 }
    )
  })

  test('property: normalizing is idempotent (stable under re-parsing and formatting)', () => {
    fc.assert(
      fc.property(instant, fc.integer({ min: 0, max: 999 }), fc.constantFrom('UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata'), (ms, micro, zone) => {
        const wall = formatInstant(ms).slice(0, -1) + String(micro).padStart(3, '0')
        const once = normalizeInstant(wall, zone)
        expect(normalizeInstant(once, zone)).toBe(once)
        expect(normalizeInstant(once)).toBe(once)
      }),
      { numRuns: 2000 }
    )
  })

  test('property: tracking numbers differing only in spaces and case give one key', () => {
    const tn = fc.stringMatching(/^[A-Z0-9]{4,20}$/)
    fc.assert(
      fc.property(tn, fc.array(fc.nat(), { maxLength: 4 }), fc.boolean(), (s, cuts, lower) => {
        let spaced = s
        for (const c of cuts) {
          const i = c % (spaced.length + 1)
          spaced = spaced.slice(0, i) + ' ' + spaced.slice(i)
        }
        if (lower) spaced = spaced.toLowerCase()
        expect(normalizeTrackingNumber(` ${spaced} `)).toBe(s)
      })
    )
  })
})
