/**
 * A WebSocket as the hub sees it: what it needs of Bun's socket and server (kept narrow, so that
 * tests can stand in for them), and the state one connection carries.
 */
import type { TokenClaims } from './tokens.ts'

export interface Socket {
  send(data: string): number
  subscribe(topic: string): void
  unsubscribe(topic: string): void
  close(code?: number, reason?: string): void
}

export interface Publisher {
  publish(topic: string, data: string): number
}

export interface Conn {
  /** Unique among this process's connections (presence entries are per connection). */
  id: string
  ws: Socket
  claims: Promise<TokenClaims | null>
  /** The topics this socket subscribes to; `attached` once it is on Bun's native topic. */
  topics: Map<string, { attached: boolean }>
  closed: boolean
}

export function send(c: Conn, body: unknown) {
  if (!c.closed) c.ws.send(JSON.stringify(body))
}

/** `{"type":"error","code","message","topic"?}`: the socket stays open. */
export function sendError(c: Conn, code: string, message: string, topic?: string) {
  send(c, { type: 'error', code, message, ...(topic ? { topic } : {}) })
}
