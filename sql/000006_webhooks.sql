-- Outbound webhooks (contract §9): endpoints, their messages (the outbox of what is to be sent:
-- written in the transaction of what they announce), and every attempt. The retry schedule lives
-- in the delivery engine and is rebuilt from `webhook_messages` whenever the engine lost it.

create table webhook_endpoints (
  id uuid primary key default gen_random_uuid(),
  url text not null check (char_length(url) between 1 and 2048),
  event_types text[] not null check (cardinality(event_types) >= 1),
  -- null: every user; else notification.created only for these users
  user_ids text[],
  description text,
  enabled boolean not null default true,
  disabled_reason text,
  -- who disabled it: the operator (PATCH), or parcelcast after failures or a 410 (shown in /readyz)
  disabled_by text check (disabled_by in ('operator', 'failures', 'gone')),
  -- `whsec_` + base64 of the key; the previous one also signs until previous_secret_until
  secret text not null,
  previous_secret text,
  previous_secret_until timestamptz,
  -- the first failure since the last success; auto-disable counts from here
  failing_since timestamptz,
  created_at timestamptz not null default now(),
  updated_at timestamptz not null default now()
);

create index webhook_endpoints_created_at_id_idx on webhook_endpoints (created_at, id);
-- Ingest asks on every batch whether any endpoint is enabled: one probe of this tiny index.
create index webhook_endpoints_enabled_idx on webhook_endpoints (id) where enabled;

create table webhook_messages (
  -- the webhook-id: the same on every attempt and every replay
  id text primary key,
  endpoint_id uuid not null references webhook_endpoints (id) on delete cascade,
  type text not null,
  -- the exact JSON body, fixed at creation, so that every attempt sends the same bytes
  body text not null,
  state text not null default 'pending' check (state in ('pending', 'delivered', 'failed')),
  attempt_count int not null default 0,
  -- a replay starts a new round of up to WEBHOOK_MAX_ATTEMPTS attempts
  round int not null default 1,
  round_attempts int not null default 0,
  next_attempt_at timestamptz not null default now(),
  -- a sender holds the message until then (the PostgreSQL guard beside the engine's claim)
  lease_until timestamptz,
  lease_holder text,
  delivered_at timestamptz,
  failed_at timestamptz,
  last_error text,
  created_at timestamptz not null default now()
);

create index webhook_messages_endpoint_idx on webhook_messages (endpoint_id, created_at desc, id desc);
-- The schedule's rebuild: pending messages by due time.
create index webhook_messages_pending_idx on webhook_messages (next_attempt_at, id) where state = 'pending';
-- Retention: finished messages by age.
create index webhook_messages_finished_idx on webhook_messages (created_at) where state <> 'pending';
-- The dead-letter queue, newest first.
create index webhook_messages_failed_idx on webhook_messages (failed_at desc, id desc) where state = 'failed';

create table webhook_attempts (
  message_id text not null references webhook_messages (id) on delete cascade,
  n int not null,
  round int not null,
  at timestamptz not null default now(),
  status int,
  error text,
  ms int not null,
  constraint webhook_attempts_pkey primary key (message_id, n)
);
