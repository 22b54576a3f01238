-- Carriers as they really answer: names and forms of carriers, push-only carriers, and on each
-- shipment its last poll error and the carrier's delivery estimate.

-- A carrier is known when it has an adapter or a row here; push-only carriers (scans only
-- through POST /v1/events) are rows without an adapter, registered by PUT /v1/carriers/:code.
alter table carrier_configs add column name text check (char_length(name) between 1 and 100);
-- The answer form to ask for (DPD: json or soap); null is the carrier's default.
alter table carrier_configs add column form text check (form ~ '^[a-z][a-z0-9_-]{0,31}$');
update carrier_configs set name = upper(carrier) where carrier in ('dhl', 'dpd', 'gls');

-- Why the last poll of this shipment could not be read (null once a poll reads).
alter table shipments add column last_poll_error text;
alter table shipments add column last_poll_error_at timestamptz;
-- The carrier's estimate, from the newest answer that states one: `as_of` is that answer's
-- newest scan time, so an older answer (a late push) never overwrites a newer estimate.
alter table shipments add column expected_delivery_from timestamptz;
alter table shipments add column expected_delivery_to timestamptz;
alter table shipments add column expected_delivery_as_of timestamptz;

-- The wire shapes, in one place: {from, to} or null; {at, message} or null.
create function expected_delivery_json(f timestamptz, t timestamptz) returns json
  language sql stable parallel safe
  as $$ select case when f is null and t is null then null else json_build_object('from', iso_utc(f), 'to', iso_utc(t)) end $$;

create function poll_error_json(at timestamptz, message text) returns json
  language sql stable parallel safe
  as $$ select case when message is null then null else json_build_object('at', iso_utc(at), 'message', message) end $$;
