import { describe, expect, test } from 'bun:test'
import { checkTarget, pinned } from '../../src/webhooks/url-guard.ts'

const refused = async (url: string, resolve?: (h: string) => Promise<string[]>) => {
  const r = await checkTarget(url, { allowPrivate: false, resolve })
  return r.ok ? null : r.reason
}

describe('webhook url guard', () => {
  test('every spelling of loopback, private, link-local and unique-local is refused', async () => {
    for (const url of [
      'http://127.0.0.1/',
      'http://127.1/',
      'http://2130706433/',
      'http://0x7f000001/',
      'http://0177.0.0.1/',
      'http://[::1]/',
      'http://[::ffff:127.0.0.1]/',
      'http://[::ffff:7f00:1]/',
      'http://10.0.0.1/',
      'http://10.1/',
      'http://172.16.5.4/',
      'http://192.168.1.1/',
      'http://169.254.169.254/latest/meta-data',
      'http://[fe80::1]/',
      'http://[fd12:3456::1]/',
      'http://[fc00::1]/',
      'http://0.0.0.0/',
      'http://100.64.0.1/',
      'http://224.0.0.1/',
      'http://[64:ff9b::7f00:1]/'
    ])
      expect(await refused(url), url).toContain('address, not a public one')
  })

  test('a name is refused when any address it resolves to is not public, or when it does not resolve', async () => {
    expect(await refused('http://internal.example/', async () => ['93.184.215.14', '10.0.0.7'])).toContain(
      'internal.example resolves to 10.0.0.7, which is a private address'
    )
    expect(await refused('http://localhost:3000/')).toContain('loopback')
    expect(await refused('http://gone.invalid/', async () => Promise.reject(Object.assign(new Error('x'), { code: 'ENOTFOUND' })))).toContain(
      'does not resolve (ENOTFOUND)'
    )
    expect(await refused('https://hooks.example/', async () => ['93.184.215.14', '2606:2800:21f:cb07:6820:80da:af6b:8b2c'])).toBeNull()
  })

  test('only http and https, without credentials; WEBHOOK_ALLOW_PRIVATE allows private targets, never other schemes', async () => {
    for (const url of ['ftp://93.184.215.14/', 'file:///etc/passwd', 'gopher://93.184.215.14/', 'javascript:alert(1)', 'nothing'])
      expect(await refused(url), url).not.toBeNull()
    expect(await refused('https://user:pw@93.184.215.14/')).toContain('credentials')
    expect(await refused('https://93.184.215.14:8443/hook?x=1')).toBeNull()
    expect((await checkTarget('http://127.1:9/', { allowPrivate: true })).ok).toBe(true)
    expect((await checkTarget('ftp://127.0.0.1/', { allowPrivate: true })).ok).toBe(false)
  })

  test('a passing check names the address it checked, and the attempt is pinned to it: host replaced, name kept for Host and TLS', async () => {
    const named = await checkTarget('https://hooks.example:8443/in?x=1', { allowPrivate: false, resolve: async () => ['93.184.215.14', '93.184.215.15'] })
    expect(named).toMatchObject({ ok: true, address: '93.184.215.14' })
    if (!named.ok) throw new Error('refused')
    expect(pinned(named.url, named.address!)).toEqual({
      url: 'https://93.184.215.14:8443/in?x=1',
      host: 'hooks.example:8443',
      tls: { serverName: 'hooks.example' }
    })
    const v6 = await checkTarget('http://hooks.example/in', { allowPrivate: false, resolve: async () => ['2606:2800:21f:cb07:6820:80da:af6b:8b2c'] })
    if (!v6.ok) throw new Error('refused')
    // http: no TLS, so no server name; the default port stays implied.
    expect(pinned(v6.url, v6.address!)).toEqual({ url: 'http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/in', host: 'hooks.example' })
    // An address in the URL is its own pin.
    const literal = await checkTarget('https://93.184.215.14/in', { allowPrivate: false })
    if (!literal.ok) throw new Error('refused')
    expect(literal.address).toBe('93.184.215.14')
    expect(pinned(literal.url, literal.address!)).toEqual({ url: 'https://93.184.215.14/in', host: '93.184.215.14' })
  })
})
