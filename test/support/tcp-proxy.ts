/**
 * A TCP proxy in front of PostgreSQL that a test can cut: `cut()` drops every open
 * connection and refuses new ones, like a database host going away; `restore()` heals it.
 */
import type { Socket, TCPSocketListener } from 'bun'

export async function tcpProxy(target: { host: string; port: number }) {
  const pairs = new Set<{ client: Socket<unknown>; upstream?: Socket<unknown> }>()
  let listener: TCPSocketListener<{ pair: { client: Socket<unknown>; upstream?: Socket<unknown>; pending: Uint8Array[] } }> | null = null
  let port = 0

  function listen() {
    listener = Bun.listen({
      hostname: '127.0.0.1',
      port,
      socket: {
        async open(client) {
          const pair = { client, upstream: undefined as Socket<unknown> | undefined, pending: [] as Uint8Array[] }
          client.data = { pair }
          pairs.add(pair)
          try {
            pair.upstream = await Bun.connect({
              hostname: target.host,
              port: target.port,
              socket: {
                data(_s, chunk) { client.write(chunk) },
                close() { client.terminate() },
                error() { client.terminate() }
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
          if (pair.upstream) pair.upstream.write(chunk)
          else pair.pending.push(new Uint8Array(chunk))
        },
        close(client) {
          client.data.pair.upstream?.terminate()
          pairs.delete(client.data.pair)
        },
        error(client) {
          client.data.pair.upstream?.terminate()
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
    cut() {
      listener?.stop(true)
      listener = null
      for (const p of pairs) {
        p.client.terminate()
        p.upstream?.terminate()
      }
      pairs.clear()
    },
    restore() {
      if (!listener) listen()
    },
    close() {
      this.cut()
    }
  }
}
