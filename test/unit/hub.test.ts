/**
 * The hub against a model: sockets that record what they are sent, a topic kind whose snapshot
 * reads finish when the test says so, the memory engine. What a socket's frames do to its
 * subscriptions must not depend on when the reads behind them come back.
 */
import { afterEach, describe, expect, test } from 'bun:test'
import { createMemoryEngine } from '../../src/engine/engine-memory.ts'
import { createHub, type Socket } from '../../src/delivery/hub.ts'
import { seqFrame, type Frame, type TopicKind } from '../../src/delivery/topic-kind.ts'
import { createTokens } from '../../src/delivery/tokens.ts'
import { createMetrics } from '../../src/metrics.ts'
import { silentLog } from '../support/db.ts'

const T = 'shipment:dhl:X1'

/** A shipment-like kind over an in-memory history; each snapshot read waits for `finish`. */
function modelKind() {
  let lastSeq = 0
  const reads: { finish: () => void }[] = []
  const kind: TopicKind<string> = {
    name: 'shipment',
    // The read sees the history as it stands when it finishes.
    snapshot: (_topic, _since) =>
      new Promise((resolve) => {
        reads.push({ finish: () => resolve({ ref: 'X1', lastSeq, body: { shipment: { lastSeq }, events: [] } }) })
      }),
    notFound: () => 'no such shipment',
    fetch: async (topic, _ref, after, upto, limit): Promise<Frame[]> => {
      const out: Frame[] = []
      for (let s = after + 1; s <= Math.min(upto, lastSeq) && out.length < limit; s++) out.push({ seq: s, frame: seqFrame('event', topic, s, `{"n":${s}}`) })
      return out
    },
    lastSeqs: async (topics) => new Map(topics.map((t) => [t, lastSeq])),
    frame: (topic, seq, data) => seqFrame('event', topic, seq, data),
    check: () => true
  }
  return { kind, reads, commit: () => ++lastSeq }
}

function socket() {
  const sent: Record<string, any>[] = []
  const topics = new Set<string>()
  const ws: Socket = {
    send: (data) => (sent.push(JSON.parse(data)), data.length),
    subscribe: (t) => void topics.add(t),
    unsubscribe: (t) => void topics.delete(t),
    close: () => {}
  }
  return { ws, sent, topics }
}

const stops: (() => Promise<void>)[] = []
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop()
})

async function setup() {
  const model = modelKind()
  const engine = createMemoryEngine()
  const tokens = createTokens('model-test-secret-0123456789-abcdef')
  const hub = createHub({ kinds: [model.kind], engine, tokens, log: silentLog, metrics: createMetrics({ defaults: false }), reconcileMs: 60_000 })
  const sockets: ReturnType<typeof socket>[] = []
  // Bun's topic publish: to every socket on the native topic.
  hub.start({
    publish: (topic, data) => {
      for (const k of sockets) if (k.topics.has(topic)) k.ws.send(data)
      return 1
    }
  })
  stops.push(async () => {
    await hub.stop()
    await engine.close()
  })
  const { token } = await tokens.mint({ sub: null, topics: [T], ttlSeconds: 60 })
  const connect = () => {
    const k = socket()
    sockets.push(k)
    hub.open(k.ws, token)
    return { ...k, frame: (f: unknown) => hub.message(k.ws, JSON.stringify(f)) }
  }
  return { hub, model, connect }
}

/** Until `f()` holds, letting slices (setImmediate) and promises run. */
async function until(f: () => boolean) {
  for (let i = 0; i < 200 && !f(); i++) await new Promise((r) => setImmediate(r))
  expect(f()).toBe(true)
}

describe('hub', () => {
  test('subscribe → unsubscribe → subscribe, all before the first snapshot is read: one snapshot, then every event once', async () => {
    const { hub, model, connect } = await setup()
    const k = connect()
    const first = k.frame({ op: 'subscribe', topic: T })
    await until(() => model.reads.length === 1)
    await k.frame({ op: 'unsubscribe', topic: T })
    const second = k.frame({ op: 'subscribe', topic: T })
    await until(() => model.reads.length === 2)
    // The first read comes back after the socket left and came back; then the second.
    model.commit()
    model.reads[0]!.finish()
    await first
    model.reads[1]!.finish()
    await second
    await hub.sequencer.idle()
    expect(k.sent.filter((f) => f.type === 'snapshot').length).toBe(1)
    hub.onCommitted([{ topic: T, seq: 2, data: JSON.stringify({ event: { seq: 2 }, shipment: { status: 's', carrierStatus: null, lastEventAt: null } }) }])
    model.commit()
    await hub.sequencer.idle()
    expect(k.sent.filter((f) => f.type === 'event').map((f) => f.seq)).toEqual([2])
    expect(k.sent.filter((f) => f.type === 'error')).toEqual([])
  })

  test('a socket that leaves before its snapshot is read gets no snapshot, and the topic is forgotten', async () => {
    const { hub, model, connect } = await setup()
    const k = connect()
    const first = k.frame({ op: 'subscribe', topic: T })
    await until(() => model.reads.length === 1)
    await k.frame({ op: 'unsubscribe', topic: T })
    model.reads[0]!.finish()
    await first
    await hub.sequencer.idle()
    expect(k.sent).toEqual([])
    expect(hub.sequencer.topics().size).toBe(0)
  })
})
