/**
 * A TCP proxy in front of a server (PostgreSQL, Redis) that a test can cut or blackhole:
 *   - `cut()` drops every open connection and refuses new ones, like a host going away;
 *   - `blackhole()` keeps every connection open but silently drops what travels on it (and
 *     accepts new connections that never get an answer), like a host or network that stops
 *     answering without closing anything; `blackhole('replies')` drops only the server's
 *     answers, so the server still runs what it is sent. `restore()` heals either: connections
 *     that lost bytes to the blackhole are closed (their streams are broken), new ones work;
 *   - `silenceOpen()` makes the connections open now silent for good, both ways, and leaves them
 *     open (no FIN, no RST: a partition, a dead NAT entry), while new connections go through —
 *     what only a client that gives up on a silent connection recovers from.
 */
import type { Socket, TCPSocketListener } from 'bun'

type Pair = {
  client: Socket<unknown>
  upstream?: Socket<unknown>
  pending: Uint8Array[]
  /** It lost bytes to a blackhole. */
  holed: boolean
  /** Silenced for good (silenceOpen): nothing crosses it any more, whatever the blackhole does. */
  silent: boolean
}
export type Blackhole = 'both' | 'replies'

export async function tcpProxy(target: { host: string; port: number }) {
  const pairs = new Set<Pair>()
  let listener: TCPSocketListener<{ pair: Pair }> | null = null
  let port = 0
  let hole: Blackhole | null = null

  function end(p: Pair) {
    p.client.terminate()
    p.upstream?.terminate()
    pairs.delete(p)
  }

  function listen() {
    listener = Bun.listen({
      hostname: '127.0.0.1',
      port,
      socket: {
        async open(client) {
          const pair: Pair = { client, upstream: undefined, pending: [], holed: hole !== null, silent: false }
          client.data = { pair }
          pairs.add(pair)
          // A new connection into a blackhole: accepted, never answered, never passed on.
          if (hole) return
          try {
            pair.upstream = await Bun.connect({
              hostname: target.host,
              port: target.port,
              socket: {
                data(_s, chunk) {
                  if (pair.silent) return
                  if (hole) pair.holed = true
                  else client.write(chunk)
                },
                // A close does not cross a blackhole either.
                close() {
                  if (!hole && !pair.silent) client.terminate()
                },
                error() {
                  if (!hole && !pair.silent) client.terminate()
                }
              }
            })
            for (const chunk of pair.pending) pair.upstream.write(chunk)
            pair.pending = []
          } catch {
            client.end()
          }
        },
        data(client, chunk) {
          const pair = client.data.pair
          if (pair.silent) return
          if (hole === 'both' || (pair.holed && !pair.upstream)) {
            pair.holed = true
            return
          }
          if (pair.upstream) pair.upstream.write(chunk)
          else pair.pending.push(new Uint8Array(chunk))
        },
        close(client) {
          const pair = client.data.pair
          // In a blackhole the server never hears of it: the pair stays, for restore() to end.
          if (hole) return
          pairs.delete(pair)
          pair.upstream?.terminate()
        },
        error(client) {
          if (!hole) client.data.pair.upstream?.terminate()
        }
      }
    })
    port = listener.port
  }
  listen()

  return {
    get port() {
      return port
    },
    /** Connections open now (silenced and blackholed ones included). */
    get open() {
      return pairs.size
    },
    cut() {
      hole = null
      listener?.stop(true)
      listener = null
      for (const p of [...pairs]) end(p)
    },
    /** Every byte dropped from now on (`replies`: only the server's), every connection left open. */
    blackhole(direction: Blackhole = 'both') {
      hole = direction
      for (const p of pairs) p.holed = true
    },
    restore() {
      if (hole) {
        hole = null
        for (const p of [...pairs]) if (p.holed) end(p)
      }
      if (!listener) listen()
    },
    /** The connections open now go silent for good and stay open; new ones pass. Returns how many. */
    silenceOpen(): number {
      let n = 0
      for (const p of pairs) {
        if (p.silent) continue
        p.silent = true
        p.pending = []
        n++
      }
      return n
    },
    close() {
      this.cut()
    }
  }
}
