import { describe, expect, test } from 'bun:test'
import { cutText, fieldLabel, redact } from '../../src/carriers/adapter.ts'
import { createCarrierHealth, emptySample, type CycleSample } from '../../src/carriers/health.ts'

const sample = (over: Partial<CycleSample>): CycleSample => ({ ...emptySample(), ...over })

describe('carrier health', () => {
  test('mostly rejected scans over the window: failing, naming the count and the fields; ok again once a cycle reads', () => {
    const h = createCarrierHealth({ window: 5 })
    expect(h.of('dpd')).toBe('ok')
    h.record('dpd', sample({ calls: 5, scans: 25 }))
    h.record('dpd', sample({ calls: 5, scans: 25, rejected: 10, fields: { date: 10 } }))
    // 10 of 50: not mostly.
    expect(h.of('dpd')).toBe('ok')
    for (let i = 0; i < 3; i++) h.record('dpd', sample({ calls: 7, scans: 35, rejected: 35, fields: { date: 35 } }))
    // The window is the last five cycles: 115 of 155 rejected.
    expect(h.of('dpd')).toBe('failing: 115 of 155 scans rejected (date)')
    h.record('dpd', sample({ calls: 7, scans: 35, rejected: 35, fields: { date: 30, 'scanData.scanType.name': 5 } }))
    expect(h.of('dpd')).toBe('failing: 150 of 165 scans rejected (date, scanData.scanType.name)')
    h.record('dpd', sample({ calls: 2, scans: 10 }))
    expect(h.of('dpd')).toBe('ok')
    expect(h.snapshot(['dhl', 'dpd'])).toEqual({ dhl: 'ok', dpd: 'ok' })
  })

  test('mostly failed calls: failing with the last error; cycles that asked nothing change nothing', () => {
    const h = createCarrierHealth()
    h.record('gls', sample({ calls: 4, failedCalls: 4, lastError: 'GLS answered HTTP 503' }))
    h.record('gls', emptySample())
    expect(h.of('gls')).toBe('failing: 4 of 4 calls failed (GLS answered HTTP 503)')
  })

  test('samples older than maxAgeMs leave the window', () => {
    let now = 0
    const h = createCarrierHealth({ maxAgeMs: 1000, now: () => now })
    h.record('dhl', sample({ calls: 1, failedCalls: 1, lastError: 'down' }))
    expect(h.of('dhl')).toStartWith('failing')
    now = 2000
    expect(h.of('dhl')).toBe('ok')
  })

  test('counter labels name the carrier field without the scan’s position; samples are redacted', () => {
    expect(fieldLabel('scan[3].date')).toBe('date')
    expect(fieldLabel('parcels[ZX1].events[0].eventDateTime')).toBe('eventDateTime')
    expect(fieldLabel('scan[0].scanData.scanType.name')).toBe('scanData.scanType.name')
    expect(fieldLabel('events[2].timestamp')).toBe('timestamp')
    expect(
      redact({
        date: 'x',
        scanData: { scanType: { name: 'Depot' } },
        receiver: { name: 'Jane Doe', street: 'Main St 1' },
        signedBy: 'J. DOE',
        note: 'y'.repeat(200)
      })
    ).toEqual({
      date: 'x',
      scanData: { scanType: { name: 'Depot' } },
      receiver: '[redacted]',
      signedBy: '[redacted]',
      note: `${'y'.repeat(80)}…`
    })
  })

  test('per-shipment errors count: mostly failed shipments are failing with the last error; a clean sample is ok again', () => {
    const h = createCarrierHealth()
    h.record('gls', sample({ calls: 1, shipments: 10, failedShipments: 10, lastError: 'GLS: E_500_01 internal error' }))
    expect(h.of('gls')).toBe('failing: 10 of 10 shipments answered with an error (GLS: E_500_01 internal error)')
    h.record('gls', sample({ calls: 1, shipments: 10, scans: 30 }))
    expect(h.of('gls')).toBe('ok')
  })

  test('a sample with failures only (no call counted, no scan) is still a sample', () => {
    const h = createCarrierHealth()
    h.record('dhl', sample({ failedCalls: 1, lastError: 'rate limited (HTTP 429)' }))
    expect(h.of('dhl')).toStartWith('failing')
  })

  test('cutText never cuts a surrogate pair in two', () => {
    expect(cutText('ab😀', 3)).toBe('ab')
    expect(cutText('ab😀', 4)).toBe('ab😀')
    expect(cutText('abc', 2)).toBe('ab')
    expect(cutText('😀😀', 3)).toBe('😀')
  })
})
