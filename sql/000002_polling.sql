-- Polling state on shipments: when each was last asked for, and when it is due again.
-- The poller leases due shipments by moving next_poll_at forward (for update skip locked),
-- so two processes never poll one shipment in the same cycle.
alter table shipments add column last_polled_at timestamptz;
alter table shipments add column next_poll_at timestamptz;

create index shipments_poll_due_idx on shipments (carrier, last_polled_at nulls first, id)
  where deleted_at is null and status not in ('delivered', 'returned', 'expired');
