/**
 * The socket side of the hub: a connection's token check, its frames (subscribe, unsubscribe,
 * ping) and its close, in slices of the event loop (slices.ts) and in arrival order, so that a
 * reconnect storm does not hold up the delivery of everyone else's events. A bad frame is
 * answered with an error frame; only a bad token closes the socket.
 */
import { BusyError } from '../errors.ts'
import type { Metrics } from '../metrics.ts'
import { createSlices } from './slices.ts'
import { send, sendError, type Conn, type Socket } from './socket.ts'
import type { Subscriptions } from './subscriptions.ts'
import { TokenError, type TokenClaims, type Tokens } from './tokens.ts'
import { parseTopic } from './topics.ts'

/** Socket work (token checks, frames) per turn of the event loop, and how much may wait (slices.ts). */
const SLICE_BUDGET_MS = 4
const MAX_QUEUED_SOCKET_TASKS = 50_000

/** Told when a socket's token names a user (`sub`): from when its token checked out to its close. */
export interface ConnectionHooks {
  opened(sub: string, connId: string): void
  closed(sub: string, connId: string): void
}

export function createConnections({
  tokens,
  subs,
  metrics,
  hooks,
  maxQueuedSocketTasks = MAX_QUEUED_SOCKET_TASKS
}: {
  tokens: Tokens
  subs: Subscriptions
  metrics: Metrics
  hooks?: ConnectionHooks
  maxQueuedSocketTasks?: number
}) {
  const processTag = Math.random().toString(36).slice(2, 8)
  let connections = 0
  const slices = createSlices({ budgetMs: SLICE_BUDGET_MS, maxQueued: maxQueuedSocketTasks, onDrain: (n) => metrics.wsTasksQueued.set(n) })
  const conns = new WeakMap<object, Conn>()

  function handle(c: Conn, claims: TokenClaims, raw: string | Uint8Array) {
    let frame: Record<string, unknown>
    try {
      // Text frames arrive as strings; a binary frame is read as UTF-8 text too.
      frame = JSON.parse(typeof raw === 'string' ? raw : Buffer.from(raw as Uint8Array).toString('utf8'))
      if (!frame || typeof frame !== 'object' || Array.isArray(frame)) throw new Error('not an object')
    } catch {
      return sendError(c, 'bad_message', 'frames are JSON objects with an op: subscribe, unsubscribe, ack or ping')
    }
    switch (frame.op) {
      case 'subscribe':
        return subs.subscribe(c, claims, frame)
      case 'unsubscribe': {
        const topic = typeof frame.topic === 'string' ? frame.topic : ''
        let name = topic
        try {
          name = parseTopic(topic).name
        } catch {}
        if (!subs.unsubscribe(c, name)) sendError(c, 'not_subscribed', `not subscribed to ${topic}`, topic)
        return
      }
      case 'ping':
        return send(c, { type: 'pong' })
      case 'ack':
        return subs.command(c, claims, frame.op, frame)
      default:
        return sendError(c, 'bad_message', `unknown op ${JSON.stringify(frame.op ?? null)}: use subscribe, unsubscribe, ack or ping`)
    }
  }

  return {
    open(ws: Socket, token: string | undefined) {
      metrics.wsConnections.inc()
      const c: Conn = { id: `${processTag}.${(++connections).toString(36)}`, ws, topics: new Map(), closed: false, claims: Promise.resolve(null) }
      conns.set(ws, c)
      const checked = token
        ? slices.later(() => tokens.verify(token))
        : Promise.reject(new TokenError('token_invalid', 'connect with ?token=<token from POST /v1/tokens>'))
      c.claims = checked.then(
        (claims) => {
          // Closed while its token was checked: it never counts.
          if (claims.sub !== null && hooks && !c.closed) hooks.opened(claims.sub, c.id)
          return claims
        },
        (err) => {
          if (err instanceof BusyError) {
            sendError(c, 'unavailable', 'the server is busy; reconnect in a moment')
            ws.close(1013, 'unavailable')
            return null
          }
          const code = err instanceof TokenError ? err.code : 'token_invalid'
          sendError(c, code, err instanceof TokenError ? err.message : 'the token is not valid')
          ws.close(4401, code)
          return null
        }
      )
    },

    async message(ws: Socket, raw: string | Uint8Array) {
      const c = conns.get(ws)
      if (!c) return
      const claims = await c.claims
      if (!claims) return
      // In arrival order, in a slice; a socket that closed meanwhile has nothing left to do.
      try {
        await slices.later(() => (c.closed ? undefined : handle(c, claims, raw)))
      } catch (err) {
        if (!(err instanceof BusyError)) throw err
        sendError(c, 'unavailable', 'the server is busy; send the frame again in a moment')
      }
    },

    close(ws: Socket) {
      const c = conns.get(ws)
      if (!c) return
      metrics.wsConnections.dec()
      const wasOpen = !c.closed
      c.closed = true
      for (const topic of [...c.topics.keys()]) subs.unsubscribe(c, topic)
      conns.delete(ws)
      // Its token's check may still be running: then `opened` sees it closed and never counts it.
      if (hooks && wasOpen) void c.claims.then((claims) => claims?.sub != null && hooks.closed(claims.sub, c.id))
    }
  }
}
