-- Touchpoints and goal events partitioned by month of occur time (UTC), so that retention drops
-- whole months (store/retention.py) instead of deleting rows one by one.
--
-- A unique constraint of a partitioned table must contain the partition key, so the tables can
-- no longer hold the idempotency key (tenant, event id) by themselves: touchpoint_ids and
-- goal_event_ids do, with where each event lies (a repeat's stored payload is read back by its
-- contact and time, through the tables' own indexes). Writers insert the id first, and the event
-- only when the id was new; a concurrent writer of the same id waits on the id's index entry.
-- Retention trims the id tables of dropped months with a delete: they are narrow.

create function ensure_month_partitions(parent regclass, times timestamptz[]) returns integer
language plpgsql as $$
declare
    month timestamp;  -- the month's first instant, in UTC
    name text;
    created integer := 0;
begin
    for month in
        select distinct date_trunc('month', t at time zone 'UTC') from unnest(times) as t
        where t is not null
    loop
        name := parent::text || '_' || to_char(month, 'YYYY_MM');
        if to_regclass(name) is null then
            -- Replicas may meet a new month at once: one creates it, the others wait, then
            -- see it (taking a table lock reads the catalog changes committed meanwhile).
            execute format('lock table %s in share update exclusive mode', parent);
            if to_regclass(name) is null then
                execute format('create table %I partition of %s for values from (%L) to (%L)',
                    name, parent, month at time zone 'UTC',
                    (month + interval '1 month') at time zone 'UTC');
                created := created + 1;
            end if;
        end if;
    end loop;
    return created;
end $$;

alter table touchpoints rename to touchpoints_unpartitioned;
alter table touchpoints_unpartitioned rename constraint touchpoints_pkey
    to touchpoints_unpartitioned_pkey;
alter index touchpoints_by_contact rename to touchpoints_unpartitioned_by_contact;
alter index touchpoints_by_journey rename to touchpoints_unpartitioned_by_journey;

create table touchpoint_ids (
    tenant_id text not null,
    event_id text not null,
    contact_id text not null,
    occur_time timestamptz not null,
    primary key (tenant_id, event_id)
);

create table touchpoints (
    tenant_id text not null,
    event_id text not null,
    contact_id text not null,
    journey_id text not null,
    version integer not null,
    message_id text not null,
    channel smallint not null,
    action smallint not null,
    occur_time timestamptz not null,
    machine_generated boolean not null default false
) partition by range (occur_time);
-- The window lookup of attribution: an index-only scan bounded by the window.
create index touchpoints_by_contact on touchpoints (tenant_id, contact_id, occur_time desc)
    include (journey_id, message_id, action, machine_generated);
create index touchpoints_by_journey on touchpoints (tenant_id, journey_id, occur_time);

select ensure_month_partitions('touchpoints',
    array(select distinct date_trunc('month', occur_time, 'UTC') from touchpoints_unpartitioned));
insert into touchpoints (tenant_id, event_id, contact_id, journey_id, version, message_id,
    channel, action, occur_time, machine_generated)
select tenant_id, event_id, contact_id, journey_id, version, message_id, channel, action,
    occur_time, machine_generated
from touchpoints_unpartitioned;
insert into touchpoint_ids (tenant_id, event_id, contact_id, occur_time)
select tenant_id, event_id, contact_id, occur_time from touchpoints_unpartitioned;
drop table touchpoints_unpartitioned;

alter table goal_events rename to goal_events_unpartitioned;
alter table goal_events_unpartitioned rename constraint goal_events_pkey
    to goal_events_unpartitioned_pkey;
alter index goal_events_by_contact rename to goal_events_unpartitioned_by_contact;
alter index goal_events_amending rename to goal_events_unpartitioned_amending;

create table goal_event_ids (
    tenant_id text not null,
    event_id text not null,
    contact_id text not null,
    occur_time timestamptz not null,
    primary key (tenant_id, event_id)
);

create table goal_events (
    tenant_id text not null,
    event_id text not null,
    contact_id text not null,
    event_type smallint not null,
    occur_time timestamptz not null,
    attribute_name text not null default '',
    attribute_value text not null default '',
    list_id text not null default '',
    message_id text not null default '',
    url text not null default '',
    form_id text not null default '',
    product_ids text[] not null default '{}',
    value_currency text,
    value_micros bigint,
    amends_event_id text not null default ''
) partition by range (occur_time);
create index goal_events_by_contact on goal_events (tenant_id, contact_id, occur_time);
-- Awards and amendments name goal events by id; goal events are few beside touchpoints.
create index goal_events_by_id on goal_events (tenant_id, event_id);
create index goal_events_amending on goal_events (tenant_id, amends_event_id)
    where amends_event_id <> '';

select ensure_month_partitions('goal_events',
    array(select distinct date_trunc('month', occur_time, 'UTC') from goal_events_unpartitioned));
insert into goal_events select * from goal_events_unpartitioned;
insert into goal_event_ids (tenant_id, event_id, contact_id, occur_time)
select tenant_id, event_id, contact_id, occur_time from goal_events_unpartitioned;
drop table goal_events_unpartitioned;

-- What retention dropped, one row per run that dropped something. Global, like
-- schema_migrations: partitions hold every tenant's rows. The latest retained_from is where
-- raw history now begins; a rebuild or a history import must not reach before it.
create table retention_runs (
    ran_at timestamptz primary key,
    cutoff timestamptz not null,
    retained_from timestamptz not null,
    dropped text[] not null
);
