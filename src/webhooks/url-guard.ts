/**
 * Where a webhook may be sent (contract §9): `http:` or `https:` only, always; and, unless
 * WEBHOOK_ALLOW_PRIVATE=true, only to public unicast addresses — a host that is, or resolves
 * to, anything else (loopback, private, link-local, unique-local, carrier-grade NAT, unspecified,
 * multicast, reserved, and IPv6 forms that embed an IPv4 address: mapped, NAT64, 6to4, Teredo)
 * is refused. Every spelling of an address is one address here: WHATWG URL parsing turns
 * `127.1`, `2130706433` and `0x7f000001` into `127.0.0.1`, and ipaddr.js reads
 * `[::ffff:127.0.0.1]` as the IPv4 address it maps. A name is resolved and every address it
 * resolves to must pass. Checked when an endpoint is created or its url changed, and again
 * before every attempt, since DNS may change. The attempt then connects to the address that was
 * checked (`pinned`): the URL's host replaced by that address, the name kept in the `Host`
 * header and, for https, as the TLS server name the certificate is verified against — so a name
 * that resolves to a public address for the check and to a private one a moment later (DNS
 * rebinding) cannot turn the attempt towards the private one.
 */
import { lookup } from 'node:dns/promises'
import ipaddr from 'ipaddr.js'

/** `address`: what the URL's host was checked as (an address the host names, or the host itself), when it was. */
export type UrlCheck = { ok: true; url: URL; address?: string } | { ok: false; reason: string }

/** The syntax alone: a URL, http(s), no credentials, at most 2,048 characters. */
export function parseTarget(raw: string): UrlCheck {
  if (raw.length > 2048) return { ok: false, reason: 'must be at most 2048 characters' }
  let url: URL
  try {
    url = new URL(raw)
  } catch {
    return { ok: false, reason: 'must be an absolute http:// or https:// URL' }
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return { ok: false, reason: `must use http or https, not ${url.protocol.slice(0, -1)}` }
  if (url.username || url.password) return { ok: false, reason: 'must not carry credentials (user:password@); receivers verify the signature instead' }
  return { ok: true, url }
}

/** The range of `address` when it is not a public unicast address (`loopback`, `private`, …), else null. */
export function nonPublicRange(address: string): string | null {
  if (!ipaddr.isValid(address)) return 'invalid'
  const range = ipaddr.process(address).range()
  return range === 'unicast' ? null : range
}

export async function checkTarget(raw: string, opts: { allowPrivate: boolean; resolve?: (host: string) => Promise<string[]> }): Promise<UrlCheck> {
  const parsed = parseTarget(raw)
  if (!parsed.ok || opts.allowPrivate) return parsed
  const host = parsed.url.hostname.replace(/^\[|\]$/g, '')
  let addresses: string[]
  if (ipaddr.isValid(host)) addresses = [host]
  else {
    try {
      addresses = await (opts.resolve ?? resolveAll)(host)
    } catch (err) {
      return { ok: false, reason: `its host ${host} does not resolve (${(err as { code?: string }).code ?? (err as Error).message})` }
    }
    if (addresses.length === 0) return { ok: false, reason: `its host ${host} does not resolve` }
  }
  for (const a of addresses) {
    const range = nonPublicRange(a)
    if (range)
      return {
        ok: false,
        reason: `${host === a ? a : `${host} resolves to ${a}, which`} is a ${range} address, not a public one (WEBHOOK_ALLOW_PRIVATE=true allows private targets)`
      }
  }
  return { ...parsed, address: addresses[0]! }
}

/**
 * The request that goes to exactly `address` for `url`: the URL with its host replaced by the
 * address, the `Host` header the URL's own, and for https the TLS server name, so that the
 * certificate is still verified against the name (Bun's fetch pools connections by server name
 * too, so one to another name on the same address is never reused for this one).
 */
export function pinned(url: URL, address: string): { url: string; host: string; tls?: { serverName: string } } {
  const name = url.hostname.replace(/^\[|\]$/g, '')
  if (name === address) return { url: url.href, host: url.host }
  const target = new URL(url.href)
  target.hostname = address.includes(':') ? `[${address}]` : address
  return { url: target.href, host: url.host, ...(url.protocol === 'https:' ? { tls: { serverName: name } } : {}) }
}

async function resolveAll(host: string): Promise<string[]> {
  return (await lookup(host, { all: true, verbatim: true })).map((a) => a.address)
}
