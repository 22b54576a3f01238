/**
 * The listening socket: `Bun.serve`, handing HTTP requests to the Elysia app and taking
 * `GET /v1/ws` itself, with Bun's WebSocket handlers calling the hub directly.
 *
 * Every request passes edge.ts first (Host, target, body size), so the app and the WebSocket
 * endpoint see one reading of the path. Nothing here answers with Bun's development error
 * page: `development: false`, and an `error` handler that answers a JSON 500 with a request id
 * and logs the stack.
 *
 * Why not Elysia's `.ws()`: it keeps each connection's upgrade request, its headers, a proxy and
 * about a dozen closures alive for as long as the socket is open — about 4 KiB of JavaScript
 * heap per idle socket, measured with `bun:jsc` heapStats at 10,000 sockets, more than Bun's
 * own socket. Here a socket holds its token until `open` and then its hub state, nothing else.
 */
import type { Server } from 'bun'
import type { Hub } from '../delivery/hub.ts'
import type { Logger } from '../log.ts'
import { checkTarget, limitBody } from './edge.ts'
import { errorBody, internalError, json } from './errors.ts'

export const WS_PATH = '/v1/ws'

export function listen(opts: {
  fetch: (request: Request) => Response | Promise<Response>
  hub: Hub
  log: Logger
  port: number
  hostname: string
  bodyLimitBytes: number
  wsBackpressureBytes: number
}): Server<{ token: string | undefined }> {
  const { hub, log } = opts
  return Bun.serve<{ token: string | undefined }>({
    port: opts.port,
    hostname: opts.hostname,
    development: false,
    // Out of reach: Bun's own 413 has no body. edge.ts enforces `bodyLimitBytes` instead.
    maxRequestBodySize: Number.MAX_SAFE_INTEGER,
    fetch(request, server) {
      const target = checkTarget(request)
      // A target refused at the edge: no path to speak of, so the API's headers.
      if (!target.ok) return harden(target.response, '/v1/')
      const serve = (checked: Request | Response) => {
        if (checked instanceof Response) return checked
        if (target.path !== WS_PATH) return opts.fetch(checked)
        const token = new URLSearchParams(target.query).get('token') ?? undefined
        if (checked.method === 'GET' && server.upgrade(checked, { data: { token } })) return undefined
        return json(
          426,
          errorBody('upgrade_required', `${WS_PATH} is a WebSocket endpoint: connect with a WebSocket client and ?token=<token from POST /v1/tokens>`),
          { upgrade: 'websocket' }
        )
      }
      // Synchronous but for a chunked body: a WebSocket upgrade (a GET, no body) waits for nothing.
      const checked = limitBody(target.request, opts.bodyLimitBytes)
      const res = checked instanceof Promise ? checked.then(serve) : serve(checked)
      // Every answer leaves through here (an upgraded socket has none).
      return res instanceof Promise ? res.then((r) => r && harden(r, target.path)) : res && harden(res, target.path)
    },
    error: (err) => internalError(log, err, { component: 'server' }),
    websocket: {
      // A socket that does not read is closed once this much is queued for it (Bun's own
      // backpressure accounting); it can reconnect with `since` and miss nothing.
      backpressureLimit: opts.wsBackpressureBytes,
      closeOnBackpressureLimit: true,
      maxPayloadLength: 64 * 1024,
      idleTimeout: 120,
      open(ws) {
        const token = ws.data.token
        ws.data.token = undefined
        hub.open(ws, token)
      },
      message: (ws, message) => hub.message(ws, message),
      close: (ws) => hub.close(ws)
    }
  })
}

/**
 * Headers every answer gets unless it set its own: `nosniff` (a JSON error is never read as HTML)
 * and, for the API (`/v1`, answers per key), `cache-control: no-store`: no shared cache keeps one
 * caller's shipments for another.
 */
function harden(res: Response, path: string): Response {
  if (!res.headers.has('x-content-type-options')) res.headers.set('x-content-type-options', 'nosniff')
  if (path.startsWith('/v1/') && !res.headers.has('cache-control')) res.headers.set('cache-control', 'no-store')
  return res
}
