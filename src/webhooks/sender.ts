/**
 * The webhook sender: claims due messages from the engine's schedule and sends them, in a
 * bounded pool of WEBHOOK_WORKERS sends per process.
 *
 * Guarantees:
 *   - one message is never being sent by two processes at once: a message is taken by an atomic
 *     claim of its schedule entry (`scheduleClaim`, a lease longer than an attempt can last) AND
 *     by a PostgreSQL guard (`lease_until`/`lease_holder` set only when no live lease exists), so
 *     even a schedule rebuilt while a send runs, or a stale entry, cannot start a second send;
 *     the row's `lease_holder` is the claim's own (process, message, claim), so an attempt that
 *     outlived its lease cannot record over, or clear the lease of, a later claim of the message
 *     — not even one of the same process;
 *   - at most WEBHOOK_CONCURRENCY sends per endpoint across all processes: each send holds one
 *     of the endpoint's slots in the engine (`leaseAcquire`); a message whose endpoint is full
 *     goes back to the schedule shortly after;
 *   - fenced: what a sender does to the engine after its claim may have run out (a slow attempt,
 *     a hung record) touches only what that claim took: the schedule entry is removed only while
 *     it is still the claim's (`scheduleRemove` with the claim's lease end), and the slot is held
 *     under a holder of this claim alone, so a late release frees no slot taken since — not
 *     another process's, nor this process's own for a later claim of the same message;
 *   - every attempt is recorded in PostgreSQL (webhook_attempts) with the message's new state,
 *     in one transaction; the schedule is told after (a failure there is repaired by the rebuild);
 *   - the retry rules are retry.ts's; a 410 or WEBHOOK_DISABLE_AFTER_MS of nothing but failures
 *     disables the endpoint (logged at error, shown in /readyz);
 *   - redirects are not followed; the target is checked against url-guard.ts before each attempt;
 *   - `stop()` stops claiming and waits for the sends in flight (each at most WEBHOOK_TIMEOUT_MS).
 */
import { randomBytes } from 'node:crypto'
import type { Sql, Tx } from '../db/client.ts'
import type { Engine, ScheduleClaim, ScheduledMember } from '../engine/engine.ts'
import type { Logger } from '../log.ts'
import type { Metrics } from '../metrics.ts'
import { nextDelay, parseRetryAfter, verdict, type Outcome, type RetryPolicy, type Verdict } from './retry.ts'
import { webhookHeaders } from './signature.ts'
import { checkTarget, pinned } from './url-guard.ts'

export const SCHEDULE = 'webhooks'
export const member = (endpointId: string, messageId: string) => `${endpointId} ${messageId}`
const slotKey = (endpointId: string) => `webhook-endpoint:${endpointId}`
/** Beyond WEBHOOK_TIMEOUT_MS, what recording an attempt may take before its claim runs out. */
const LEASE_MARGIN_MS = 60_000

export interface SenderOptions extends RetryPolicy {
  concurrency: number
  timeoutMs: number
  workers: number
  pollMs: number
  disableAfterMs: number
  allowPrivate: boolean
}

/** A claimed schedule entry: its message, endpoint, the claim (its fence) and the slot holder of this claim. */
interface Taken {
  member: string
  endpointId: string
  id: string
  until: number
  slot: string
}

interface Claimed {
  /** The claim it was taken by: what the engine is told after the attempt is fenced by it. */
  claim: Taken
  id: string
  endpoint_id: string
  body: string
  attempt_count: number
  round_attempts: number
  url: string
  secrets: string[]
}

