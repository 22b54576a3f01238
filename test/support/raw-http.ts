/**
 * HTTP over a raw TCP socket: the request bytes exactly as given (request line, Host, framing),
 * the first response parsed. What `fetch` and `app.handle` cannot send — a short or broken
 * Host, an absolute-form target, a path no URL parser would keep — is what a hostile client sends.
 */
import { connect } from 'node:net'

export interface RawResponse {
  status: number
  headers: Record<string, string>
  body: string
  json: any
  raw: string
}

export function rawRequest(port: number, request: string | Uint8Array, timeoutMs = 10_000): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1')
    let buf = Buffer.alloc(0)
    let settled = false
    const finish = (closed: boolean) => {
      const parsed = parse(buf, closed)
      if (!parsed || settled) return
      settled = true
      clearTimeout(timer)
      socket.destroy()
      resolve(parsed)
    }
    const timer = setTimeout(() => {
      if (settled) return
      settled = true
      socket.destroy()
      reject(
        new Error(
          `no complete response within ${timeoutMs} ms to ${JSON.stringify(String(request).slice(0, 120))}; got ${JSON.stringify(buf.toString('latin1').slice(0, 200))}`
        )
      )
    }, timeoutMs)
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d])
      finish(false)
    })
    socket.on('close', () => {
      finish(true)
      if (!settled) {
        settled = true
        clearTimeout(timer)
        reject(new Error(`connection closed without a response to ${JSON.stringify(String(request).slice(0, 120))}`))
      }
    })
    // The server may answer (and close) before it has read everything we send.
    socket.on('error', () => finish(true))
    socket.write(request)
  })
}

function parse(buf: Buffer, closed: boolean): RawResponse | null {
  const end = buf.indexOf('\r\n\r\n')
  if (end === -1) return null
  const head = buf.subarray(0, end).toString('latin1').split('\r\n')
  const status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head[0] ?? '')?.[1])
  const headers: Record<string, string> = {}
  for (const line of head.slice(1)) {
    const i = line.indexOf(':')
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim()
  }
  const rest = buf.subarray(end + 4)
  const length = headers['content-length']
  let body: Buffer
  if (length !== undefined) {
    if (rest.length < Number(length)) return null
    body = rest.subarray(0, Number(length))
  } else if (headers['transfer-encoding']?.includes('chunked')) {
    const decoded = dechunk(rest)
    if (!decoded) return null
    body = decoded
  } else {
    if (!closed) return null
    body = rest
  }
  const text = body.toString('utf8')
  let json: any
  try {
    json = text ? JSON.parse(text) : undefined
  } catch {
    json = undefined
  }
  return { status, headers, body: text, json, raw: buf.toString('latin1') }
}

function dechunk(buf: Buffer): Buffer | null {
  const out: Buffer[] = []
  let at = 0
  for (;;) {
    const eol = buf.indexOf('\r\n', at)
    if (eol === -1) return null
    const size = parseInt(buf.subarray(at, eol).toString('latin1'), 16)
    if (Number.isNaN(size)) return null
    if (size === 0) return Buffer.concat(out)
    if (buf.length < eol + 2 + size + 2) return null
    out.push(buf.subarray(eol + 2, eol + 2 + size))
    at = eol + 2 + size + 2
  }
}

/** A request as bytes: `line` then the headers given (in order, verbatim), then the body. */
export function requestText(line: string, headers: [string, string][], body = ''): string {
  return `${line}\r\n${headers.map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n${body}`
}
