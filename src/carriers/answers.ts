/**
 * What a carrier's answer says about each shipment besides its scans: why its last poll could
 * not be read (`lastPollError`, cleared by a poll that reads), and the carrier's delivery
 * estimate (`expectedDelivery`), kept from the newest answer that states one — newest by the
 * answer's newest scan time, so a late push never overwrites a newer estimate. Written before
 * the answer's events are ingested, so the frames of those events carry the estimate.
 */
import type { Sql } from '../db/client.ts'
import { storableCopy } from '../pipeline/storable.ts'
import { cutText, type ExpectedDelivery } from './adapter.ts'

export interface AnswerRecord {
  trackingNumber: string
  /** A poll's outcome for this shipment: null when it read, why not otherwise; absent (pushes) leaves it. */
  pollError?: string | null
  /** The estimate the answer states; absent or null leaves the stored one. */
  expectedDelivery?: ExpectedDelivery | null
  /** The answer's newest scan time (UTC ISO), if it had a readable scan. */
  asOf?: string | null
}

export async function recordAnswers(sql: Sql, carrier: string, records: AnswerRecord[]): Promise<void> {
  const rows = records
    .filter((r) => r.pollError !== undefined || r.expectedDelivery)
    .map((r) => ({
      tracking_number: r.trackingNumber,
      touch_error: r.pollError !== undefined,
      // Storable whatever the carrier sent (a lone surrogate, a NUL), cut at a code point.
      poll_error: r.pollError ? storableCopy(cutText(r.pollError, 500)) : null,
      touch_ed: Boolean(r.expectedDelivery),
      ed_from: r.expectedDelivery?.from ?? null,
      ed_to: r.expectedDelivery?.to ?? null,
      as_of: r.asOf ?? null
    }))
  if (rows.length === 0) return
  // Rows are locked in id order, as ingest locks them, so the two never deadlock.
  await sql`
    with r as (
      select * from json_to_recordset(${sql.json(rows as never)}::json) as r(
        tracking_number text, touch_error boolean, poll_error text, touch_ed boolean, ed_from timestamptz, ed_to timestamptz, as_of timestamptz)
    ), locked as (
      select s.id from shipments s join r on s.carrier = ${carrier} and s.tracking_number = r.tracking_number
      order by s.id for update of s
    ), u as (
      select s.id, r.*,
             r.touch_ed and (s.expected_delivery_as_of is null or (r.as_of is not null and r.as_of >= s.expected_delivery_as_of)) as newer
      from shipments s join r on s.carrier = ${carrier} and s.tracking_number = r.tracking_number
      where s.id in (select id from locked)
    )
    update shipments s set
      last_poll_error = case when u.touch_error then u.poll_error else s.last_poll_error end,
      last_poll_error_at = case when not u.touch_error then s.last_poll_error_at when u.poll_error is null then null else now() end,
      expected_delivery_from = case when u.newer then u.ed_from else s.expected_delivery_from end,
      expected_delivery_to = case when u.newer then u.ed_to else s.expected_delivery_to end,
      expected_delivery_as_of = case when u.newer then coalesce(u.as_of, s.expected_delivery_as_of) else s.expected_delivery_as_of end,
      updated_at = case when u.newer and (u.ed_from is distinct from s.expected_delivery_from or u.ed_to is distinct from s.expected_delivery_to) then now() else s.updated_at end
    from u where s.id = u.id`
}