export function createSender(deps: { sql: Sql; engine: Engine; log: Logger; metrics: Metrics; opts: SenderOptions; random?: () => number }) {
  const { sql, engine, log, metrics, opts, random = Math.random } = deps
  const leaseMs = opts.timeoutMs + LEASE_MARGIN_MS
  const holder = `${process.pid}-${randomBytes(4).toString('hex')}`
  // A slot is this claim's: another sender refused the same message (two schedules held it) must
  // not free the slot of the one sending it, and neither may this sender's own late release for
  // an earlier claim of it (a claim's lease end is unique per member).
  const slotHolder = (messageId: string, until: number) => `${holder} ${messageId} ${until}`
  const inFlight = new Set<Promise<void>>()
  let timer: ReturnType<typeof setTimeout> | null = null
  let running: Promise<void> | null = null
  let again = false
  let stopped = true
  let engineFailing = false

  /** Claims and starts what is due while workers are free; then sleeps until the next poll or `wake()`. */
  async function cycle() {
    while (!stopped && inFlight.size < opts.workers) {
      const free = opts.workers - inFlight.size
      let claimed: ScheduleClaim[]
      try {
        claimed = await engine.scheduleClaim(SCHEDULE, { now: Date.now(), leaseMs, count: free })
        if (engineFailing) log.info({ component: 'webhooks' }, 'the schedule answers again')
        engineFailing = false
      } catch (err) {
        if (!engineFailing) log.warn({ component: 'webhooks', err: (err as Error).message }, 'cannot read the webhook schedule; messages wait in PostgreSQL')
        engineFailing = true
        return
      }
      if (claimed.length === 0) return
      const taken = await take(claimed)
      for (const m of taken) start(m)
      // Nothing startable (full endpoints, stale entries): wait for the next poll rather than
      // churn through every due member of a busy endpoint now.
      if (claimed.length < free || taken.length === 0) return
    }
  }

  function start(m: Claimed) {
    const p: Promise<void> = send(m)
      .catch((err) =>
        log.error(
          { component: 'webhooks', messageId: m.id, err: (err as Error).message },
          'sending a webhook failed unexpectedly; it is sent again once its lease ends'
        )
      )
      .finally(() => {
        inFlight.delete(p)
        metrics.webhookInFlight.set(inFlight.size)
        wake()
      })
    inFlight.add(p)
    metrics.webhookInFlight.set(inFlight.size)
  }

  /** The claimed members this process may send now: an endpoint slot in the engine, then the PostgreSQL guard. */
  async function take(claims: ScheduleClaim[]): Promise<Claimed[]> {
    const parsed = claims.map((c): Taken => {
      const [endpointId, id] = c.member.split(' ') as [string, string]
      return { member: c.member, endpointId, id, until: c.until, slot: slotHolder(id, c.until) }
    })
    const slotted: Taken[] = []
    const full: ScheduledMember[] = []
    const acquired = await Promise.all(
      parsed.map((p) => engine.leaseAcquire(slotKey(p.endpointId), p.slot, { limit: opts.concurrency, leaseMs }).catch(() => false))
    )
    parsed.forEach((p, i) => {
      if (acquired[i]) slotted.push(p)
      else full.push({ member: p.member, dueAt: Date.now() + Math.round(opts.pollMs * (1 + random())) })
    })
    if (full.length > 0) await engine.scheduleAdd(SCHEDULE, full).catch(() => {})
    if (slotted.length === 0) return []
    let rows: Omit<Claimed, 'claim'>[]
    try {
      rows = await sql<Omit<Claimed, 'claim'>[]>`
        update webhook_messages m
        set lease_until = now() + make_interval(secs => ${leaseMs / 1000}), lease_holder = c.slot
        from webhook_endpoints w, unnest(${slotted.map((s) => s.id)}::text[], ${slotted.map((s) => s.slot)}::text[]) as c(id, slot)
        where m.id = c.id and w.id = m.endpoint_id and w.enabled and m.state = 'pending'
          and m.next_attempt_at <= now() and (m.lease_until is null or m.lease_until < now())
        returning m.id, m.endpoint_id, m.body, m.attempt_count, m.round_attempts, w.url,
          array_remove(array[w.secret, case when w.previous_secret_until > now() then w.previous_secret end], null) as secrets`
    } catch (err) {
      log.warn({ component: 'webhooks', err: (err as Error).message }, 'cannot claim webhook messages in PostgreSQL; trying again shortly')
      await release(slotted)
      await engine
        .scheduleAdd(
          SCHEDULE,
          slotted.map((p) => ({ member: p.member, dueAt: Date.now() + opts.pollMs * 4 }))
        )
        .catch(() => {})
      return []
    }
    const got = new Set(rows.map((r) => r.id))
    const missed = slotted.filter((s) => !got.has(s.id))
    if (missed.length > 0) {
      await release(missed)
      await settle(missed).catch(() => {})
    }
    const byId = new Map(slotted.map((s) => [s.id, s]))
    return rows.map((r) => ({ ...r, claim: byId.get(r.id)! }))
  }

  const release = (items: Taken[]) => Promise.all(items.map((i) => engine.leaseRelease(slotKey(i.endpointId), i.slot).catch(() => {})))

  /**
   * Schedule entries the guard refused: gone, done, disabled → out of the schedule; not due yet
   * (a stale entry) → back at its time; leased by another sender → left to it.
   */
  async function settle(items: Taken[]) {
    const rows = await sql<{ id: string; live: boolean; leased: boolean; due_at: number }[]>`
      select m.id, (m.state = 'pending' and w.enabled) as live, coalesce(m.lease_until > now(), false) as leased,
             extract(epoch from m.next_attempt_at)::float8 * 1000 as due_at
      from webhook_messages m join webhook_endpoints w on w.id = m.endpoint_id
      where m.id = any(${items.map((i) => i.id)}::text[])`
    const byId = new Map(rows.map((r) => [r.id, r]))
    const remove: Taken[] = []
    const later: ScheduledMember[] = []
    for (const i of items) {
      const r = byId.get(i.id)
      if (!r?.live) remove.push(i)
      else if (!r.leased) later.push({ member: i.member, dueAt: Math.max(r.due_at, Date.now() + opts.pollMs) })
    }
    await Promise.all([engine.scheduleRemove(SCHEDULE, remove), engine.scheduleAdd(SCHEDULE, later)])
  }

  async function send(m: Claimed) {
    const t0 = performance.now()
    const outcome = await attempt(m)
    const ms = Math.round(performance.now() - t0)
    const n = m.round_attempts + 1
    let v: Verdict = verdict(outcome)
    const delay = v === 'retry' ? nextDelay(opts, n, outcome.retryAfterMs, random) : null
    if (v === 'retry' && delay === null) v = 'final'
    metrics.webhookAttempts.inc({ result: v === 'retry' ? 'retry' : v === 'delivered' ? 'delivered' : 'dead_letter', reason: reasonOf(outcome) })
    metrics.webhookAttemptSeconds.observe(ms / 1000)
    const recorded = await record(m, outcome, ms, v, delay)
    await release([m.claim])
    if (!recorded) return
    // The next attempt's time is PostgreSQL's, recorded just now: set whatever the entry holds.
    // Done with: out of the schedule, unless re-added or claimed again since this claim.
    if (recorded.state === 'pending' && recorded.enabled)
      await engine.scheduleAdd(SCHEDULE, [{ member: m.claim.member, dueAt: recorded.due_at }]).catch(() => {})
    else await engine.scheduleRemove(SCHEDULE, [m.claim]).catch(() => {})
  }

  async function attempt(m: Claimed): Promise<Outcome> {
    // One deadline for the whole attempt, the url check and the request alike: an attempt never
    // lasts longer than WEBHOOK_TIMEOUT_MS, so never longer than its lease.
    const deadline = AbortSignal.timeout(opts.timeoutMs)
    let target: ReturnType<typeof pinned> | null = null
    if (!opts.allowPrivate) {
      // The resolver has timeouts of its own, longer than an attempt may take.
      const timedOut = new Promise<null>((resolve) => deadline.addEventListener('abort', () => resolve(null), { once: true }))
      const check = await Promise.race([checkTarget(m.url, { allowPrivate: false }), timedOut])
      if (!check) return { status: null, error: `timed out after ${opts.timeoutMs} ms resolving the url's host`, retryAfterMs: null }
      if (!check.ok) return { status: null, error: `not sent: the url ${check.reason}`, retryAfterMs: null }
      // To the address just checked, not to whatever the name resolves to by the time fetch asks.
      target = pinned(check.url, check.address!)
    }
    const timestamp = Math.floor(Date.now() / 1000)
    try {
      const headers = webhookHeaders(m.secrets, m.id, timestamp, m.body)
      const res = await fetch(target?.url ?? m.url, {
        method: 'POST',
        body: m.body,
        headers: target ? { ...headers, host: target.host } : headers,
        redirect: 'manual',
        signal: deadline,
        ...(target?.tls ? { tls: target.tls } : {})
      })
      await res.body?.cancel().catch(() => {})
      const redirect =
        res.status >= 300 && res.status < 400
          ? `redirect to ${(res.headers.get('location') ?? '(no location)').slice(0, 200)} not followed; change the endpoint's url`
          : null
      return { status: res.status, error: redirect, retryAfterMs: parseRetryAfter(res.headers.get('retry-after')) }
    } catch (err) {
      const e = err as Error & { code?: string }
      if (e.name === 'TimeoutError' || e.name === 'AbortError') return { status: null, error: `timed out after ${opts.timeoutMs} ms`, retryAfterMs: null }
      return { status: null, error: `connection failed: ${(e.code ?? e.message).slice(0, 200)}`, retryAfterMs: null }
    }
  }

  /**
   * The attempt and the message's new state in one transaction, and the endpoint's failure clock:
   * started by the first failure since a success, cleared by a success, and disabling the
   * endpoint once it has run WEBHOOK_DISABLE_AFTER_MS (or at once, on a 410).
   */
  async function record(m: Claimed, o: Outcome, ms: number, v: Verdict, delay: number | null) {
    try {
      return await sql.begin(async (tx) => {
        const [msg] = await tx<{ state: string; due_at: number; attempts: number }[]>`
          update webhook_messages set
            attempt_count = attempt_count + 1, round_attempts = round_attempts + 1, lease_until = null, lease_holder = null,
            last_error = ${o.error ?? (o.status !== null && v !== 'delivered' ? `HTTP ${o.status}` : null)},
            state = ${v === 'delivered' ? 'delivered' : v === 'retry' ? 'pending' : 'failed'},
            delivered_at = case when ${v === 'delivered'} then now() end,
            failed_at = case when ${v === 'final' || v === 'gone'} then now() end,
            next_attempt_at = case when ${v === 'retry'} then now() + make_interval(secs => ${(delay ?? 0) / 1000}) else next_attempt_at end
          where id = ${m.id} and lease_holder = ${m.claim.slot}
          returning state, extract(epoch from next_attempt_at)::float8 * 1000 as due_at, attempt_count as attempts`
        if (!msg) {
          log.warn(
            { component: 'webhooks', messageId: m.id, status: o.status, error: o.error },
            'a webhook attempt ended after its message was deleted or its lease taken over; its outcome is not recorded'
          )
          return null
        }
        await tx`insert into webhook_attempts (message_id, n, round, status, error, ms)
                 select ${m.id}, ${msg.attempts}, round, ${o.status}, ${o.error}, ${ms} from webhook_messages where id = ${m.id}`
        const endpoint = await failureClock(tx, m.endpoint_id, v)
        if (msg.state === 'failed') {
          metrics.webhookDeadLetters.inc()
          log.warn(
            {
              component: 'webhooks',
              messageId: m.id,
              endpointId: m.endpoint_id,
              host: hostOf(m.url),
              status: o.status,
              error: o.error,
              attempts: msg.attempts
            },
            `webhook message dead-lettered after ${msg.attempts} attempt(s); replay it with POST /v1/dlq/${m.id}/replay`
          )
        }
        return { state: msg.state, due_at: msg.due_at, enabled: endpoint }
      })
    } catch (err) {
      log.error(
        { component: 'webhooks', messageId: m.id, status: o.status, err: (err as Error).message },
        'could not record a webhook attempt; the message is sent again once its lease ends'
      )
      return null
    }
  }

  /** Updates the endpoint's failure clock after an attempt; resolves with whether it is still enabled. */
  async function failureClock(tx: Tx, endpointId: string, v: Verdict): Promise<boolean> {
    if (v === 'delivered') {
      const [e] = await tx<{ since: string }[]>`
        update webhook_endpoints w set failing_since = null from (select failing_since from webhook_endpoints where id = ${endpointId}) old
        where w.id = ${endpointId} and w.failing_since is not null returning iso_utc(old.failing_since) as since`
      if (e) log.info({ component: 'webhooks', endpointId, failingSince: e.since }, 'webhook endpoint recovered: a message was delivered')
      return true
    }
    const [e] = await tx<{ enabled: boolean; failing_since: string; disabled_by: string | null; started: boolean; url: string }[]>`
      update webhook_endpoints w set
        failing_since = coalesce(w.failing_since, now()),
        enabled = false,
        disabled_by = case when ${v === 'gone'} then 'gone' else 'failures' end,
        disabled_reason = case when ${v === 'gone'}
          then 'the receiver answered 410 Gone at ' || iso_utc(now())
          else 'every attempt failed from ' || iso_utc(w.failing_since) || ' to ' || iso_utc(now()) || ' (WEBHOOK_DISABLE_AFTER_MS=' || ${opts.disableAfterMs} || ')' end,
        updated_at = now()
      where w.id = ${endpointId} and w.enabled
        and (${v === 'gone'} or w.failing_since <= now() - make_interval(secs => ${opts.disableAfterMs / 1000}))
      returning enabled, iso_utc(failing_since) as failing_since, disabled_by, false as started, url`
    if (e) {
      metrics.webhookEndpointsDisabled.inc({ by: e.disabled_by ?? 'failures' })
      log.error(
        { component: 'webhooks', endpointId, host: hostOf(e.url), by: e.disabled_by, failingSince: e.failing_since },
        `webhook endpoint disabled (${e.disabled_by === 'gone' ? 'it answered 410 Gone' : 'every attempt failed for WEBHOOK_DISABLE_AFTER_MS'}); PATCH it with {"enabled": true} to resume`
      )
      return false
    }
    const [started] = await tx<{ url: string; enabled: boolean }[]>`
      update webhook_endpoints set failing_since = now() where id = ${endpointId} and failing_since is null returning url, enabled`
    if (started)
      log.warn({ component: 'webhooks', endpointId, host: hostOf(started.url) }, 'webhook endpoint failing: an attempt failed; retrying per the schedule')
    const [state] = await tx<{ enabled: boolean }[]>`select enabled from webhook_endpoints where id = ${endpointId}`
    return state?.enabled ?? false
  }

  function wake() {
    if (stopped) return
    // A cycle that is running may have claimed before the news: it runs once more at once.
    if (running) return void (again = true)
    if (timer) clearTimeout(timer)
    timer = setTimeout(tick, 0)
  }

  function tick() {
    timer = null
    again = false
    if (stopped) return
    running = cycle()
      .catch((err) => log.error({ component: 'webhooks', err: (err as Error).message }, 'webhook sender cycle failed'))
      .finally(() => {
        running = null
        if (!stopped) timer = setTimeout(tick, again ? 0 : opts.pollMs)
      })
  }

  return {
    holder,
    start() {
      if (!stopped) return
      stopped = false
      log.info({ component: 'webhooks', workers: opts.workers, concurrency: opts.concurrency, timeoutMs: opts.timeoutMs }, 'webhook sender started')
      tick()
    },
    /** Claim now rather than at the next poll (new messages were scheduled). */
    wake,
    inFlight: () => inFlight.size,
    async stop() {
      stopped = true
      if (timer) clearTimeout(timer)
      timer = null
      await running
      await Promise.all([...inFlight])
    }
  }
}

export type Sender = ReturnType<typeof createSender>

function reasonOf(o: Outcome): string {
  if (o.status === null) return o.error?.startsWith('timed out') ? 'timeout' : o.error?.startsWith('not sent') ? 'refused_address' : 'connection'
  if (o.status >= 200 && o.status < 300) return '2xx'
  if (o.status === 408 || o.status === 410 || o.status === 429) return String(o.status)
  return `${Math.floor(o.status / 100)}xx`
}

function hostOf(url: string): string {
  try {
    return new URL(url).host
  } catch {
    return '(invalid url)'
  }
}
