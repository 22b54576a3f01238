/**
 * The pinned webhook request (url-guard.ts `pinned`) over real sockets: Bun's fetch sends it to
 * the checked address, with the endpoint's name in `Host`, and for https verifies the server's
 * certificate against that name, not against the address — so pinning defeats DNS rebinding
 * without giving up certificate checks. The https part needs `openssl` for a throwaway
 * certificate; without it, it says so and checks http only.
 */
import { afterAll, beforeAll, describe, expect, test } from 'bun:test'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { pinned } from '../../src/webhooks/url-guard.ts'

const seen = (r: Request) => new Response(JSON.stringify({ host: r.headers.get('host'), path: new URL(r.url).pathname + new URL(r.url).search }))
let dir: string
let cert: { cert: string; key: string } | null = null

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'parcelcast-pin-'))
  const made = Bun.spawnSync(
    [
      'openssl',
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=hooks.example',
      '-addext',
      'subjectAltName=DNS:hooks.example',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem')
    ],
    { stderr: 'ignore', stdout: 'ignore' }
  )
  if (made.success) cert = { cert: readFileSync(join(dir, 'cert.pem'), 'utf8'), key: readFileSync(join(dir, 'key.pem'), 'utf8') }
  else console.log('webhook pinning: no openssl here, so the https case is skipped; http is checked')
})
afterAll(() => rmSync(dir, { recursive: true, force: true }))

describe('a pinned webhook request', () => {
  test('http: reaches the checked address, with the name in Host and the path and query kept', async () => {
    const server = Bun.serve({ port: 0, hostname: '127.0.0.1', fetch: seen })
    try {
      const p = pinned(new URL(`http://hooks.example:${server.port}/in?x=1`), '127.0.0.1')
      const res = await fetch(p.url, { method: 'POST', body: '{}', headers: { host: p.host } })
      expect(await res.json()).toEqual({ host: `hooks.example:${server.port}`, path: '/in?x=1' })
    } finally {
      server.stop(true)
    }
  })

  test('https: the certificate is verified against the name, so a pin to an address serving another name fails', async () => {
    if (!cert) return
    const server = Bun.serve({ port: 0, hostname: '127.0.0.1', tls: cert, fetch: seen })
    try {
      const p = pinned(new URL(`https://hooks.example:${server.port}/in`), '127.0.0.1')
      expect(p.tls).toEqual({ serverName: 'hooks.example' })
      const res = await fetch(p.url, { method: 'POST', body: '{}', headers: { host: p.host }, tls: { ...p.tls, ca: cert.cert } })
      expect(await res.json()).toEqual({ host: `hooks.example:${server.port}`, path: '/in' })
      // The same address under a name its certificate does not carry: refused by TLS, not sent.
      const other = pinned(new URL(`https://other.example:${server.port}/in`), '127.0.0.1')
      const refused = await fetch(other.url, { method: 'POST', body: '{}', headers: { host: other.host }, tls: { ...other.tls, ca: cert.cert } }).then(
        () => null,
        (err: Error & { code?: string }) => err.code ?? err.message
      )
      expect(refused).toBe('ERR_TLS_CERT_ALTNAME_INVALID')
    } finally {
      server.stop(true)
    }
  })
})
