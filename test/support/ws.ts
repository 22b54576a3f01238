/** WebSocket test client: every frame queued, awaited one at a time; closes remembered. */
export interface Client {
  ws: WebSocket
  next(timeoutMs?: number): Promise<any>
  until(pred: (m: any) => boolean, timeoutMs?: number): Promise<any>
  send(frame: unknown): void
  closed: Promise<{ code: number; reason: string }>
  frames: any[]
  close(): void
}

export async function connect(url: string): Promise<Client> {
  const ws = new WebSocket(url)
  const frames: any[] = []
  const waiters: (() => void)[] = []
  let read = 0
  ws.onmessage = (e) => {
    frames.push(JSON.parse(String(e.data)))
    for (const w of waiters.splice(0)) w()
  }
  const closed = new Promise<{ code: number; reason: string }>((resolve) => {
    ws.onclose = (e) => {
      resolve({ code: e.code, reason: e.reason })
      for (const w of waiters.splice(0)) w()
    }
  })
  await new Promise<void>((resolve, reject) => {
    ws.onopen = () => resolve()
    ws.onerror = () => reject(new Error(`could not connect to ${url}`))
  })
  const client: Client = {
    ws,
    frames,
    closed,
    async next(timeoutMs = 5000) {
      const deadline = Date.now() + timeoutMs
      while (read >= frames.length) {
        if (Date.now() > deadline) throw new Error(`no frame within ${timeoutMs} ms (got ${JSON.stringify(frames.slice(-3))})`)
        if (ws.readyState === WebSocket.CLOSED) throw new Error('socket closed while waiting for a frame')
        await new Promise<void>((r) => {
          waiters.push(r)
          setTimeout(r, 50)
        })
      }
      return frames[read++]
    },
    async until(pred, timeoutMs = 5000) {
      for (;;) {
        const m = await client.next(timeoutMs)
        if (pred(m)) return m
      }
    },
    send: (frame) => ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
    close: () => ws.close()
  }
  return client
}
