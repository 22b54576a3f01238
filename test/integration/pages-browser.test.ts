/**
 * The pages in a real browser: playwright-core driving Debian's chromium (CHROMIUM_PATH, default
 * /usr/bin/chromium), one browser for the file. The dashboard asks for the key, then lists
 * shipments, and requests nothing off-host; the tracking page shows the timeline and updates
 * live when an event is POSTed, without a reload; a bad token shows no data. Without chromium
 * the file is skipped with one line saying so (.ci/run installs it where apt-get can).
 */
import { afterAll, beforeAll, describe, expect, test, setDefaultTimeout } from 'bun:test'
import { existsSync } from 'node:fs'
import { chromium, type Browser } from 'playwright-core'
import { createTestDb, type TestDb } from '../support/db.ts'
import { API_KEY, testService } from '../support/service.ts'
import { tcpProxy } from '../support/tcp-proxy.ts'

setDefaultTimeout(30_000)

const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const haveChromium = existsSync(executablePath)
if (!haveChromium) console.log(`pages-browser: skipped, no chromium at ${executablePath} (apt-get install -y chromium, or set CHROMIUM_PATH)`)

describe.skipIf(!haveChromium)('pages in a browser', () => {
  let db: TestDb
  let service: ReturnType<typeof testService>
  let browser: Browser
  let base: string
  let shipment: { id: string }

  const http = async (method: string, path: string, body?: unknown) => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body)
    })
    return { status: res.status, json: (await res.json()) as any }
  }
  const event = (carrierStatus: string, status: string, occurredAt: string, description: string) =>
    http('POST', '/v1/events', { events: [{ carrier: 'dhl', trackingNumber: 'BROWSER0001', carrierStatus, status, occurredAt, description }] })

  /** A page whose every request and every console problem (a CSP refusal, a script error) is kept. */
  async function open() {
    const page = await browser.newPage()
    const requests: string[] = []
    const problems: string[] = []
    page.on('request', (r) => void requests.push(r.url()))
    page.on('console', (m) => void (m.type() === 'error' || m.type() === 'warning' ? problems.push(m.text()) : undefined))
    page.on('pageerror', (e) => void problems.push(e.message))
    return { page, requests, problems }
  }
  const offHost = (urls: string[]) =>
    urls.filter((u) => {
      const o = new URL(u)
      return o.host !== new URL(base).host
    })

  beforeAll(async () => {
    db = await createTestDb()
    service = testService({ DATABASE_URL: db.url, POLL_ENABLED: 'false' })
    await service.start()
    base = `http://127.0.0.1:${service.port}`
    shipment = (await http('POST', '/v1/shipments', { carrier: 'dhl', trackingNumber: 'BROWSER0001' })).json
    await http('POST', '/v1/shipments', { carrier: 'gls', trackingNumber: 'BROWSER0002' })
    await event('PU', 'info_received', '2026-11-20T08:15:00Z', 'picked up in Bonn')
    // --no-sandbox: CI runs as root, where chromium's sandbox will not start.
    browser = await chromium.launch({ executablePath, args: ['--no-sandbox'] })
  })
  afterAll(async () => {
    await browser?.close()
    await service?.stop()
    await db?.drop()
  })

  test('the dashboard asks for the key, then lists shipments and readiness; nothing leaves the host', async () => {
    const { page, requests, problems } = await open()
    await page.goto(`${base}/`)
    await page.locator('#api-key').waitFor({ state: 'visible' })
    expect(await page.locator('#shipments').isVisible()).toBe(false)
    await page.fill('#api-key', API_KEY)
    await page.click('#key-form button[type=submit]')
    await page.locator('#shipments tbody tr', { hasText: 'BROWSER0002' }).waitFor()
    const rows = await page.locator('#shipments tbody tr').allTextContents()
    expect(rows.some((r) => r.includes('BROWSER0001') && r.includes('info_received'))).toBe(true)
    await page.locator('#readiness dd', { hasText: 'up' }).first().waitFor()
    // The rows follow their shipments live: an event committed now shows without a refresh.
    await page.locator('#live', { hasText: 'live' }).waitFor()
    await http('POST', '/v1/events', {
      events: [{ carrier: 'gls', trackingNumber: 'BROWSER0002', carrierStatus: 'OUT', status: 'out_for_delivery', occurredAt: '2026-11-21T07:00:00Z' }]
    })
    await page.locator('#shipments tbody tr', { hasText: 'BROWSER0002' }).locator('td', { hasText: 'out_for_delivery' }).waitFor()
    // A tracking link from the dashboard, for a shipment of the list.
    await page.locator('#shipments tbody tr', { hasText: 'BROWSER0001' }).locator('button').click()
    await page.locator('#link a').waitFor()
    expect(await page.locator('#link a').getAttribute('href')).toStartWith('/t/BROWSER0001?token=')
    // The key is in this tab's sessionStorage, never in a URL.
    expect(await page.evaluate(() => sessionStorage.getItem('parcelcast.apiKey'))).toBe(API_KEY)
    expect(requests.filter((u) => u.includes(API_KEY))).toEqual([])
    expect(offHost(requests)).toEqual([])
    expect(requests.length).toBeGreaterThan(4)
    expect(problems).toEqual([])
    // Readiness is read again by itself (every 5 s), without a refresh.
    const readyz = () => requests.filter((u) => new URL(u).pathname === '/readyz').length
    const before = readyz()
    await page.waitForRequest((r) => new URL(r.url()).pathname === '/readyz', { timeout: 8000 })
    expect(readyz()).toBeGreaterThan(before)
    // A reload keeps the key (same tab); "Forget key" asks again.
    await page.reload()
    await page.locator('#shipments tbody tr', { hasText: 'BROWSER0001' }).waitFor()
    await page.click('#forget')
    await page.locator('#api-key').waitFor({ state: 'visible' })
    expect(await page.evaluate(() => sessionStorage.getItem('parcelcast.apiKey'))).toBeNull()
    await page.close()
  })

  test('a wrong key is refused in the page and asked for again', async () => {
    const { page } = await open()
    await page.goto(`${base}/`)
    await page.fill('#api-key', 'not-the-key')
    await page.click('#key-form button[type=submit]')
    await page.locator('#api-key').waitFor({ state: 'visible' })
    expect(await page.locator('#shipments tbody tr').count()).toBe(0)
    // Said where the operator is looking: beside the key form.
    await page.locator('#key-error').waitFor({ state: 'visible' })
    expect(await page.textContent('#key-error')).toBe('The API key was refused: enter a valid one.')
    await page.close()
  })

  test('the tracking page shows the timeline and updates live when an event is committed, without a reload', async () => {
    const link = (await http('POST', `/v1/shipments/${shipment.id}/tracking-link`, { ttlSeconds: 600 })).json
    const { page, requests, problems } = await open()
    let navigations = 0
    page.on('framenavigated', () => void navigations++)
    await page.goto(`${base}${link.url}`)
    await page.locator('#timeline li').first().waitFor()
    expect(await page.textContent('#tracking-number')).toBe('BROWSER0001')
    expect(await page.textContent('#status')).toBe('info received')
    expect(await page.locator('#timeline li').allTextContents()).toEqual([expect.stringContaining('picked up in Bonn')])
    await page.locator('#connection', { hasText: 'live' }).waitFor()
    expect(await page.textContent('#expected')).toBe('not stated by the carrier')

    await event('OFD', 'out_for_delivery', '2026-11-21T07:00:00Z', 'out for delivery')
    await page.locator('#status', { hasText: 'out for delivery' }).waitFor()
    await page.locator('#timeline li', { hasText: 'out for delivery' }).waitFor()
    // An older scan joins the timeline but leaves the status where it is (contract §2).
    await event('AR', 'in_transit', '2026-11-20T20:00:00Z', 'arrived at hub')
    await page.locator('#timeline li', { hasText: 'arrived at hub' }).waitFor()
    // Shown in carrier time, newest first.
    expect(await page.locator('#timeline li span').allTextContents()).toEqual([' — out for delivery', ' — arrived at hub', ' — picked up in Bonn'])
    expect(await page.textContent('#status')).toBe('out for delivery')
    expect(navigations).toBe(1)
    expect(offHost(requests)).toEqual([])
    expect(problems).toEqual([])
    // It shows no other shipment and no key.
    const html = await page.content()
    expect(html).not.toContain('BROWSER0002')
    expect(html).not.toContain(API_KEY)
    await page.close()
  })

  test('after a lost connection the tracking page resumes from its last seq: nothing missed, nothing twice', async () => {
    const link = (await http('POST', `/v1/shipments/${shipment.id}/tracking-link`, {})).json
    // The page goes through a proxy that the test cuts, as a network or a restart would.
    const proxy = await tcpProxy({ host: '127.0.0.1', port: service.port })
    const { page } = await open()
    const sockets: { closed: boolean }[] = []
    page.on('websocket', (ws) => {
      const s = { closed: false }
      sockets.push(s)
      ws.on('close', () => void (s.closed = true))
    })
    await page.goto(`http://127.0.0.1:${proxy.port}${link.url}`)
    await page.locator('#connection', { hasText: 'live' }).waitFor()
    const before = await page.locator('#timeline li').count()
    proxy.cut()
    await page.locator('#connection', { hasText: 'reconnecting' }).waitFor()
    await event('DL', 'delivered', '2026-11-22T10:00:00Z', 'delivered to neighbour')
    proxy.restore()
    await page.locator('#timeline li', { hasText: 'delivered to neighbour' }).waitFor()
    await page.locator('#connection', { hasText: 'live' }).waitFor()
    expect(sockets.length).toBeGreaterThanOrEqual(2)
    const seqs = await page.locator('#timeline li').evaluateAll((lis) => lis.map((li) => Number(li.getAttribute('data-seq'))))
    expect(seqs.length).toBe(before + 1)
    expect(new Set(seqs).size).toBe(seqs.length)
    expect(await page.textContent('#status')).toBe('delivered')
    await page.close()
    proxy.close()
  })

  test('a bad or foreign token shows a refusal and no data', async () => {
    const { page, requests } = await open()
    for (const url of ['/t/BROWSER0001?token=forged', '/t/BROWSER0001']) {
      const res = await page.goto(`${base}${url}`)
      expect(res?.status()).toBe(403)
      expect(await page.locator('#timeline').count()).toBe(0)
      const text = await page.textContent('body')
      expect(text).toContain('not valid')
      expect(text).not.toMatch(/info.received|picked up|BROWSER0002/)
    }
    expect(requests.filter((u) => u.includes('/v1/'))).toEqual([])
    await page.close()
  })

  test('the reference page renders the OpenAPI document from this host only', async () => {
    const { page, requests, problems } = await open()
    await page.goto(`${base}/docs`)
    await page.locator('#docs .op').first().waitFor()
    expect(await page.locator('#docs .op').count()).toBeGreaterThan(25)
    expect(await page.locator('#postV1ShipmentsByIdTrackingLink').count()).toBe(1)
    expect(offHost(requests)).toEqual([])
    expect(problems).toEqual([])
    await page.close()
  })
})
