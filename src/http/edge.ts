/**
 * What a request must be before the app sees it, checked on the socket's side (server.ts):
 *
 *   - a `Host` that is a host name or IP literal with an optional port (RFC 3986), once; else
 *     400 `invalid_host`. Bun builds `request.url` from the Host header, and for a Host it cannot
 *     use (empty, `a/b`, `a#b`, `a, b`…) hands over the bare target, which nothing can route.
 *     A request without any Host (HTTP/1.0) is read as addressed to `localhost`;
 *   - a target whose path is plain: no `//`, no `.` or `..` segment, no encoded `/`, `\`, `.`
 *     or control character, no %-escape that is not UTF-8, no fragment; else 400
 *     `invalid_target`. Bun resolves dot segments and backslashes in `request.url` and replaces
 *     an absolute-form target's authority with the Host, so what reaches the app is
 *     origin-form; the rest is refused here;
 *   - a body within the limit: a `Content-Length` over it, or a chunked body that grows over it,
 *     is a 413 `payload_too_large`, answered here with the error body (Bun's own limit answers
 *     an empty 413, so server.ts sets Bun's limit out of reach and this is the limit).
 *
 * Once a request passes, `request.url` is `http://<host><path>[?query]` with a host that has no
 * `/`, so the path starts at the first `/` after `http://`, which is where Elysia's router
 * reads it (`handler.standardHostname: false` in app.ts). `path` below is that same string.
 */
import { errorBody, json } from './errors.ts'

const HOST_RE = /^(?:\[[0-9A-Fa-f:.]{2,45}\]|[A-Za-z0-9._~-]{1,253})(?::\d{0,5})?$/
// An encoded `.`, `/` or `\`, or an encoded control character: decoded later, they could make a
// path mean something other than what it says.
const ENCODED_RE = /%(?:2e|2f|5c|[01][0-9a-f]|7f)/i
const DOT_SEGMENT_RE = /\/\.\.?(?:\/|$)/
const ORIGIN = 'http://'

export type Checked = { ok: true; request: Request; path: string; query: string } | { ok: false; response: Response }

export function checkTarget(request: Request): Checked {
  const host = request.headers.get('host')
  let url = request.url
  if (host === null) {
    // HTTP/1.0 without Host: Bun hands over the target as sent, unresolved.
    if (url.charCodeAt(0) !== 47) return refuse('invalid_target', 'the request target must be a path starting with "/"')
    const bad = pathProblem(url, url.indexOf('?'))
    if (bad) return refuse('invalid_target', bad)
    request = new Request(`${ORIGIN}localhost${url}`, request)
    url = request.url
  } else if (!validHost(host)) {
    return refuse('invalid_host', 'the Host header must be one host name or IP address with an optional port')
  } else if (!url.startsWith(ORIGIN)) {
    return refuse('invalid_target', 'the request target must be a path starting with "/"')
  }
  const s = url.indexOf('/', ORIGIN.length)
  if (s === -1) return refuse('invalid_target', 'the request target must be a path starting with "/"')
  const q = url.indexOf('?', s)
  const bad = pathProblem(url.slice(s), q === -1 ? -1 : q - s)
  if (bad) return refuse('invalid_target', bad)
  return { ok: true, request, path: q === -1 ? url.slice(s) : url.slice(s, q), query: q === -1 ? '' : url.slice(q + 1) }
}

function validHost(host: string): boolean {
  if (!HOST_RE.test(host)) return false
  const colon = host.lastIndexOf(':')
  return colon === -1 || host.endsWith(']') || Number(host.slice(colon + 1)) <= 65535
}

/** `target` from its leading `/`; `q` is the index of its `?` or -1. */
function pathProblem(target: string, q: number): string | null {
  if (target.indexOf('#') !== -1) return 'the request target must not carry a fragment (#)'
  const path = q === -1 ? target : target.slice(0, q)
  if (path.indexOf('//') !== -1) return 'the path must not contain "//"'
  if (path.indexOf('\\') !== -1) return 'the path must not contain "\\"'
  if (DOT_SEGMENT_RE.test(path)) return 'the path must not contain "." or ".." segments'
  if (ENCODED_RE.test(path)) return 'the path must not contain an encoded ".", "/", "\\" or control character'
  // Elysia hands a path parameter whose escapes are not UTF-8 to the route as null.
  if (path.indexOf('%') !== -1 && !decodes(path)) return "the path's %-escapes must spell UTF-8"
  return null
}

function decodes(path: string): boolean {
  try {
    decodeURIComponent(path)
    return true
  } catch {
    return false
  }
}

const refuse = (code: string, message: string): Checked => ({ ok: false, response: json(400, errorBody(code, message), { connection: 'close' }) })

/**
 * The request with its body held to `limit` bytes, or the 413: refused at once when
 * `Content-Length` says more; a chunked body is read up to the limit (the only case that waits)
 * and handed on as the bytes read.
 */
export function limitBody(request: Request, limit: number): Request | Response | Promise<Request | Response> {
  const length = request.headers.get('content-length')
  if (length !== null) return Number(length) > limit ? tooLarge(limit, `the request body is ${length} bytes`) : request
  if (request.body === null) return request
  return readChunked(request, request.body, limit)
}

async function readChunked(request: Request, body: ReadableStream<Uint8Array>, limit: number): Promise<Request | Response> {
  const reader = body.getReader()
  const parts: Uint8Array[] = []
  let size = 0
  for (;;) {
    const { done, value } = await reader.read()
    if (done) break
    size += value.byteLength
    if (size > limit) {
      reader.cancel().catch(() => {})
      return tooLarge(limit, `the chunked request body grew past ${limit} bytes`)
    }
    parts.push(value)
  }
  return new Request(request.url, { method: request.method, headers: request.headers, body: Buffer.concat(parts) })
}

export const tooLarge = (limit: number, what: string) =>
  json(413, errorBody('payload_too_large', `${what}; the limit is ${limit} bytes (BODY_LIMIT_BYTES)`), { connection: 'close' })
