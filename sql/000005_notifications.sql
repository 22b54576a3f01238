-- Per-user notifications (contract §8): watchers of shipments, a gap-free seq per user, the
-- notifications themselves with their outbox, and the answers of idempotent requests.
-- A userId is opaque: 1-128 of A-Z a-z 0-9 . _ @ : - (checked at the edge, and here).

create table shipment_watchers (
  shipment_id uuid not null references shipments (id) on delete cascade,
  user_id text not null check (user_id ~ '^[A-Za-z0-9._@:-]{1,128}$'),
  created_at timestamptz not null default now(),
  constraint shipment_watchers_pkey primary key (shipment_id, user_id)
);

-- The per-user counter, as shipments.last_seq is per shipment: bumped under its row lock in the
-- transaction that inserts the user's notifications, so seq is gap-free and in commit order.
-- Every statement that bumps several users does so in user_id order (no deadlocks between them).
create table user_seqs (
  user_id text primary key check (user_id ~ '^[A-Za-z0-9._@:-]{1,128}$'),
  last_seq int not null check (last_seq >= 0)
);

-- `data` is json, not jsonb: kept as written, so a notification read back (inbox, gap fill)
-- prints exactly as the frame sent right after its commit did; nothing queries into it.
create table notifications (
  user_id text not null,
  seq int not null check (seq > 0),
  id uuid not null default gen_random_uuid(),
  type text not null check (type ~ '^[a-z0-9._-]{1,100}$'),
  title text,
  body text,
  data json,
  shipment_id uuid,
  created_at timestamptz not null default now(),
  delivered_at timestamptz,
  read_at timestamptz,
  constraint notifications_pkey primary key (user_id, seq),
  constraint notifications_id_key unique (id)
);

-- The unread ones of a user, in seq order: snapshots, unread counts, acks.
create index notifications_unread_idx on notifications (user_id, seq) where read_at is null;
-- Retention deletes the oldest first.
create index notifications_created_at_idx on notifications (created_at);

-- As event_outbox: a row while the notification is not yet on notifications:stream, inserted by
-- the statement that inserts the notification.
create table notification_outbox (
  user_id text not null,
  seq int not null,
  constraint notification_outbox_pkey primary key (user_id, seq)
);

-- The first answer of a POST /v1/notifications with an idempotencyKey, per API key (its
-- SHA-256, never the key), for 24 hours. Inserted in the transaction that creates the
-- notifications: a concurrent duplicate waits on the primary key, then reads this answer.
create table notification_requests (
  api_key_hash bytea not null,
  idempotency_key text not null,
  response json,
  created_at timestamptz not null default now(),
  constraint notification_requests_pkey primary key (api_key_hash, idempotency_key)
);

create index notification_requests_created_at_idx on notification_requests (created_at);
